/**
 * Redaction: fields dropped or replaced by a keyed hash before an event leaves the process. The
 * Python SDK's rules (`inferwatch.sdk.redaction`) and hashes: BLAKE2b keyed by the salt, 16-byte
 * digest; `"h:" + 16 hex` for field values, 32 hex for LLM text. Same salt, same value: same hash
 * in both SDKs (the shared vectors check it), so drift, cardinality and label joins work across
 * model servers written in either language.
 *
 * Options (keys as in Python): `drop`/`hash` (input fields), `inputs` (`{field: "drop"|"hash"}`),
 * `segment`/`tags` (`{key|"*": mode}`), `outputs` (`label`/`probabilities` drop|hash,
 * `score`/`value` drop), `error` (`keep`|`hash`|`drop`), `llm_text` (`keep`|`hash`), `salt`.
 * The salt is, in order: the `salt` option, `INFERWATCH_REDACTION_SALT`, or the one kept in
 * `<dataDir>/redaction.salt` (made on first use, mode 0600; the file the Python SDK uses).
 *
 * A hashed value is hashed as Python's `str(value)`: numbers as Python prints them. JSON does not
 * tell 5 from 5.0, so an integral number hashes as Python hashes the int 5 (`"5"`), not the float.
 */

import { blake2b } from "@noble/hashes/blake2b";
import { randomBytes } from "node:crypto";
import { chmodSync, linkSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { EventValidationError } from "./errors.js";
import { pyFloatRepr, pyLen } from "./pyfmt.js";
import type { Dict } from "./validate.js";

export const MIN_SALT_BYTES = 16;
export const SALT_FILE = "redaction.salt";
export const REDACTED_ERROR = "redacted";
type Mode = "drop" | "hash";
const MODES = ["drop", "hash"];
const OUTPUT_MODES: Record<string, readonly string[]> = { label: MODES, probabilities: MODES, score: ["drop"], value: ["drop"] };
const OPTIONS = new Set(["drop", "hash", "salt", "llm_text", "inputs", "segment", "tags", "outputs", "error"]);

/** The options of a redaction (the Python SDK's `redact=` dict). */
export interface RedactOptions {
  drop?: string[];
  hash?: string[];
  salt?: string | Buffer;
  llm_text?: "keep" | "hash";
  inputs?: Record<string, Mode>;
  segment?: Record<string, Mode>;
  tags?: Record<string, Mode>;
  outputs?: Record<string, Mode>;
  error?: "keep" | "hash" | "drop";
}

function key(salt: Buffer): Uint8Array {
  // BLAKE2b keys are at most 64 bytes: a longer salt is first hashed down to 64 (never cut).
  return salt.length <= 64 ? salt : blake2b(salt, { dkLen: 64 });
}

/** A stable hex hash of `text` keyed by `salt` (BLAKE2b, 16 bytes), as Python's `text_hash`. */
export function textHash(text: string, salt: Buffer): string {
  if (salt.length === 0) throw new Error("text_hash: a salt is required (unsalted hashes of guessable values can be reversed)");
  return Buffer.from(blake2b(Buffer.from(text, "utf8"), { dkLen: 16, key: key(salt) })).toString("hex");
}

/** Python's `str(value)` for the values a field can hold. */
export function pyStr(v: unknown): string {
  if (v === null || v === undefined) return "None";
  if (typeof v === "boolean") return v ? "True" : "False";
  if (typeof v === "number") return Number.isInteger(v) ? BigInt(v).toString() : pyFloatRepr(v);
  return String(v);
}

/** `"h:"` + 16 hex digits of the keyed hash of `str(value)`: what a hashed field becomes. */
export function valueHash(value: unknown, salt: Buffer): string {
  return `h:${textHash(pyStr(value), salt).slice(0, 16)}`;
}

function checkSalt(salt: Buffer, where: string): Buffer {
  if (salt.length < MIN_SALT_BYTES) {
    throw new Error(`${where}: the redaction salt must be at least ${MIN_SALT_BYTES} bytes, got ${salt.length}`);
  }
  return salt;
}

/** The salt kept in `<dataDir>/redaction.salt`, made (32 random bytes, hex, mode 0600) on first use. */
export function loadOrCreateSalt(dataDir: string): Buffer {
  const path = join(dataDir, SALT_FILE);
  try {
    return readSalt(path);
  } catch (exc) {
    if ((exc as NodeJS.ErrnoException).code !== "ENOENT") throw exc;
  }
  mkdirSync(dataDir, { recursive: true });
  const tmp = join(dataDir, `.${SALT_FILE}.${process.pid}.${randomBytes(4).toString("hex")}`);
  writeFileSync(tmp, `${randomBytes(32).toString("hex")}\n`, { mode: 0o600, flag: "wx" });
  try {
    linkSync(tmp, path); // atomic: a process that published first wins, the others read its salt
  } catch (exc) {
    if ((exc as NodeJS.ErrnoException).code !== "EEXIST") throw exc;
  } finally {
    unlinkSync(tmp);
  }
  return readSalt(path);
}

function readSalt(path: string): Buffer {
  const mode = statSync(path).mode;
  if (mode & 0o077) {
    process.emitWarning(`inferwatch: ${path} was readable by others; narrowing it to 0600`);
    try {
      chmodSync(path, 0o600);
    } catch {
      // reported above; the salt is still usable
    }
  }
  const salt = Buffer.from(readFileSync(path, "latin1").trim(), "latin1");
  if (salt.length < MIN_SALT_BYTES) {
    throw new Error(`${path}: corrupt redaction salt (${salt.length} bytes); delete the file to generate a new one (hashes will change) or restore it`);
  }
  return salt;
}

function modes(value: unknown, option: string): Record<string, Mode> {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new Error(`redact.${option}: must be a mapping of field name to 'drop' or 'hash'`);
  }
  const out: Record<string, Mode> = {};
  for (const [k, m] of Object.entries(value as Dict)) {
    if (!k) throw new Error(`redact.${option}: field names must be non-empty strings, got ''`);
    if (m !== "drop" && m !== "hash") throw new Error(`redact.${option}.${k}: must be 'drop' or 'hash', got ${JSON.stringify(m)}`);
    out[k] = m;
  }
  return out;
}

