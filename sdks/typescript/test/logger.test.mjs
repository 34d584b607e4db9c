// The logger's behaviour beyond the vectors: timed() (sync, async, throwing), close(), stats(),
// Python-style number printing, the spool's wire format, the CommonJS build.
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { EventValidationError, InferenceLogger, MemoryTransport, Spool, frame, parse } from "../dist/esm/index.js";
import { pyFloatRepr } from "../dist/esm/pyfmt.js";

const mk = (extra = {}) => {
  const transport = new MemoryTransport();
  const log = new InferenceLogger({ model: "m", modelVersion: "v1", transport, ...extra });
  const events = () => transport.sent.map((s) => JSON.parse(s.payload.toString()));
  return { log, transport, events };
};

test("ids are <16 hex>-<counter>, the prediction id is the event id", () => {
  const { log, events } = mk();
  const a = log.prediction({ outputs: { score: 0.5 } });
  const b = log.prediction({ outputs: { score: 0.5 } });
  assert.match(a, /^[0-9a-f]{16}-1$/);
  assert.equal(b, a.replace(/-1$/, "-2"));
  assert.equal(events()[0].event_id, a);
  assert.ok(Math.abs(events()[0].ts - Date.now()) < 5000);
});

test("timed: sync function returning outputs, latency measured", () => {
  const { log, events } = mk();
  const out = log.timed(() => {
    const t = Date.now();
    while (Date.now() - t < 5);
    return { label: "yes" };
  }, { inputs: { x: 1 } });
  assert.deepEqual(out, { label: "yes" });
  const [ev] = events();
  assert.deepEqual(ev.outputs, { label: "yes" });
  assert.deepEqual(ev.inputs, { x: 1 });
  assert.ok(ev.latency_ms >= 4, `latency ${ev.latency_ms}`);
  assert.equal(ev.prediction_id, ev.event_id.replace(/-2$/, "-1"));
});

test("timed: async function setting rec.outputs", async () => {
  const { log, events } = mk();
  const r = await log.timed(async (rec) => {
    await new Promise((res) => setTimeout(res, 10));
    rec.outputs = { score: 0.25 };
    return 42;
  }, { predictionId: "req-9" });
  assert.equal(r, 42);
  const [ev] = events();
  assert.equal(ev.prediction_id, "req-9");
  assert.deepEqual(ev.outputs, { score: 0.25 });
  assert.ok(ev.latency_ms >= 5);
});

test("timed: the model's error is logged and re-thrown unchanged (sync and async)", async () => {
  const { log, events } = mk();
  const boom = new TypeError("bad tensor");
  assert.throws(() => log.timed(() => { throw boom; }), (e) => e === boom);
  await assert.rejects(log.timed(async () => { throw new RangeError("late"); }), RangeError);
  const [a, b] = events();
  assert.equal(a.error, "TypeError: bad tensor");
  assert.equal(b.error, "RangeError: late");
  assert.equal(a.outputs, undefined);
});

test("timed: a bad record never masks the model's error", () => {
  const { log, events } = mk();
  const boom = new Error("model down");
  assert.throws(() => log.timed(() => { throw boom; }, { inputs: { "bad key": 1 } }), (e) => e === boom);
  assert.equal(events().length, 0);
});

test("timed: a bad record of a successful call throws the validation error", () => {
  const { log } = mk();
  assert.throws(() => log.timed(() => ({ label: 5 })), EventValidationError);
});

test("close(): later events are dropped and counted; stats", async () => {
  const { log } = mk();
  log.prediction({ outputs: { label: "a" } });
  await log.close();
  log.prediction({ outputs: { label: "b" } });
  const s = log.stats();
  assert.equal(s.logged, 1);
  assert.equal(s.dropped, 1);
  assert.equal(s.sampled_out, 0);
});

test("sampling counts what it leaves out", () => {
  const { log, transport } = mk({ sampleRate: 0 });
  log.prediction({ outputs: { label: "a" } });
  assert.equal(transport.sent.length, 0);
  assert.equal(log.stats().sampled_out, 1);
  assert.throws(() => mk({ sampleRate: 2 }), /sample_rate: must be a number in \[0, 1\], got 2/);
});

test("a lone surrogate is refused as Python refuses it", () => {
  const { log } = mk();
  assert.throws(() => log.prediction({ outputs: { label: "\ud800" } }), /^EventValidationError: event: cannot be serialised/);
});

test("floats print as Python's repr", () => {
  const cases = [[0.5, "0.5"], [1e-5, "1e-05"], [1.5e-7, "1.5e-07"], [0.0001, "0.0001"], [1e16, "1e+16"],
    [123456.789, "123456.789"], [1e22, "1e+22"], [-2.5, "-2.5"], [1, "1.0"], [NaN, "nan"], [-Infinity, "-inf"]];
  for (const [x, want] of cases) assert.equal(pyFloatRepr(x), want, String(x));
});

