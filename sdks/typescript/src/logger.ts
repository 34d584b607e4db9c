/**
 * `InferenceLogger`: log every prediction (and later its ground truth) to Kafka without slowing
 * or endangering the model server. The TypeScript twin of the Python SDK's
 * `inferwatch.sdk.logger.InferenceLogger`: the same events (field for field, held to it by the
 * shared vectors in schemas/vectors/sdk.v1.json), the same refusals with the same texts, in
 * TypeScript idiom (camelCase options, `timed(fn)` instead of a context manager, promises for
 * `flush()`/`close()`).
 *
 * `prediction()` validates, serialises with `JSON.stringify` and hands the bytes to the transport,
 * which enqueues them into librdkafka (./kafka.ts); it never awaits anything.
 */

import { CONTRACT as C } from "./contract.generated.js";
import { EventValidationError } from "./errors.js";
import { IdGenerator } from "./ids.js";
import { Redaction, type RedactOptions } from "./redaction.js";
import { Sampler, resolveRate } from "./sampling.js";
import type { EventKind, Transport, TransportStats } from "./transport.js";
import * as v from "./validate.js";
import type { Dict, Scalar } from "./validate.js";

/** What a model answered. At least one field is set. */
export interface Outputs {
  label?: string | null;
  score?: number | null;
  probabilities?: Record<string, number> | null;
  value?: number | null;
}

/** Signals of one LLM response (the contract's `LLMBlock`, keys as on the wire). */
export interface LlmBlock {
  prompt?: string | null;
  completion?: string | null;
  prompt_hash?: string | null;
  completion_hash?: string | null;
  completion_chars?: number | null;
  refusal?: boolean | null;
  token_logprobs?: number[] | null;
  top_logprobs?: number[][] | null;
  input_tokens?: number | null;
  output_tokens?: number | null;
  finish_reason?: string | null;
}

/** Which model (and version) produced something this prediction used. */
export interface LineageRef {
  kind?: "items" | "embedding" | "features" | "other";
  model: string;
  model_version: string;
  share?: number;
}

/** The arguments of `prediction()`. */
export interface PredictionArgs {
  inputs?: Record<string, Scalar>;
  outputs?: Outputs;
  latencyMs?: number;
  segment?: Record<string, string>;
  embedding?: number[] | Float32Array | Float64Array;
  llm?: LlmBlock;
  lineage?: LineageRef[];
  tags?: Record<string, string>;
  error?: string;
  predictionId?: string;
  tsMs?: number;
}

/** The optional arguments of `feedback()` beside the label. */
export interface FeedbackOptions {
  value?: number;
  modelVersion?: string;
  tags?: Record<string, string>;
  tsMs?: number;
}

/** What `timed()` passes to the timed function: set `outputs` (and anything else) on it. */
export interface TimedRecord {
  readonly predictionId: string;
  inputs?: Record<string, Scalar>;
  outputs?: Outputs;
  segment?: Record<string, string>;
  tags?: Record<string, string>;
  embedding?: number[] | Float32Array | Float64Array;
  llm?: LlmBlock;
  lineage?: LineageRef[];
}

/** Options of `timed()`. */
export interface TimedOptions {
  inputs?: Record<string, Scalar>;
  segment?: Record<string, string>;
  tags?: Record<string, string>;
  predictionId?: string;
}

