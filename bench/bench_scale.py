"""``processor.scale_2w``: processor throughput of two workers over one, on the same input, in one run.

Each round starts its workers (``inferwatch run processor`` processes, one consumer group, its own
topics) on empty topics and waits until the group has settled (every predictions partition held,
each worker holding some); then the same pre-encoded input — 6 models, one per partition of the
6-partition predictions topic, 1 ms of event time apart as in ``processor.faust``, 15 numeric and 5 categorical features — is produced, and the clock
runs from the first produce to the moment the workers' ``/healthz`` ``records_total`` add up to the
input. Rounds alternate (1, 2, 1, 2 workers; ``--quick``: 1, 2) so load from other jobs falls on
both alike; the value is the two-worker rate, the baseline the one-worker rate, their ratio the
scale factor (target >= 1.6 where two cores are free for the workers). The cores the run had, the
load average and each worker's CPU per event are recorded: on a 2-core machine the broker and the
bench's producer share the cores with the workers, so the ratio is bounded by what is left.
"""

from __future__ import annotations

import os
import time
import uuid
from statistics import mean
from typing import Any

import numpy as np

from bench.bench_pipeline import cpu_s
from bench.context import BenchContext
from inferwatch.config import Settings
from inferwatch.processor.settings import ProcessorSettings
from inferwatch.processor.topics import ensure_topics
from inferwatch.testing.scenarios import wide_event

PARTITIONS = 6
MODELS_PER_PARTITION = 1
WINDOW_S = 60
WORKER_ENV = {"INFERWATCH_PROCESSOR_WINDOW_S": str(WINDOW_S), "INFERWATCH_PROCESSOR_LATENESS_S": "0",
              "INFERWATCH_PROCESSOR_BASELINE_S": str(WINDOW_S), "INFERWATCH_PROCESSOR_IDLE_FLUSH_S": "600"}


def make_input(n: int) -> list[tuple[int, bytes, bytes]]:
    """``n`` events as (partition, key, value), spread evenly over the models and partitions."""
    rng = np.random.default_rng(7)
    t0 = 1_764_140_040_000
    models = [(p, f"scale-m{p}-{k}") for p in range(PARTITIONS) for k in range(MODELS_PER_PARTITION)]
    out = []
    for i in range(n):
        p, m = models[i % len(models)]
        raw = wide_event(i, t0 + i, rng).replace(b'"bench-model"', f'"{m}"'.encode())
        out.append((p, m.encode(), raw))
    return out


def one_round(ctx: BenchContext, workers: int, events: list[tuple[int, bytes, bytes]]) -> dict[str, Any]:
    from confluent_kafka import Producer
    from tests.support.processor import Worker

    s = Settings(kafka_bootstrap=ctx.kafka_bootstrap, topic_prefix=f"sc{uuid.uuid4().hex[:8]}.",
                 data_dir=ctx.scratch / "scale")
    ensure_topics(s, ProcessorSettings(window_s=WINDOW_S, lateness_s=0, baseline_s=WINDOW_S, idle_flush_s=600))
    run_dir = ctx.scratch / f"scale-{uuid.uuid4().hex[:6]}"
    run_dir.mkdir(parents=True)
    ws: list[Any] = []
    try:
        for i in range(workers):
            ws.append(Worker(s, run_dir / f"w{i}", run_dir / f"w{i}.log", extra_env=WORKER_ENV))
        for w in ws:
            w.wait_healthy(timeout_s=180)
        deadline = time.monotonic() + 180
        while True:
            held = [(w.health() or {}).get("assigned_partitions") or [] for w in ws]
            if sorted(p for h in held for p in h) == list(range(PARTITIONS)) and all(held):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the group did not settle: {held}\n" + "\n".join(w.tail() for w in ws))
            time.sleep(0.5)
        time.sleep(2.0)  # no rebalance in flight
        p = Producer({"bootstrap.servers": s.kafka_bootstrap, "linger.ms": 20, "compression.type": "lz4",
                      "queue.buffering.max.messages": 2_000_000, "queue.buffering.max.kbytes": 2_000_000})
        cpu0 = [cpu_s(w.proc.pid) for w in ws]
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        for part, key, value in events:
            p.produce(s.predictions_topic, value, key, partition=part)
        p.poll(0)
        produced_s = time.perf_counter() - t0
        assert p.flush(120) == 0
        n = len(events)
        done, deadline = 0, time.monotonic() + 900
        while done < n and time.monotonic() < deadline:
            done = sum((w.health() or {}).get("records_total", 0) for w in ws)
            time.sleep(0.05)
        elapsed = time.perf_counter() - t0
        if done < n:
            raise RuntimeError(f"{workers} worker(s) processed {done} of {n} within 900 s")
        per = [(w.health() or {}).get("records_total", 0) for w in ws]
        cpu1 = [cpu_s(w.proc.pid) for w in ws]
    finally:
        for w in ws:
            w.stop()
    cpu = [None if a is None or b is None else b - a for a, b in zip(cpu0, cpu1, strict=True)]
    return {"workers": workers, "events_per_s": round(n / elapsed), "elapsed_s": round(elapsed, 2),
            "produce_s": round(produced_s, 2), "records_per_worker": per,
            "worker_cpu_us_per_event": round(sum(c or 0 for c in cpu) / n * 1e6, 2),
            "worker_cores_used": [None if c is None else round(c / elapsed, 2) for c in cpu],
            "load_avg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)]}


def run(ctx: BenchContext) -> None:
    """Entry point of ``python -m bench scale``."""
    n = 30_000 if ctx.quick else 120_000
    events = make_input(n)
    order = [1, 2] if ctx.quick else [1, 2, 1, 2]
    rounds = []
    for workers in order:
        r = one_round(ctx, workers, events)
        print(f"    {workers} worker(s): {r['events_per_s']:,} events/s  ({r})", flush=True)  # noqa: T201
        rounds.append(r)
    one = mean(r["events_per_s"] for r in rounds if r["workers"] == 1)
    two = mean(r["events_per_s"] for r in rounds if r["workers"] == 2)
    ctx.record("processor.scale_2w", two, "events/s", baseline="processor, one worker", baseline_value=one,
               target_ratio=1.6, events=n, partitions=PARTITIONS, models=PARTITIONS * MODELS_PER_PARTITION,
               rounds=rounds, cores=len(os.sched_getaffinity(0)), cpus=os.cpu_count(),
               load_avg_1m=os.getloadavg()[0],
               note="the broker and the bench's producer share the machine's cores with the workers")
