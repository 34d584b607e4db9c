/**
 * Deterministic sampling by the CRC-32 of `prediction_id`, as the Python SDK samples
 * (`inferwatch.sdk.sampling`): the same id and rate give the same decision in both SDKs, so feedback
 * logged by a Python process is kept exactly when a TypeScript process kept its prediction.
 */
import { crc32 } from "./crc32.js";

const SPACE = 2 ** 32;

/** The rate for `model`: one number for every model, or a per-model mapping (`"*"` = default). */
export function resolveRate(sampleRate: number | Record<string, number> | undefined, model: string): number {
  if (sampleRate === undefined || sampleRate === null) return 1.0;
  const rate = typeof sampleRate === "object" ? (sampleRate[model] ?? sampleRate["*"] ?? 1.0) : sampleRate;
  if (typeof rate !== "number" || !(rate >= 0 && rate <= 1)) {
    throw new RangeError(`sample_rate: must be a number in [0, 1], got ${String(rate)}`);
  }
  return rate;
}

/** Keeps a `rate` share of prediction ids, always the same ones. */
export class Sampler {
  readonly rate: number;
  readonly keepAll: boolean;
  private readonly threshold: number;

  constructor(rate: number) {
    this.rate = rate;
    this.keepAll = rate >= 1.0;
    this.threshold = Math.trunc(rate * SPACE);
  }

  /** Whether events of `predictionId` are logged. */
  keep(predictionId: string): boolean {
    return this.keepAll || crc32(predictionId) < this.threshold;
  }
}
