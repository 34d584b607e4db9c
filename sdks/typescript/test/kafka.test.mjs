// Against a real broker (INFERWATCH_KAFKA_BOOTSTRAP; tests/integration/test_sdk_typescript.py starts
// the native broker, applies the topics under INFERWATCH_TOPIC_PREFIX and runs this file, then reads
// the topics, the processor's snapshots and the store). Without the variable these tests are skipped:
// `npm test` alone has no broker.
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { spawnSync } from "node:child_process";
import { InferenceLogger, KafkaTransport } from "../dist/esm/index.js";

const bootstrap = process.env.INFERWATCH_KAFKA_BOOTSTRAP;
const prefix = process.env.INFERWATCH_TOPIC_PREFIX ?? "";
const n = Number(process.env.IW_TS_EVENTS ?? "200");
const skip = bootstrap ? false : "INFERWATCH_KAFKA_BOOTSTRAP is not set (run through pytest)";

async function deadPort() {
  const srv = createServer();
  await new Promise((res) => srv.listen(0, "127.0.0.1", res));
  const { port } = srv.address();
  await new Promise((res) => srv.close(res));
  return port;
}

test("predictions, feedback and a failed timed call reach the broker; flush and stats agree", { skip }, async () => {
  const log = new InferenceLogger({ model: "ts-model", modelVersion: "v1", bootstrap, topicPrefix: prefix });
  // logged at once, before the producer is even connected: never blocks, never throws
  const ids = [];
  for (let i = 0; i < n; i++) {
    ids.push(log.prediction({
      inputs: { amount: i + 0.5, country: i % 2 ? "DE" : "FR", new_user: i % 3 === 0 },
      outputs: { label: i % 4 === 0 ? "fraud" : "legit", score: (i % 10) / 10 + 0.05 },
      latencyMs: 1.25, segment: { region: i % 2 ? "eu" : "us" },
    }));
  }
  log.feedback(ids[0], "fraud");
  assert.throws(() => log.timed(() => {
    throw new Error("model crashed");
  }, { inputs: { amount: 1 } }), /model crashed/);
  assert.equal(await log.flush(30_000), true);
  const s = log.stats();
  assert.equal(s.logged, n + 2);
  assert.equal(s.delivered, n + 2);
  assert.equal(s.failed + s.dropped + s.spooled + s.in_queue, 0);
  await log.close();
});

test("broker away: events go to the disk spool; a logger with the broker back replays them", { skip }, async () => {
  const spoolDir = mkdtempSync(join(tmpdir(), "iw-ts-spool-"));
  const away = new InferenceLogger({
    model: "ts-spooled", modelVersion: "v1", bootstrap: `127.0.0.1:${await deadPort()}`, topicPrefix: prefix,
    spoolDir, producerConfig: { "message.timeout.ms": 1000 },
  });
  for (let i = 0; i < 10; i++) away.prediction({ outputs: { score: 0.5 }, predictionId: `spooled-${i}` });
  assert.equal(await away.flush(500), false, "nothing can be delivered");
  await away.close(3000);
  const a = away.stats();
  assert.equal(a.spooled, 10, JSON.stringify(a));
  assert.equal(a.delivered, 0);
  assert.ok(readdirSync(spoolDir).some((f) => f.startsWith("seg-")));

  const back = new InferenceLogger({ model: "ts-spooled", modelVersion: "v1", bootstrap, topicPrefix: prefix, spoolDir });
  assert.equal(await back.flush(30_000), true);
  const b = back.stats();
  assert.equal(b.replayed, 10, JSON.stringify(b));
  assert.equal(b.spool_bytes, 0);
  await back.close();
});

test("the producer is idempotent, acks=all, lz4", { skip }, () => {
  const t = new KafkaTransport({ bootstrap: "127.0.0.1:1" });
  assert.equal(t.config["enable.idempotence"], true);
  assert.equal(t.config.acks, "all");
  assert.equal(t.config["compression.type"], "lz4");
  return t.close(0);
});

test("after close() the process exits by itself (an open producer keeps it alive, as node-rdkafka does)", { skip }, () => {
  const script = `
    import { InferenceLogger } from ${JSON.stringify(new URL("../dist/esm/index.js", import.meta.url).href)};
    const log = new InferenceLogger({ model: "ts-exit", modelVersion: "v1", bootstrap: process.env.INFERWATCH_KAFKA_BOOTSTRAP,
                                      topicPrefix: process.env.INFERWATCH_TOPIC_PREFIX });
    log.prediction({ outputs: { score: 0.5 } });
    await log.close(10000);
    console.log(JSON.stringify(log.stats()));`;
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 30_000 });
  assert.equal(r.status, 0, `exit ${r.status} signal ${r.signal}: ${r.stderr}`);
  assert.ok(Date.now() - t0 < 20_000);
  assert.equal(JSON.parse(r.stdout).delivered, 1);
});