/** What to hide; build it with `Redaction.of(options, {dataDir})`. */
export class Redaction {
  private constructor(
    readonly inputModes: Record<string, Mode>,
    private readonly salt: Buffer,
    readonly llmText: "keep" | "hash",
    readonly segment: Record<string, Mode>,
    readonly tags: Record<string, Mode>,
    readonly outputs: Record<string, Mode>,
    readonly error: "keep" | "hash" | "drop",
  ) {}

  /** Check the options and resolve the salt when a rule hashes (see the module comment). */
  static of(opts: RedactOptions | string[], where: { dataDir?: string } = {}): Redaction {
    const o: RedactOptions = Array.isArray(opts) ? { drop: opts } : opts;
    if (typeof o !== "object" || o === null) throw new Error("redact: give an options object or a list of input fields to drop");
    const unknown = Object.keys(o).filter((k) => !OPTIONS.has(k)).sort();
    if (unknown.length) throw new Error(`redact: unknown option(s) ${unknown.join(", ")} (known: ${[...OPTIONS].sort().join(", ")})`);
    const llm = o.llm_text ?? "keep";
    if (llm !== "keep" && llm !== "hash") throw new Error(`redact.llm_text: must be 'keep' or 'hash', got ${JSON.stringify(llm)}`);
    const err = o.error ?? "keep";
    if (!["keep", "hash", "drop"].includes(err)) throw new Error(`redact.error: must be 'keep', 'hash' or 'drop', got ${JSON.stringify(err)}`);
    const inModes: Record<string, Mode> = {};
    for (const name of ["drop", "hash"] as const) {
      const v = o[name];
      if (typeof v === "string") throw new Error(`redact.${name}: give a list of field names, not a single string`);
      for (const k of v ?? []) {
        if (inModes[k] !== undefined && inModes[k] !== name) throw new Error(`redact: input field '${k}' is both dropped and hashed`);
        inModes[k] = name;
      }
    }
    for (const [k, m] of Object.entries(modes(o.inputs, "inputs"))) {
      if ((inModes[k] ?? m) !== m) throw new Error(`redact: input field '${k}' is both dropped and hashed`);
      inModes[k] = m;
    }
    const outModes = modes(o.outputs, "outputs");
    for (const [k, m] of Object.entries(outModes)) {
      const allowed = OUTPUT_MODES[k];
      if (!allowed) throw new Error(`redact.outputs.${k}: unknown output field (expected one of ${Object.keys(OUTPUT_MODES).join(", ")})`);
      if (!allowed.includes(m)) throw new Error(`redact.outputs.${k}: a number cannot be hashed, only dropped`);
    }
    const seg = modes(o.segment, "segment");
    const tags = modes(o.tags, "tags");
    const hashes = Object.values(inModes).includes("hash") || llm === "hash" || err === "hash"
      || [seg, tags, outModes].some((m) => Object.values(m).includes("hash"));
    let salt: Buffer = Buffer.alloc(0);
    if (o.salt !== undefined && o.salt !== null && o.salt.length) {
      salt = checkSalt(Buffer.isBuffer(o.salt) ? o.salt : Buffer.from(o.salt, "utf8"), "redact.salt");
    } else if (hashes) {
      const env = process.env.INFERWATCH_REDACTION_SALT;
      salt = env !== undefined
        ? checkSalt(Buffer.from(env, "utf8"), "INFERWATCH_REDACTION_SALT")
        : loadOrCreateSalt(where.dataDir ?? process.env.INFERWATCH_DATA_DIR ?? ".inferwatch");
    }
    return new Redaction(inModes, salt, llm, seg, tags, outModes, err);
  }