/** Options of `new InferenceLogger()`. */
export interface LoggerOptions {
  model: string;
  modelVersion: string;
  /** Kafka bootstrap servers; default `INFERWATCH_KAFKA_BOOTSTRAP`, else `localhost:9092`. */
  bootstrap?: string;
  /** Topic prefix; default `INFERWATCH_TOPIC_PREFIX`, else `inferwatch`. */
  topicPrefix?: string;
  /** A rate in [0, 1] for every model, or per model (`"*"` = default). */
  sampleRate?: number | Record<string, number>;
  /**
   * Fields to drop or hash before an event leaves the process (see ./redaction.ts): the Python
   * SDK's `redact=` options, a list of input fields to drop, or a `Redaction`.
   */
  redact?: RedactOptions | string[] | Redaction;
  /** Where the generated redaction salt is kept (`<dataDir>/redaction.salt`); default `INFERWATCH_DATA_DIR`, else `.inferwatch`. */
  dataDir?: string;
  /** librdkafka settings over the SDK's defaults (SASL/SSL, ...). */
  producerConfig?: Record<string, string | number | boolean>;
  /** Directory of the disk spool (events Kafka cannot take); default none: such events are dropped and counted. */
  spoolDir?: string;
  /** Spool size limit in bytes (default 1 GiB). */
  spoolMaxBytes?: number;
  /** Where events go; default a Kafka transport built from the options above. */
  transport?: Transport;
  /** Event ids (default: a random 64-bit prefix and a counter, like the Python SDK). */
  ids?: IdGenerator;
  /** Clock in ms since the epoch (default `Date.now`); tests fix it. */
  clock?: () => number;
  /** How long `close()` waits for deliveries by default (ms). */
  closeTimeoutMs?: number;
}

/** `stats()`: this logger's counters and its transport's. */
export interface LoggerStats extends TransportStats {
  /** Events sampled out (never sent). */
  sampled_out: number;
}

/** Logs predictions and feedback of one model version to Kafka. */
export class InferenceLogger {
  readonly model: string;
  readonly modelVersion: string;
  private readonly key: Buffer;
  private readonly ids: IdGenerator;
  private readonly now: () => number;
  private readonly sampler: Sampler;
  private readonly transport: Transport;
  private readonly closeTimeoutMs: number;
  private readonly redaction: Redaction | null;
  private sampledOut = 0;
  private closed = false;
  private droppedAfterClose = 0;

  constructor(opts: LoggerOptions) {
    if (typeof opts !== "object" || opts === null) throw new TypeError("InferenceLogger: needs {model, modelVersion}");
    this.model = v.checkName(opts.model, "model", C.MODEL_MAX);
    this.modelVersion = v.checkName(opts.modelVersion, "model_version", C.VERSION_MAX);
    this.key = Buffer.from(this.model);
    this.ids = opts.ids ?? new IdGenerator();
    this.now = opts.clock ?? Date.now;
    this.sampler = new Sampler(resolveRate(opts.sampleRate, this.model));
    this.closeTimeoutMs = opts.closeTimeoutMs ?? 5000;
    this.redaction = opts.redact === undefined || opts.redact === null
      ? null
      : opts.redact instanceof Redaction ? opts.redact : Redaction.of(opts.redact, { dataDir: opts.dataDir });
    this.transport = opts.transport ?? defaultTransport(opts);
  }

  /**
   * Log one prediction; return its `prediction_id` (generated unless given).
   *
   * Never blocks and never throws on transport trouble. Throws `EventValidationError` naming the
   * field when an argument breaks the event contract.
   */
  prediction(args: PredictionArgs): string {
    if (typeof args !== "object" || args === null) throw new EventValidationError("outputs", "a prediction needs outputs, or error= when it failed");
    const eid = this.ids.nextId();
    const pid = args.predictionId === undefined || args.predictionId === null
      ? eid
      : v.shortText(args.predictionId, "prediction_id", C.PREDICTION_ID_MAX, 1);
    if (!this.sampler.keepAll && !this.sampler.keep(pid)) {
      this.sampledOut++;
      return pid;
    }
    const ev: Dict = {
      schema_version: C.PREDICTION_SCHEMA,
      event_id: eid,
      prediction_id: pid,
      ts: args.tsMs === undefined || args.tsMs === null ? this.now() : v.tsMs(args.tsMs),
      model: this.model,
      model_version: this.modelVersion,
    };
    const { inputs, outputs, latencyMs, segment, error, embedding, llm, lineage, tags } = args;
    if (inputs !== undefined && inputs !== null) ev.inputs = v.features(inputs);
    if (outputs !== undefined && outputs !== null) ev.outputs = v.outputs(outputs);
    else if (error === undefined || error === null) {
      throw new EventValidationError("outputs", "a prediction needs outputs, or error= when it failed");
    }
    if (latencyMs !== undefined && latencyMs !== null) ev.latency_ms = v.finite(latencyMs, "latency_ms", 0.0);
    if (truthy(segment)) ev.segment = v.labels(segment, "segment", C.MAX_SEGMENT);
    if (error !== undefined && error !== null) ev.error = v.shortText(error, "error", C.ERROR_MAX);
    if (embedding !== undefined && embedding !== null) ev.embedding = v.floatList(embedding, "embedding", 1, C.MAX_EMBEDDING);
    if (llm !== undefined && llm !== null) ev.llm = v.llmBlock(llm);
    if (lineage !== undefined && lineage !== null) ev.lineage = v.lineage(lineage);
    if (truthy(tags)) ev.tags = v.labels(tags, "tags", C.MAX_TAGS);
    // every rule, on the checked event, before it is serialised
    this.send("prediction", this.redaction === null ? ev : this.redaction.prediction(ev));
    return pid;
  }

