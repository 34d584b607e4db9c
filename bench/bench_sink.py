"""``sink.throughput``: rows/s from the real broker into the embedded store, one process, 15-feature
prediction events, from the first consumed message to the last row written (the consumer-group
join before it is recorded as ``startup_s``, and the rate including it as
``rows_per_s_incl_startup``); baseline ``store.arrow_insert``: the same rows as a pre-built Arrow
table inserted straight into the same store (the store's own limit on this machine). The machine's
1-minute load average is recorded too: the broker, chDB and the sink share its cores. On a shared
machine the wall-clock rates swing 2-3x, so the process CPU time per row of the sink (all of its
threads: consumer, decoder, chDB's insert threads) and of the baseline insert are recorded beside
them, and whether the compiled prediction decoder (``inferwatch.native._decode``) was built."""

from __future__ import annotations

import os
import threading
import time
import uuid

import orjson
from confluent_kafka import Producer

from bench.context import BenchContext
from inferwatch import native
from inferwatch.config import Settings
from inferwatch.contract.events import PredictionV1
from inferwatch.kafka.admin import apply_topics
from inferwatch.sink import Sink, SinkSettings
from inferwatch.sink.arrow_tables import Kafka, predictions
from inferwatch.store.embedded import EmbeddedStore


def _event(i: int, now_ms: int) -> dict[str, object]:
    inputs: dict[str, object] = {f"f{j}": (i * 7 + j) % 1000 / 10.0 for j in range(12)}
    inputs.update({"device": f"d{i % 8}", "country": f"c{i % 20}", "app": "ios" if i % 2 else "android"})
    return {"schema_version": "prediction.v1", "event_id": f"e{i}", "prediction_id": f"p{i}", "ts": now_ms + i,
            "model": f"m{i % 4}", "model_version": "v1", "latency_ms": float(i % 50), "inputs": inputs,
            "outputs": {"label": "a" if i % 3 else "b", "score": 0.7}, "segment": {"device": f"d{i % 8}"}}


def run(ctx: BenchContext) -> None:
    n = 50_000 if ctx.quick else 300_000
    s = Settings(kafka_bootstrap=ctx.kafka_bootstrap, topic_prefix=f"b{uuid.uuid4().hex[:8]}.",
                 data_dir=ctx.scratch / f"sink-{uuid.uuid4().hex[:6]}")
    apply_topics(s)
    now = int(time.time() * 1000)
    values = [orjson.dumps(_event(i, now)) for i in range(n)]
    p = Producer({"bootstrap.servers": s.kafka_bootstrap, "linger.ms": 50, "batch.size": 1_000_000,
                  "compression.type": "lz4", "queue.buffering.max.messages": 1_000_000})
    for i, v in enumerate(values):
        p.produce(s.predictions_topic, key=f"m{i % 4}".encode(), value=v)
        if i % 100_000 == 0:
            p.poll(0)
    p.flush(120)

    store = EmbeddedStore(s.data_dir / "chdb", "inferwatch")
    store.migrate()
    batch_rows = 100_000
    sink = Sink(s, store, SinkSettings(group_id=f"bench-{uuid.uuid4().hex[:6]}", batch_rows=batch_rows, batch_ms=1000))
    stop = threading.Event()
    t = threading.Thread(target=sink.run, args=(stop,), daemon=True)
    t0 = time.perf_counter()
    t.start()
    deadline = t0 + 600
    # The clock starts at the first consumed message: joining the consumer group (a fixed cost of
    # ~0.3-3 s here, paid once per process) is reported separately as startup_s.
    while sink.health.messages_consumed == 0 and time.perf_counter() < deadline:
        time.sleep(0.002)
    t_first = time.perf_counter()
    cpu_first = time.process_time()
    while sink.health.rows_written.get("predictions", 0) < n and time.perf_counter() < deadline:
        time.sleep(0.005)
    t_end = time.perf_counter()
    cpu_sink = time.process_time() - cpu_first
    stop.set()
    t.join(60)
    written = sink.health.rows_written.get("predictions", 0)

    # Baseline: the same rows, already an Arrow table, into a fresh database of the same store.
    tbl = predictions([PredictionV1.model_validate_json(v) for v in values], Kafka(s.predictions_topic, 0, list(range(n))))
    base = EmbeddedStore(s.data_dir / "chdb", "baseline")
    base.migrate()
    b0 = time.perf_counter()
    bcpu0 = time.process_time()
    for k in range(0, n, 100_000):
        base.insert("predictions", tbl.slice(k, 100_000), dedup_token=f"b-{k}")
    b_elapsed = time.perf_counter() - b0
    cpu_base = time.process_time() - bcpu0
    base.close()
    store.close()
    ctx.record("sink.throughput", written / (t_end - t_first), "rows/s", baseline="store.arrow_insert",
               baseline_value=n / b_elapsed, rows=n, features=15, rows_written=written, batch_rows=batch_rows,
               startup_s=round(t_first - t0, 3), rows_per_s_incl_startup=round(written / (t_end - t0)),
               load_avg_1m=os.getloadavg()[0], cpus=os.cpu_count(),
               sink_cpu_us_per_row=round(cpu_sink / max(written, 1) * 1e6, 2),
               baseline_cpu_us_per_row=round(cpu_base / n * 1e6, 2),
               native_decode=native.load("_decode") is not None)