  private digest(text: string): string {
    return textHash(text, this.salt);
  }

  private value(v: unknown): string {
    return valueHash(v, this.salt);
  }

  private labelsLike(values: Dict, m: Record<string, Mode>, keepNone = false): Dict {
    const dflt = m["*"];
    if (dflt === undefined && !Object.keys(values).some((k) => k in m)) return values;
    const out: Dict = {};
    for (const [k, v0] of Object.entries(values)) {
      const mode = m[k] ?? dflt;
      if (mode === "drop") continue;
      out[k] = mode === "hash" && !(keepNone && v0 === null) ? this.value(v0) : v0;
    }
    return out;
  }

  private llm(block: Dict): Dict {
    if (this.llmText === "keep") return block;
    const { prompt, completion, ...out } = block;
    if (prompt !== undefined && prompt !== null) out.prompt_hash = this.digest(prompt as string);
    if (completion !== undefined && completion !== null) {
      out.completion_hash = this.digest(completion as string);
      if (!("completion_chars" in out)) out.completion_chars = pyLen(completion as string);
    }
    return out;
  }

  private outputsOf(outputs: Dict): Dict {
    if (!Object.keys(outputs).some((k) => k in this.outputs)) return outputs;
    const out: Dict = {};
    for (const [k, v] of Object.entries(outputs)) {
      const m = this.outputs[k];
      if (m === "drop" || (m !== undefined && (v === null || v === undefined))) continue;
      out[k] = m === "hash"
        ? k === "probabilities"
          ? Object.fromEntries(Object.entries(v as Dict).map(([c, p]) => [this.value(c), p]))
          : this.value(v)
        : v;
    }
    return out;
  }

  /** The checked prediction event with every rule applied (a new object). */
  prediction(ev: Dict): Dict {
    const out = { ...ev };
    if (out.inputs !== undefined && Object.keys(this.inputModes).length) {
      out.inputs = this.labelsLike(out.inputs as Dict, this.inputModes, true);
    }
    if (out.outputs !== undefined && out.outputs !== null) {
      const red = this.outputsOf(out.outputs as Dict);
      if (Object.keys(red).length) out.outputs = red;
      else {
        delete out.outputs;
        if (out.error === undefined || out.error === null) {
          throw new EventValidationError("outputs", "redaction dropped every output field of this prediction; hash the label instead of dropping it");
        }
      }
    }
    if (out.segment !== undefined && Object.keys(this.segment).length) out.segment = this.labelsLike(out.segment as Dict, this.segment);
    if (out.tags !== undefined && Object.keys(this.tags).length) out.tags = this.labelsLike(out.tags as Dict, this.tags);
    if (out.error !== undefined && out.error !== null && this.error !== "keep") {
      out.error = this.error === "drop" ? REDACTED_ERROR : this.value(out.error);
    }
    if (out.llm !== undefined) out.llm = this.llm(out.llm as Dict);
    return out;
  }

  /** The feedback event with the `tags` rules and, when `outputs.label` is redacted, its label hashed. */
  feedback(ev: Dict): Dict {
    const out = { ...ev };
    if (out.tags !== undefined && Object.keys(this.tags).length) out.tags = this.labelsLike(out.tags as Dict, this.tags);
    if (out.label !== undefined && "label" in this.outputs) out.label = this.value(out.label);
    return out;
  }

  /** Never shows the salt. */
  toString(): string {
    return `Redaction(inputs=${JSON.stringify(this.inputModes)}, segment=${JSON.stringify(this.segment)}, tags=${JSON.stringify(this.tags)}, outputs=${JSON.stringify(this.outputs)}, error=${this.error}, llm_text=${this.llmText}, salt=${this.salt.length ? "set" : "unset"})`;
  }
}
