/**
 * The SDK's validator: checks an SDK call against the event contract and names the offending field.
 *
 * The rules and error texts are the Python SDK's (`inferwatch.sdk.call_checks`), the numbers are the
 * contract's, read from the JSON Schemas at build time (`contract.generated.ts`, made by
 * scripts/gen-contract.mjs); the shared vectors (schemas/vectors/sdk.v1.json) hold both SDKs to the
 * same events and the same refusals. Like the Python validator, it returns the caller's own objects
 * when nothing needs converting (no copies on the hot path).
 */

import { CONTRACT as C } from "./contract.generated.js";
import { EventValidationError as Err } from "./errors.js";
import { pyFloatRepr, pyLen, pyRepr, pyType } from "./pyfmt.js";

export type Scalar = number | boolean | string | null;
export type Dict<T = unknown> = Record<string, T>;

const NAME_RE = new RegExp(C.NAME_PATTERN);
export const SHORT = C.SHORT_TEXT_MAX;
const OUTPUT_FIELDS: readonly string[] = C.OUTPUT_FIELDS;
const LLM_FIELDS = new Set<string>(C.LLM_FIELDS);
const LINEAGE_KINDS = new Set<string>(C.LINEAGE_KINDS);
const LINEAGE_KEYS = new Set(["kind", "model", "model_version", "share"]);

// Names seen valid once are remembered, so the regex runs once per feature name, not per event.
const KNOWN_NAMES = new Set<string>();
const KNOWN_NAMES_MAX = 100_000;

/** A float bound as Python prints it in a message (`0.0`, `1.0`). */
const bound = (x: number): string => pyFloatRepr(x);

/** A plain object (or a Map, converted), else throws `must be a dict`. */
export function asDict(value: unknown, path: string): Dict {
  if (isPlainObject(value)) return value as Dict;
  if (value instanceof Map) return Object.fromEntries(value);
  throw new Err(path, `must be a dict, got ${pyType(value)}`);
}

