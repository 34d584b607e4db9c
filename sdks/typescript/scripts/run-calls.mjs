// Runs SDK calls read from a JSON file (argv[2]) through one logger with fixed ids and clock and an
// in-memory transport, and prints one JSON line per call: {"ok": event|null, "returns": ...} or
// {"field", "message"}. tests/integration/test_sdk_typescript.py feeds it random calls and
// compares the answers with the Python SDK's (values in the vectors' encoding: $float, $repeat).
import { readFileSync } from "node:fs";
import { EventValidationError, IdGenerator, InferenceLogger, MemoryTransport } from "../dist/esm/index.js";

const FLOATS = { nan: NaN, inf: Infinity, "-inf": -Infinity };
function decode(v) {
  if (Array.isArray(v)) return v.map(decode);
  if (v !== null && typeof v === "object") {
    const keys = Object.keys(v);
    if (keys.length === 1 && keys[0] === "$float") return FLOATS[v.$float];
    if (keys.length === 1 && keys[0] === "$repeat") return v.$repeat[0].repeat(v.$repeat[1]);
    return Object.fromEntries(keys.map((k) => [k, decode(v[k])]));
  }
  return v;
}
const camel = (k) => k.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
const { logger, calls } = JSON.parse(readFileSync(process.argv[2], "utf8"));
const transport = new MemoryTransport();
const log = new InferenceLogger({
  model: logger.model, modelVersion: logger.model_version, transport, ids: new IdGenerator(logger.id_prefix),
  clock: () => logger.now_ms, sampleRate: logger.sample_rate, redact: logger.redact,
});
const out = [];
for (const c of calls) {
  const args = decode(c.args);
  const before = transport.sent.length;
  try {
    let returns;
    if (c.call === "prediction") {
      returns = log.prediction(Object.fromEntries(Object.entries(args).map(([k, v]) => [camel(k), v])));
    } else {
      const { prediction_id, label, ...rest } = args;
      returns = log.feedback(prediction_id, label, Object.fromEntries(Object.entries(rest).map(([k, v]) => [camel(k), v])));
    }
    const sent = transport.sent.length > before ? JSON.parse(transport.sent.at(-1).payload.toString("utf8")) : null;
    out.push({ ok: sent, returns });
  } catch (exc) {
    if (!(exc instanceof EventValidationError)) throw exc;
    out.push({ field: exc.field, message: exc.message });
  }
}
console.log(JSON.stringify(out));
