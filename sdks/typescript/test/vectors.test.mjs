// The shared SDK test vectors (schemas/vectors/sdk.v1.json) against the TypeScript SDK; the Python
// SDK runs the same file (tests/unit/sdk/test_vectors.py). Each case: a fresh logger with fixed ids
// and clock and an in-memory transport; the events must equal the vectors' field for field, the
// refusals name the same field with the same text. Every event sent is also validated against the
// contract's JSON Schema (schemas/events/*.schema.json) with ajv.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import Ajv2020 from "ajv/dist/2020.js";
import { EventValidationError, IdGenerator, InferenceLogger, MemoryTransport, topicsFor } from "../dist/esm/index.js";

const root = new URL("../../../", import.meta.url);
const doc = JSON.parse(readFileSync(new URL("schemas/vectors/sdk.v1.json", root), "utf8"));
const schema = (name) => JSON.parse(readFileSync(new URL(`schemas/events/${name}.v1.schema.json`, root), "utf8"));
const ajv = new Ajv2020.default({ strict: false, allErrors: true });
const validators = { prediction: ajv.compile(schema("prediction")), feedback: ajv.compile(schema("feedback")) };

const FLOATS = { nan: NaN, inf: Infinity, "-inf": -Infinity };

/** The vector file's encoding of values JSON cannot hold (see its $comment). */
export function decode(v) {
  if (Array.isArray(v)) return v.map(decode);
  if (v !== null && typeof v === "object") {
    const keys = Object.keys(v);
    if (keys.length === 1 && keys[0] === "$float") return FLOATS[v.$float];
    if (keys.length === 1 && keys[0] === "$repeat") return v.$repeat[0].repeat(v.$repeat[1]);
    if (keys.length === 1 && keys[0] === "$dict") {
      const spec = v.$dict;
      const names = spec.keys ? spec.keys.map(decode) : Array.from({ length: spec.n }, (_, i) => `${spec.prefix}${i}`);
      return Object.fromEntries(names.map((k) => [k, decode(spec.value)]));
    }
    return Object.fromEntries(keys.map((k) => [k, decode(v[k])]));
  }
  return v;
}

const camel = (k) => k.replace(/_([a-z])/g, (_, c) => c.toUpperCase());

function call(log, name, args) {
  if (name === "prediction") {
    return log.prediction(Object.fromEntries(Object.entries(args).map(([k, v]) => [camel(k), v])));
  }
  if (name === "feedback") {
    const { prediction_id, label, ...rest } = args;
    return log.feedback(prediction_id, label, Object.fromEntries(Object.entries(rest).map(([k, v]) => [camel(k), v])));
  }
  throw new Error(`unknown call ${name}`);
}

function refused(fn, want) {
  assert.throws(fn, (exc) => {
    assert.ok(exc instanceof EventValidationError, `not an EventValidationError: ${exc}`);
    assert.equal(exc.field, want.field);
    assert.equal(exc.message, want.message);
    return true;
  });
}

for (const c of doc.cases) {
  test(`vector: ${c.name}`, () => {
    const conf = { ...doc.defaults, ...(c.logger ?? {}) };
    const first = c.calls[0];
    if (first.call === "logger") {
      const args = decode(first.args);
      refused(() => new InferenceLogger({ model: args.model, modelVersion: args.model_version, transport: new MemoryTransport() }), first.error);
      return;
    }
    const transport = new MemoryTransport();
    const log = new InferenceLogger({
      model: conf.model, modelVersion: conf.model_version, sampleRate: conf.sample_rate, redact: conf.redact,
      transport, ids: new IdGenerator(conf.id_prefix), clock: () => conf.now_ms,
    });
    for (const k of c.calls) {
      const before = transport.sent.length;
      const args = decode(k.args);
      if (k.error) {
        refused(() => call(log, k.call, args), k.error);
        assert.equal(transport.sent.length, before, "a refused call sent something");
        continue;
      }
      assert.equal(call(log, k.call, args), k.returns);
      if (k.sampled_out) {
        assert.equal(transport.sent.length, before);
        continue;
      }
      assert.equal(transport.sent.length, before + 1);
      const sent = transport.sent.at(-1);
      assert.equal(sent.kind, k.topic);
      assert.equal(sent.key.toString(), conf.model);
      const got = JSON.parse(sent.payload.toString("utf8"));
      const want = decode(k.event);
      assert.deepEqual(Object.keys(got), Object.keys(want), "top-level keys in another order");
      assert.deepEqual(got, want);
      assert.ok(validators[k.topic](got), JSON.stringify(validators[k.topic].errors));
    }
  });
}

test("topics come from the registry, under the prefix", () => {
  assert.deepEqual(topicsFor("t1."), { prediction: "t1.inferwatch.predictions", feedback: "t1.inferwatch.feedback" });
});