test("spool: Python's wire format, replay order, corruption skipped", () => {
  const dir = mkdtempSync(join(tmpdir(), "iw-spool-"));
  // The bytes the Python SDK writes for (kind 0, key b"m", value b"{}"): magic, length, crc32, body.
  // (computed with inferwatch.sdk.spool.frame(0, b"m", b"{}"))
  assert.equal(frame("prediction", Buffer.from("m"), Buffer.from("{}")).toString("hex"), "4957533106000000dc7dd22e0001006d7b7d");
  const sp = new Spool(dir, 1 << 20);
  for (let i = 0; i < 5; i++) assert.ok(sp.append(i % 2 ? "feedback" : "prediction", Buffer.from("m"), Buffer.from(`{"i":${i}}`)));
  sp.close();
  const seg = readdirSync(dir).find((n) => n.startsWith("seg-"));
  const path = join(dir, seg);
  const buf = readFileSync(path);
  // corrupt the second record's checksum: it is skipped, the others survive
  const ends = parse(buf).ends;
  buf[ends[0] + 8] ^= 0xff;
  writeFileSync(path, buf);
  const sp2 = new Spool(dir, 1 << 20);
  const got = sp2.readBatch(100);
  assert.deepEqual(got.map((r) => JSON.parse(r.payload).i), [0, 2, 3, 4]);
  assert.deepEqual(got.map((r) => r.kind), ["prediction", "prediction", "feedback", "prediction"]);
  assert.equal(sp2.corruptSkipped, 1);
  sp2.commitBatch();
  assert.ok(sp2.isEmpty());
  assert.equal(sp2.append("prediction", Buffer.from("m"), Buffer.alloc(2 << 20)), false, "beyond maxBytes: refused");
  sp2.close();
});

test("the CommonJS build works with require()", () => {
  const require = createRequire(import.meta.url);
  const sdk = require("../dist/cjs/index.js");
  const transport = new sdk.MemoryTransport();
  const log = new sdk.InferenceLogger({ model: "m", modelVersion: "v", transport });
  log.prediction({ outputs: { value: 1.5 } });
  assert.equal(JSON.parse(transport.sent[0].payload).outputs.value, 1.5);
  assert.ok(new sdk.EventValidationError("a", "b") instanceof Error);
});

test("a backslash before 'ud800' in a text is not a surrogate", () => {
  const { log, events } = mk();
  log.prediction({ outputs: { label: "C:\\ud800" } });
  assert.equal(events()[0].outputs.label, "C:\\ud800");
  assert.throws(() => log.prediction({ outputs: { label: "a\\\ud83d" } }), /surrogates not allowed/);
});

test("CRC-32: the JavaScript twin (Node 18) equals node:zlib's and Python's", async () => {
  const { crc32, crc32Fallback } = await import("../dist/esm/crc32.js");
  // zlib.crc32(b"abc") and zlib.crc32("Zürich 🌍".encode()) in Python
  assert.equal(crc32("abc"), 891568578);
  assert.equal(crc32Fallback(Buffer.from("abc")), 891568578);
  const s = Buffer.from("Zürich 🌍");
  assert.equal(crc32Fallback(s), 4224135420);
  assert.equal(crc32(s), 4224135420);
});

test("redaction salt: made once in <dataDir>/redaction.salt (0600), reused, env var first", async () => {
  const { Redaction, valueHash } = await import("../dist/esm/index.js");
  const { statSync, chmodSync } = await import("node:fs");
  const dir = mkdtempSync(join(tmpdir(), "iw-salt-"));
  const saved = process.env.INFERWATCH_REDACTION_SALT;
  delete process.env.INFERWATCH_REDACTION_SALT;
  try {
    const a = mk({ redact: { hash: ["user"] }, dataDir: dir });
    const b = mk({ redact: { hash: ["user"] }, dataDir: dir });
    a.log.prediction({ inputs: { user: "ann" }, outputs: { score: 1 } });
    b.log.prediction({ inputs: { user: "ann" }, outputs: { score: 1 } });
    const salt = readFileSync(join(dir, "redaction.salt"), "utf8").trim();
    assert.equal(salt.length, 64);
    assert.equal(statSync(join(dir, "redaction.salt")).mode & 0o777, 0o600);
    assert.equal(a.events()[0].inputs.user, valueHash("ann", Buffer.from(salt)));
    assert.equal(a.events()[0].inputs.user, b.events()[0].inputs.user);
    chmodSync(join(dir, "redaction.salt"), 0o644);
    mk({ redact: { hash: ["user"] }, dataDir: dir });
    assert.equal(statSync(join(dir, "redaction.salt")).mode & 0o777, 0o600, "narrowed back to 0600");
    process.env.INFERWATCH_REDACTION_SALT = "from-the-environment-0123";
    const c = mk({ redact: { hash: ["user"] }, dataDir: dir });
    c.log.prediction({ inputs: { user: "ann" }, outputs: { score: 1 } });
    assert.equal(c.events()[0].inputs.user, valueHash("ann", Buffer.from("from-the-environment-0123")));
    process.env.INFERWATCH_REDACTION_SALT = "short";
    assert.throws(() => mk({ redact: { hash: ["user"] } }), /at least 16 bytes, got 5/);
  } finally {
    if (saved === undefined) delete process.env.INFERWATCH_REDACTION_SALT;
    else process.env.INFERWATCH_REDACTION_SALT = saved;
  }
  assert.throws(() => Redaction.of({ drop: ["a"], hash: ["a"] }), /input field 'a' is both dropped and hashed/);
  assert.throws(() => Redaction.of({ outputs: { score: "hash" } }), /a number cannot be hashed/);
  assert.throws(() => Redaction.of({ colour: "x" }), /unknown option/);
});
