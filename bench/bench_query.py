"""``query.accuracy_by_segment_p50_s``: the saved query ``accuracy_by_segment`` over 10M predictions
(1M with --quick) and 10% labeled, in the embedded store; the median of several runs."""

from __future__ import annotations

import statistics
import time

from bench.context import BenchContext
from inferwatch.store.embedded import EmbeddedStore
from inferwatch.store.saved import load


def run(ctx: BenchContext) -> None:
    n = 1_000_000 if ctx.quick else 10_000_000
    store = EmbeddedStore(ctx.scratch / "query-chdb", "inferwatch")
    store.migrate()
    # Generated inside the engine: 4 models, 8 devices, 7 days of traffic, 10% labeled.
    store.execute(f"""
        INSERT INTO predictions (event_id, prediction_id, ts, model, model_version, latency_ms, inputs_num,
                                 output_label, segment, kafka_topic, kafka_partition, kafka_offset)
        SELECT toString(number), toString(number),
               now64(3) - toIntervalSecond(number % 604800),
               'm' || toString(number % 4), 'v' || toString(number % 3), (number % 97) * 1.0,
               map('image_width', toFloat64(number % 4000)),
               if(number % 5 = 0, 'fake', 'real'),
               map('device', 'd' || toString(intHash32(number) % 8), 'country', 'c' || toString(number % 20)),
               'bench', 0, number
        FROM numbers({n})""")
    store.execute(f"""
        INSERT INTO feedback (event_id, prediction_id, ts, model, label, kafka_topic, kafka_partition, kafka_offset)
        SELECT 'f' || toString(number), toString(number), now64(3), 'm' || toString(number % 4),
               if(intHash64(number) % 10 < 8, 'real', 'fake'), 'bench', 0, number
        FROM numbers({n}) WHERE intHash32(number) % 10 = 0""")
    q = load("accuracy_by_segment")
    params = q.bind({"model": "m1", "segment_key": "device", "bucket_minutes": "60", "since_hours": "168"})
    store.query(q.sql, params, max_rows=100_000, timeout_s=120)  # warm-up
    times = []
    rows = 0
    for _ in range(3 if ctx.quick else 7):
        t0 = time.perf_counter()
        rows = len(store.query(q.sql, params, max_rows=100_000, timeout_s=120))
        times.append(time.perf_counter() - t0)
    store.close()
    ctx.record("query.accuracy_by_segment_p50_s", statistics.median(times), "s", predictions=n,
               labeled_share=0.1, result_rows=rows, runs=len(times))