  /**
   * Log the ground truth of an earlier prediction (a `label`, or `{value}` for regression); return
   * the feedback's `event_id`, or null when the prediction is sampled out (so is its feedback).
   */
  feedback(predictionId: string, label?: string | null, opts: FeedbackOptions = {}): string | null {
    const pid = v.shortText(predictionId, "prediction_id", C.PREDICTION_ID_MAX, 1);
    const value = opts.value;
    if ((label === undefined || label === null) && (value === undefined || value === null)) {
      throw new EventValidationError("label", "feedback needs a label or a value");
    }
    if (!this.sampler.keep(pid)) {
      this.sampledOut++;
      return null;
    }
    const eid = this.ids.nextId();
    const ev: Dict = {
      schema_version: C.FEEDBACK_SCHEMA,
      event_id: eid,
      prediction_id: pid,
      ts: opts.tsMs === undefined || opts.tsMs === null ? this.now() : v.tsMs(opts.tsMs),
      model: this.model,
    };
    if (opts.modelVersion !== undefined && opts.modelVersion !== null) {
      ev.model_version = v.checkName(opts.modelVersion, "model_version", C.FEEDBACK_VERSION_MAX);
    }
    if (label !== undefined && label !== null) ev.label = v.shortText(label, "label");
    if (value !== undefined && value !== null) ev.value = v.finite(value, "value");
    if (truthy(opts.tags)) ev.tags = v.labels(opts.tags, "tags", C.MAX_TAGS);
    this.send("feedback", this.redaction === null ? ev : this.redaction.feedback(ev));
    return eid;
  }

  /**
   * Run `fn`, measure its latency and log the prediction when it ends (sync or async).
   *
   * `fn` gets the record: set `rec.outputs` on it, or return the outputs. A throw (or rejection)
   * is logged as the event's `error` and re-thrown unchanged; a validation error of the record
   * never masks the model's own error.
   */
  timed<T>(fn: (rec: TimedRecord) => T, opts: TimedOptions = {}): T {
    const rec: TimedRecord = {
      predictionId: opts.predictionId ?? this.ids.nextId(),
      inputs: opts.inputs, segment: opts.segment, tags: opts.tags,
    };
    const t0 = process.hrtime.bigint();
    const ms = (): number => Number(process.hrtime.bigint() - t0) / 1e6;
    const done = (result: unknown): void => {
      if (rec.outputs === undefined && isOutputs(result)) rec.outputs = result as Outputs;
      this.logRecord(rec, ms());
    };
    const failed = (exc: unknown): void => {
      const latency = ms();
      try {
        this.logRecord(rec, latency, errorText(exc));
      } catch (logErr) {
        if (!(logErr instanceof EventValidationError)) throw logErr;
        process.emitWarning(`inferwatch: could not log the failed prediction ${rec.predictionId}: ${logErr.message}`);
      }
    };
    let out: T;
    try {
      out = fn(rec);
    } catch (exc) {
      failed(exc);
      throw exc;
    }
    if (out instanceof Promise) {
      return out.then(
        (r) => {
          done(r);
          return r;
        },
        (exc) => {
          failed(exc);
          throw exc;
        },
      ) as T;
    }
    done(out);
    return out;
  }

