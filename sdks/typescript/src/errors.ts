/**
 * Errors of the TypeScript SDK. As in the Python SDK, only a caller's programming error throws
 * (an SDK call with a value the event contract does not allow); transport trouble never throws
 * into a model server: it is counted in `InferenceLogger.stats()`.
 */

/** An SDK call got a value the event contract does not allow. `field` is its path (`inputs.age`). */
export class EventValidationError extends Error {
  /** The offending field's path, spelled as the Python SDK spells it (`inputs.age`, `llm.top_logprobs[0]`). */
  readonly field: string;
  /** What is wrong with it. */
  readonly reason: string;

  constructor(field: string, reason: string) {
    super(`${field}: ${reason}`);
    this.name = "EventValidationError";
    this.field = field;
    this.reason = reason;
  }
}
