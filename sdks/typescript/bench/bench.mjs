// The TypeScript SDK's cost, against a bare produce() of the same client (node-rdkafka, the SDK's
// producer settings) in the same run: run by bench/bench_sdk_ts.py (`python -m bench sdk_ts`),
// which starts the broker and passes INFERWATCH_KAFKA_BOOTSTRAP / INFERWATCH_TOPIC_PREFIX.
// Prints one JSON object on stdout.
//
// * caller cost: per-call time of log.prediction() vs JSON.stringify(event) + produce(), each
//   call timed with process.hrtime; blocks alternate (raw, SDK, ...) and end with a flush, so the
//   librdkafka queue never fills and load from other processes falls on both alike;
// * throughput: events/s of the same loops timed as a whole, flush included.
import Kafka from "node-rdkafka";
import { InferenceLogger, PRODUCER_DEFAULTS, topicsFor } from "../dist/esm/index.js";

const bootstrap = process.env.INFERWATCH_KAFKA_BOOTSTRAP;
const prefix = process.env.INFERWATCH_TOPIC_PREFIX ?? "";
const n = Number(process.env.IW_BENCH_EVENTS ?? "200000");
const per = Math.min(20_000, n);
const blocks = Math.max(1, Math.floor(n / per));
if (!bootstrap) throw new Error("INFERWATCH_KAFKA_BOOTSTRAP is not set");

/** A 15-feature input, as bench/bench_sdk.py's: 10 numeric, 3 categorical, 1 bool, 1 int. */
function features(i) {
  const f = {};
  for (let k = 0; k < 10; k++) f[`num_${k}`] = (i % 97) * 0.5 + k + 0.25;
  Object.assign(f, { device: "pixel-9", country: "de", app_version: "8.1", is_new_user: Boolean(i & 1), image_width: 4032 });
  return f;
}
const OUTPUTS = { label: "genuine", score: 0.93 };
const SEGMENT = { device: "pixel-9" };
const inputs = Array.from({ length: 1000 }, (_, i) => features(i));
const topic = topicsFor(prefix).prediction;
const key = Buffer.from("bench-model");

const raw = new Kafka.Producer({ ...PRODUCER_DEFAULTS, "bootstrap.servers": bootstrap, "client.id": "bench-raw", dr_cb: true }, {});
let rawInflight = 0;
raw.on("delivery-report", () => rawInflight--);
await new Promise((res, rej) => raw.connect({}, (err) => (err ? rej(err) : res())));
raw.setPollInterval(50);
const rawFlush = () => new Promise((res) => {
  const step = () => (rawInflight <= 0 ? res() : raw.flush(200, step));
  step();
});

const log = new InferenceLogger({ model: "bench-model", modelVersion: "1", bootstrap, topicPrefix: prefix });
await log.flush(30_000); // connected before the clock starts, as the raw producer is

let counter = 0;
function rawEvent(i) {
  counter++;
  return JSON.stringify({
    schema_version: "prediction.v1", event_id: `e${counter.toString(16)}`, prediction_id: String(counter),
    ts: Date.now(), model: "bench-model", model_version: "1", inputs: inputs[i % 1000], outputs: OUTPUTS,
    latency_ms: 1.5, segment: SEGMENT,
  });
}

const rawNs = [];
const sdkNs = [];
let rawS = 0;
let sdkS = 0;
for (let b = 0; b < blocks; b++) {
  let t0 = process.hrtime.bigint();
  for (let i = b * per; i < (b + 1) * per; i++) {
    const c0 = process.hrtime.bigint();
    raw.produce(topic, null, Buffer.from(rawEvent(i)), key, null);
    rawInflight++;
    rawNs.push(Number(process.hrtime.bigint() - c0));
  }
  await rawFlush();
  rawS += Number(process.hrtime.bigint() - t0) / 1e9;
  t0 = process.hrtime.bigint();
  for (let i = b * per; i < (b + 1) * per; i++) {
    const c0 = process.hrtime.bigint();
    log.prediction({ inputs: inputs[i % 1000], outputs: OUTPUTS, latencyMs: 1.5, segment: SEGMENT });
    sdkNs.push(Number(process.hrtime.bigint() - c0));
  }
  if (!(await log.flush(120_000))) throw new Error("the SDK did not deliver within 120 s");
  sdkS += Number(process.hrtime.bigint() - t0) / 1e9;
}
const pct = (a, q) => {
  a.sort((x, y) => x - y);
  return a[Math.min(a.length - 1, Math.floor(q * a.length))] / 1000;
};
const st = log.stats();
await log.close();
await new Promise((res) => raw.disconnect(5000, res));
const events = blocks * per;
console.log(JSON.stringify({
  events, blocks,
  sdk_throughput: events / sdkS, raw_throughput: events / rawS,
  sdk_p50_us: pct(sdkNs, 0.5), raw_p50_us: pct(rawNs, 0.5), sdk_p99_us: pct(sdkNs, 0.99), raw_p99_us: pct(rawNs, 0.99),
  delivered: st.delivered, dropped: st.dropped, spooled: st.spooled, node: process.version,
  librdkafka: Kafka.librdkafkaVersion,
}));