  private logRecord(rec: TimedRecord, latencyMs: number, error?: string): void {
    this.prediction({
      inputs: rec.inputs, outputs: rec.outputs, latencyMs, segment: rec.segment, tags: rec.tags,
      embedding: rec.embedding, llm: rec.llm, lineage: rec.lineage, error, predictionId: rec.predictionId,
    });
  }

  private send(kind: EventKind, ev: Dict): void {
    const text = JSON.stringify(ev);
    // JSON.stringify writes a lone surrogate as a \udXXX escape (an odd number of backslashes before it).
    if (text.includes("\\ud") && LONE_SURROGATE_ESCAPE.test(text)) {
      // A lone surrogate: Python refuses it (orjson: "str is not valid UTF-8: surrogates not allowed").
      throw new EventValidationError("event", "cannot be serialised: str is not valid UTF-8: surrogates not allowed");
    }
    if (this.closed) {
      this.droppedAfterClose++;
      return;
    }
    this.transport.send(kind, this.key, Buffer.from(text));
  }

  /** Resolves true once queued events are delivered (and the spool replayed), false after `timeoutMs`. */
  flush(timeoutMs = 5000): Promise<boolean> {
    return this.transport.flush(timeoutMs);
  }

  /**
   * Stop logging: deliver what can be delivered in `timeoutMs`, spool the rest, close the
   * producer. Events logged after `close()` are dropped and counted.
   */
  async close(timeoutMs?: number): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.transport.close(timeoutMs ?? this.closeTimeoutMs);
  }

  /** This logger's counters (see `LoggerStats`). */
  stats(): LoggerStats {
    const t = this.transport.stats();
    return { ...t, dropped: t.dropped + this.droppedAfterClose, sampled_out: this.sampledOut };
  }
}

const LONE_SURROGATE_ESCAPE = /(?<!\\)(?:\\\\)*\\ud[89a-f][0-9a-f]{2}/i;

/** Python's truthiness for the optional dicts (`if segment:`): empty containers, "", 0 and null are skipped. */
function truthy(x: unknown): boolean {
  if (x === undefined || x === null || x === false || x === 0 || x === "") return false;
  if (v.isPlainObject(x)) {
    for (const _ in x as object) return true;
    return false;
  }
  if (x instanceof Map) return x.size > 0;
  if (Array.isArray(x)) return x.length > 0;
  return true;
}

function isOutputs(x: unknown): boolean {
  return v.isPlainObject(x) && Object.keys(x as object).some((k) => (C.OUTPUT_FIELDS as readonly string[]).includes(k));
}

/** `Name: message`, as Python's `f"{type(exc).__name__}: {exc}"`, cut to the contract's limit. */
function errorText(exc: unknown): string {
  const text = exc instanceof Error ? `${exc.name}: ${exc.message}` : `Error: ${String(exc)}`;
  return [...text].slice(0, C.ERROR_MAX).join("");
}

// Set by ./kafka.ts when it is loaded (index.ts loads it), so this module has no import of the
// native client and the vectors can run where it is not built.
let kafkaFactory: ((opts: LoggerOptions) => Transport) | null = null;

/** @internal Registers the Kafka transport's factory. */
export function setDefaultTransportFactory(f: (opts: LoggerOptions) => Transport): void {
  kafkaFactory = f;
}

function defaultTransport(opts: LoggerOptions): Transport {
  if (kafkaFactory === null) throw new Error("inferwatch: no Kafka transport is loaded (import @inferwatch/sdk)");
  return kafkaFactory(opts);
}