export function isPlainObject(v: unknown): boolean {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** A model/feature/segment name: 1..maxLen chars of the contract's name alphabet. */
export function checkName(value: unknown, path: string, maxLen: number = C.NAME_MAX): string {
  if (typeof value !== "string") throw new Err(path, `must be a str, got ${pyType(value)}`);
  const n = pyLen(value);
  if (!(n > 0 && n <= maxLen)) throw new Err(path, `must be 1..${maxLen} characters, got ${n}`);
  if (!NAME_RE.test(value)) throw new Err(path, `${pyRepr(value)} has characters outside [${C.NAME_ALPHABET}]`);
  return value;
}

function key(k: string, path: string): void {
  checkName(k, `${path}[${pyRepr(k)}]`);
  if (KNOWN_NAMES.size < KNOWN_NAMES_MAX) KNOWN_NAMES.add(k);
}

function checkKeys(d: Dict, path: string): void {
  for (const k in d) if (!KNOWN_NAMES.has(k)) key(k, path);
}

/** A number: what Python calls `finite()`: a finite number (not bool), optionally within [lo, hi]. */
export function finite(v: unknown, path: string, lo?: number, hi?: number): number {
  if (typeof v === "bigint") v = Number(v);
  if (typeof v !== "number") throw new Err(path, `must be a number, got ${pyType(v)}`);
  if (!Number.isFinite(v)) throw new Err(path, `must be finite, got ${pyRepr(v)}`);
  if (lo !== undefined && v < lo) throw new Err(path, `must be ≥ ${bound(lo)}, got ${pyRepr(v)}`);
  if (hi !== undefined && v > hi) throw new Err(path, `must be ≤ ${bound(hi)}, got ${pyRepr(v)}`);
  return v;
}

/** An integer in `0..hi` (not bool). */
export function nonNegativeInt(v: unknown, path: string, hi: number): number {
  if (typeof v === "bigint" && v >= 0n && v <= BigInt(hi)) v = Number(v);
  if (typeof v !== "number" || !Number.isInteger(v)) {
    if (typeof v === "bigint") throw new Err(path, `must be in 0..${hi}, got ${v}`);
    throw new Err(path, `must be an int, got ${pyType(v)}`);
  }
  if (!(v >= 0 && v <= hi)) throw new Err(path, `must be in 0..${hi}, got ${pyRepr(v)}`);
  return v;
}

/** A string of `minLen..maxLen` characters (code points, as Python counts them). */
export function shortText(v: unknown, path: string, maxLen: number = SHORT, minLen = 0): string {
  if (typeof v !== "string") throw new Err(path, `must be a str, got ${pyType(v)}`);
  const n = pyLen(v);
  if (!(n >= minLen && n <= maxLen)) throw new Err(path, `must be ${minLen}..${maxLen} characters, got ${n}`);
  return v;
}

/** `{Name: number|bool|str(≤256)|null}` with finite numbers, at most MAX_INPUTS entries. */
export function features(inputs: unknown, path = "inputs"): Dict<Scalar> {
  const d = asDict(inputs, path);
  const n = Object.keys(d).length;
  if (n > C.MAX_INPUTS) throw new Err(path, `at most ${C.MAX_INPUTS} features, got ${n}`);
  checkKeys(d, path);
  let fixed: Dict<Scalar> | null = null;
  for (const k in d) {
    const val = d[k];
    switch (typeof val) {
      case "number":
        if (!Number.isFinite(val)) throw new Err(`${path}.${k}`, `must be finite, got ${pyRepr(val)}`);
        break;
      case "string":
        if (val.length > SHORT && pyLen(val) > SHORT) {
          throw new Err(`${path}.${k}`, `strings are at most ${SHORT} characters, got ${pyLen(val)}`);
        }
        break;
      case "boolean":
        break;
      case "bigint": {
        // Python sends an int beyond what JSON numbers carry as the double it is; so does this.
        fixed ??= { ...(d as Dict<Scalar>) };
        fixed[k] = finite(Number(val), `${path}.${k}`);
        break;
      }
      default:
        if (val !== null) {
          throw new Err(`${path}.${k}`, `a feature must be a number, bool, str or None, got ${pyType(val)}`);
        }
    }
  }
  return fixed ?? (d as Dict<Scalar>);
}

/** `{Name: str(≤256)}` (segment, tags). */
export function labels(value: unknown, path: string, maxItems: number): Dict<string> {
  const d = asDict(value, path);
  const n = Object.keys(d).length;
  if (n > maxItems) throw new Err(path, `at most ${maxItems} entries, got ${n}`);
  checkKeys(d, path);
  for (const k in d) {
    const v = d[k];
    if (typeof v !== "string" || v.length > SHORT) shortText(v, `${path}.${k}`);
  }
  return d as Dict<string>;
}

/** `{label?, score?, probabilities?, value?}` with at least one set; other keys are an error. */
export function outputs(value: unknown, path = "outputs"): Dict {
  if (!isPlainObject(value)) {
    if (value instanceof Map) value = Object.fromEntries(value);
    else throw new Err(path, `must be a dict with ${OUTPUT_FIELDS.join("/")}, got ${pyType(value)}`);
  }
  const d = value as Dict;
  let fixed: Dict | null = null;
  let anySet = false;
  for (const k in d) {
    const v = d[k];
    if (v === null || v === undefined) continue;
    anySet = true;
    if (k === "label") {
      if (typeof v !== "string" || v.length > SHORT) shortText(v, `${path}.label`);
    } else if (k === "score" || k === "value") {
      const c = finite(v, `${path}.${k}`);
      if (c !== v) (fixed ??= { ...d })[k] = c;
    } else if (k === "probabilities") {
      const c = probabilities(v, `${path}.probabilities`);
      if (c !== v) (fixed ??= { ...d })[k] = c;
    } else {
      throw new Err(`${path}.${k}`, `unknown output field (expected one of ${OUTPUT_FIELDS.join(", ")})`);
    }
  }
  if (!anySet) throw new Err(path, `needs at least one of ${OUTPUT_FIELDS.join(", ")}`);
  return fixed ?? d;
}

function probabilities(v: unknown, path: string): Dict<number> {
  const d = asDict(v, path);
  const n = Object.keys(d).length;
  if (n > C.MAX_PROBABILITIES) throw new Err(path, `at most ${C.MAX_PROBABILITIES} classes, got ${n}`);
  for (const k in d) {
    shortText(k, `${path}[${pyRepr(k)}]`);
    finite(d[k], `${path}.${k}`, 0.0, 1.0);
  }
  return d as Dict<number>;
}

/** A list (or typed array) of finite numbers, `minLen..maxLen` long, optionally ≤ `hi`. */
export function floatList(v: unknown, path: string, minLen: number, maxLen: number, hi?: number): number[] {
  let list: unknown[];
  if (Array.isArray(v)) list = v;
  else if (v instanceof Float32Array || v instanceof Float64Array || v instanceof Int32Array) list = Array.from(v);
  else throw new Err(path, `must be a list of numbers, got ${pyType(v)}`);
  if (!(list.length >= minLen && list.length <= maxLen)) {
    throw new Err(path, `must have ${minLen}..${maxLen} items, got ${list.length}`);
  }
  for (let i = 0; i < list.length; i++) {
    const x = list[i];
    if (typeof x === "number" && Number.isFinite(x) && (hi === undefined || x <= hi)) continue;
    finite(x, `${path}[${i}]`, undefined, hi);
  }
  return list as number[];
}

/** The LLM block: texts, hashes, token log-probabilities (≤ 0), token counts, finish reason. */
export function llmBlock(v: unknown, path = "llm"): Dict {
  const d = asDict(v, path);
  const out: Dict = {};
  for (const k in d) {
    const x = d[k];
    const p = `${path}.${k}`;
    if (!LLM_FIELDS.has(k)) throw new Err(p, `unknown LLM field (expected one of ${[...LLM_FIELDS].join(", ")})`);
    if (x === null || x === undefined) continue;
    if (k === "prompt" || k === "completion") out[k] = shortText(x, p, C.LLM_TEXT_MAX);
    else if (k === "prompt_hash" || k === "completion_hash") out[k] = shortText(x, p, C.HASH_MAX, 1);
    else if (k === "completion_chars" || k === "input_tokens" || k === "output_tokens") {
      out[k] = nonNegativeInt(x, p, C.LLM_COUNT_MAX);
    } else if (k === "refusal") {
      if (typeof x !== "boolean") throw new Err(p, `must be a bool, got ${pyType(x)}`);
      out[k] = x;
    } else if (k === "token_logprobs") out[k] = floatList(x, p, 0, C.MAX_LOGPROBS, 0.0);
    else if (k === "top_logprobs") {
      if (!Array.isArray(x)) throw new Err(p, `must be a list of lists of numbers, got ${pyType(x)}`);
      if (x.length > C.MAX_LOGPROBS) throw new Err(p, `at most ${C.MAX_LOGPROBS} tokens, got ${x.length}`);
      out[k] = x.map((r, i) => floatList(r, `${p}[${i}]`, 0, C.MAX_TOP_LOGPROBS_PER_TOKEN, 0.0));
    } else out[k] = shortText(x, p); // finish_reason
  }
  return out;
}

/** A list (≤ MAX_LINEAGE) of `{kind, model, model_version, share}`. */
export function lineage(v: unknown, path = "lineage"): Dict[] {
  if (!Array.isArray(v)) throw new Err(path, `must be a list of dicts, got ${pyType(v)}`);
  if (v.length > C.MAX_LINEAGE) throw new Err(path, `at most ${C.MAX_LINEAGE} entries, got ${v.length}`);
  return v.map((raw, i) => {
    const p = `${path}[${i}]`;
    const ref = asDict(raw, p);
    const unknown = Object.keys(ref).filter((k) => !LINEAGE_KEYS.has(k)).sort();
    if (unknown.length) {
      throw new Err(`${p}.${unknown[0]}`, "unknown lineage field (expected kind, model, model_version, share)");
    }
    const kind = "kind" in ref ? ref.kind : C.LINEAGE_KIND_DEFAULT;
    if (typeof kind !== "string" || !LINEAGE_KINDS.has(kind)) {
      throw new Err(`${p}.kind`, `must be one of ${pyRepr([...LINEAGE_KINDS].sort())}, got ${pyRepr(kind)}`);
    }
    if (!("model" in ref)) throw new Err(`${p}.model`, "is required");
    const model = checkName(ref.model, `${p}.model`);
    if (!("model_version" in ref)) throw new Err(`${p}.model_version`, "is required");
    const modelVersion = checkName(ref.model_version, `${p}.model_version`, C.VERSION_MAX);
    const share = finite("share" in ref ? ref.share : 1.0, `${p}.share`, 0.0, 1.0);
    return { kind, model, model_version: modelVersion, share };
  });
}

/** A timestamp given by the caller: integer ms since the epoch within the contract's range. */
export function tsMs(v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < C.TS_MIN_MS || v > C.TS_MAX_MS) {
    throw new Err("ts_ms", `must be an int of ms since the epoch, got ${pyRepr(v)}`);
  }
  return v;
}
