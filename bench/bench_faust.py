"""``processor.faust``: events/s of one faust worker end to end from the real broker.

The worker is started and warmed up first (one event of another model must come out as a
snapshot); then the predictions are produced and the clock runs from the first produce to the
snapshot of the last window. ``worker_cpu_us_per_event`` (a param) is the worker process's CPU time
over the same span per event, steadier than wall time when other jobs share the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

from bench.bench_processor import WINDOW_S, make_events
from bench.context import BenchContext
from inferwatch.processor.settings import ProcessorSettings
from inferwatch.testing.scenarios import wide_event


def bench_faust(ctx: BenchContext) -> None:
    from confluent_kafka import Consumer, Producer
    from tests.support.kafka import new_prefix

    from inferwatch.config import Settings
    from inferwatch.processor.topics import ensure_topics

    n = 30_000 if ctx.quick else 150_000
    s = Settings(kafka_bootstrap=ctx.kafka_bootstrap, topic_prefix=new_prefix(), data_dir=ctx.scratch / "proc-bench")
    cfg = ProcessorSettings(window_s=WINDOW_S, lateness_s=0, baseline_s=WINDOW_S, idle_flush_s=2)
    ensure_topics(s, cfg)
    raws = make_events(n, rate_per_s=1000)
    env = {**os.environ, "INFERWATCH_KAFKA_BOOTSTRAP": s.kafka_bootstrap, "INFERWATCH_TOPIC_PREFIX": s.topic_prefix,
           "INFERWATCH_DATA_DIR": str(s.data_dir), "INFERWATCH_PROCESSOR_WINDOW_S": str(WINDOW_S),
           "INFERWATCH_PROCESSOR_LATENESS_S": "0", "INFERWATCH_PROCESSOR_BASELINE_S": str(WINDOW_S),
           "INFERWATCH_PROCESSOR_IDLE_FLUSH_S": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "inferwatch.cli.main", "run", "processor"], env=env,
                            stdout=(ctx.scratch / "processor-bench.log").open("wb"), stderr=subprocess.STDOUT)
    c = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": "bench-proc", "auto.offset.reset": "earliest"})
    c.subscribe([s.metrics_topic])
    p = Producer({"bootstrap.servers": s.kafka_bootstrap, "linger.ms": 50, "compression.type": "lz4",
                  "queue.buffering.max.messages": 1_000_000})
    try:
        # Warm-up: one event of another model; its snapshot (after the idle flush) proves the worker runs.
        warm = wide_event(0, 1_000, np.random.default_rng(0)).replace(b'"bench-model"', b'"warm-model"')
        p.produce(s.predictions_topic, key=b"warm-model", value=warm)
        p.flush(30)
        deadline = time.monotonic() + 300
        started = False
        while not started and time.monotonic() < deadline:
            started = any(m.error() is None for m in c.consume(100, timeout=0.5))
        if not started:
            raise RuntimeError("the processor did not start within 300 s")
        cpu0 = _cpu_s(proc.pid)
        t = time.perf_counter()
        for v in raws:
            p.produce(s.predictions_topic, key=b"bench-model", value=v)
            p.poll(0)
        p.flush(60)
        last_window = (json.loads(raws[-1])["ts"] // (WINDOW_S * 1000)) * WINDOW_S * 1000
        total, last_start, deadline = 0, -1, time.monotonic() + 600
        while time.monotonic() < deadline and last_start < last_window:
            for m in c.consume(1000, timeout=0.5):
                if m.error() is None:
                    snap = json.loads(m.value())
                    if snap["segment_key"] is None and snap["model"] == "bench-model":
                        total += snap["count"]
                        last_start = max(last_start, snap["window_start"])
        elapsed = time.perf_counter() - t
        cpu1 = _cpu_s(proc.pid)
    finally:
        c.close()
        proc.terminate()
        proc.wait(30)
    # the idle flush (2 s) closes the last window: it is waiting, not work
    import importlib.util

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    # CPU seconds the worker process spent per event over the same span (all its threads; includes the
    # idle wait before the last window closes): a measure that moves less than wall time on a busy machine
    cpu_us = None if cpu0 is None or cpu1 is None else round((cpu1 - cpu0) / max(total, 1) * 1e6, 1)
    ctx.record("processor.faust", total / max(elapsed - 2.0, 1e-3), "events/s", events=total, produced=n, loop=loop,
               worker_cpu_us_per_event=cpu_us, note="one worker, warm; from the first produce to the last window's snapshot")


def _cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``; None elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def run(ctx: BenchContext) -> None:
    """Entry point of ``python -m bench faust``."""
    bench_faust(ctx)
