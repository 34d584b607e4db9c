/**
 * `@inferwatch/sdk`: log predictions and feedback from a TypeScript/Node model server to
 * Inferwatch's Kafka topics (see README.md). The TypeScript twin of the Python SDK.
 */
import { kafkaTransportFor } from "./kafka.js";
import { setDefaultTransportFactory } from "./logger.js";

setDefaultTransportFactory(kafkaTransportFor);

export { CONTRACT } from "./contract.generated.js";
export { EventValidationError } from "./errors.js";
export { IdGenerator } from "./ids.js";
export { KafkaTransport, PRODUCER_DEFAULTS, topicsFor } from "./kafka.js";
export { InferenceLogger } from "./logger.js";
export type {
  FeedbackOptions, LineageRef, LlmBlock, LoggerOptions, LoggerStats, Outputs, PredictionArgs, TimedOptions, TimedRecord,
} from "./logger.js";
export { Redaction, textHash, valueHash } from "./redaction.js";
export type { RedactOptions } from "./redaction.js";
export { Sampler, resolveRate } from "./sampling.js";
export { Spool, frame, parse } from "./spool.js";
export { MemoryTransport } from "./transport.js";
export type { EventKind, SentEvent, Transport, TransportStats } from "./transport.js";
