"""``pipeline.sustained_eps``: the highest SDK rate the whole local pipeline keeps up with.

The pipeline is the platform as ``inferwatch run all`` runs it: the bench's broker, one processor
worker, the sink (embedded store, serving the API) and the alerter (default rules), each its own
process (``inferwatch.demo.stack.Stack``). The SDK (``InferenceLogger``, 15-feature events, 8 models)
logs from this process at a fixed rate for ``LEVEL_S`` seconds per level, over a short search of
``RATES``: from ``START`` (``--quick``: ``QUICK_START``, levels of ``QUICK_LEVEL_S``) up while levels
pass and down while they fail, until one passed and one failed (or the list ends). A level passes
when, for the whole level:

* the SDK really logged at the rate (at least 97% of it);
* end-to-end lag to the store stays under ``LAG_LIMIT_S``: every second the bench counts the level's
  rows through the sink's query API and compares with when that many events had been logged; the
  level's last event must be queryable within the limit too (so a growing backlog fails);
* end-to-end lag to the metrics topic stays under ``LAG_LIMIT_S``: each whole-version snapshot of a
  window ending inside the level arrives on the metrics topic within the limit of the window's end
  (event time is the SDK's wall clock; 5 s windows, no allowed lateness).

Baseline in the same run: the rate the broker alone absorbs from the same SDK (same events, same
loggers, no service reading; logging as fast as it takes them, then flushed).

Per-hop costs: the CPU seconds each process spent during a level (``/proc``: the broker's JVM, the
processor, the sink, the alerter; the SDK is this process, the bench's probes included) per event
of the level, in the params (``levels[*].cpu_us_per_event``), with the cores each used and the load
average: the capacity model of docs/operations.md is built from them.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import threading
import time
import uuid
from typing import Any

import orjson
from confluent_kafka import Consumer

from bench.bench_sdk import OUTPUTS, features
from bench.context import BenchContext
from inferwatch.config import Settings
from inferwatch.infra.kafka_native import free_port
from inferwatch.kafka.admin import apply_topics
from inferwatch.sdk import InferenceLogger
from inferwatch.store.remote import query_http

#: the rates tried, lowest first; the search starts at START (QUICK_START) and goes up while levels pass, or
#: down while they fail, so a busy machine still gets a figure (the highest level that passed)
RATES = [2_500, 5_000, 10_000, 20_000, 35_000, 50_000, 70_000]
START, QUICK_START = 10_000, 5_000
LEVEL_S, QUICK_LEVEL_S = 60.0, 15.0
LAG_LIMIT_S = 5.0
MODELS = 8
WINDOW_S = 5
PROCESSOR_ENV = {"INFERWATCH_PROCESSOR_WINDOW_S": str(WINDOW_S), "INFERWATCH_PROCESSOR_LATENESS_S": "0",
                 "INFERWATCH_PROCESSOR_BASELINE_S": "30", "INFERWATCH_PROCESSOR_IDLE_FLUSH_S": "2"}


def cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of process ``pid`` (every thread) so far; None when unknown."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def broker_pid(ctx: BenchContext) -> int | None:
    """The bench's own native broker (``bench/__main__`` starts it under the scratch dir), else None."""
    try:
        return int((ctx.scratch / "kafka" / "kafka.pid").read_text().strip())
    except (OSError, ValueError):
        return None


class Generator:
    """Logs ``rate`` events/s through the SDK in a thread, round-robin over the models; keeps the
    timeline (monotonic time, events logged so far) the lag is read against."""

    def __init__(self, loggers: list[InferenceLogger], rate: int, seconds: float) -> None:
        self.loggers, self.rate, self.seconds = loggers, rate, seconds
        self.times: list[float] = []
        self.counts: list[int] = []
        self.logged = 0
        self.t0 = self.t_end = 0.0
        self.thread = threading.Thread(target=self._run, name="sdk-generator", daemon=True)

    def start(self) -> Generator:
        self.t0 = time.monotonic()
        self.thread.start()
        return self

    def _run(self) -> None:
        inputs = [features(i) for i in range(1000)]
        preds = [lg.prediction for lg in self.loggers]
        k = len(preds)
        n = 0
        while True:
            el = time.monotonic() - self.t0
            if el >= self.seconds:
                break
            due = int(el * self.rate)
            while n < due:
                preds[n % k](inputs[n % 1000], OUTPUTS, latency_ms=1.5, segment={"device": f"d{n % 5}"})
                n += 1
            self.logged = n
            self.times.append(time.monotonic())
            self.counts.append(n)
            time.sleep(0.002)
        self.t_end = time.monotonic()

    def logged_at(self, count: int) -> float | None:
        """When the ``count``-th event had been logged (None: not yet)."""
        i = bisect.bisect_left(self.counts, count)
        return self.times[i] if i < len(self.times) else None


def _level(ctx: BenchContext, stack: Any, pids: dict[str, int | None], level: int, rate: int,
           seconds: float) -> dict[str, Any]:
    s = stack.settings
    models = [f"pl{level}-m{j}" for j in range(MODELS)]
    spool = ctx.scratch / f"spool-{uuid.uuid4().hex[:6]}"
    loggers = [InferenceLogger(m, "1", settings=s, spool_dir=spool) for m in models]
    in_list = ", ".join(f"'{m}'" for m in models)
    sql = f"SELECT count() FROM predictions WHERE model IN ({in_list})"
    arrivals: list[tuple[float, int]] = []  # (wall time it arrived, window_end ms) of the level's snapshots
    reading = threading.Event()
    reading.set()
    joined = threading.Event()

    def read_metrics() -> None:
        c = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": f"bench-pl-{uuid.uuid4().hex[:6]}",
                      "auto.offset.reset": "latest", "enable.auto.commit": False})
        c.subscribe([s.metrics_topic], on_assign=lambda *_: joined.set())
        try:
            while reading.is_set():
                for m in c.consume(500, timeout=0.2):
                    value = m.value()
                    if m.error() is not None or value is None:
                        continue
                    snap = orjson.loads(value)
                    if snap["model"] in models and snap["segment_key"] is None:
                        arrivals.append((time.time(), int(snap["window_end"])))
        finally:
            c.close()

    reader = threading.Thread(target=read_metrics, name="metrics-reader", daemon=True)
    reader.start()
    joined.wait(30)  # the reader holds the partitions before the level starts
    cpu0 = {k: cpu_s(p) for k, p in pids.items()}
    wall0, load0 = time.monotonic(), os.getloadavg()[0]
    gen = Generator(loggers, rate, seconds).start()
    store_lags: list[float] = []
    stored = 0
    try:
        while True:
            time.sleep(1.0)
            # a failed probe keeps the last count: the next one tells, a slow answer shows as lag there
            with contextlib.suppress(Exception):
                stored = int(query_http(stack.api_url, sql, max_rows=1, timeout_s=30).rows[0][0])
            t_probe = time.monotonic()
            at = gen.logged_at(stored + 1)  # when the oldest event not yet queryable was logged
            store_lags.append(0.0 if at is None else t_probe - at)
            if not gen.thread.is_alive():
                if stored >= gen.logged:
                    break
                if t_probe - gen.t_end > 180:
                    break  # far behind (the level failed): the next level starts on a backlog
    finally:
        gen.thread.join(seconds + 30)
        for lg in loggers:
            lg.flush(30)
        time.sleep(1.0)  # the last windows' snapshots (closed by idle flush) are not counted, see below
        reading.clear()
        reader.join(10)
    # a window ending after the SDK stopped closes by idle flush (waiting, not lag): left out
    stop_ms = _wall(gen.t_end) * 1000.0
    snap_lags = [at - end / 1000.0 for at, end in arrivals if end <= stop_ms]
    wall = time.monotonic() - wall0
    cpu1 = {k: cpu_s(p) for k, p in pids.items()}
    logged = gen.logged
    achieved = logged / max(gen.t_end - gen.t0, 1e-9)
    stats = [lg.stats() for lg in loggers]
    for lg in loggers:
        lg.close()
    cpu: dict[str, float | None] = {}
    for k in pids:
        a, b = cpu0[k], cpu1[k]
        cpu[k] = None if a is None or b is None else b - a
    max_store = max(store_lags, default=float("inf"))
    max_snap = max(snap_lags, default=float("inf"))
    ok = achieved >= 0.97 * rate and stored >= logged and max_store <= LAG_LIMIT_S and max_snap <= LAG_LIMIT_S
    out = {
        "rate": rate, "seconds": seconds, "passed": ok, "logged": logged, "achieved_eps": round(achieved),
        "stored": stored, "max_store_lag_s": round(max_store, 2), "max_snapshot_lag_s": round(max_snap, 2),
        "snapshots": len(snap_lags), "spooled": sum(st["spooled"] for st in stats),
        "dropped": sum(st["dropped"] for st in stats),
        "load_avg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "cpu_us_per_event": {k: None if v is None else round(v / max(logged, 1) * 1e6, 2) for k, v in cpu.items()},
        "cores_used": {k: None if v is None else round(v / wall, 2) for k, v in cpu.items()},
    }
    print(f"    level {rate:>6} events/s: {'pass' if ok else 'FAIL'}  achieved {achieved:,.0f}  "  # noqa: T201
          f"store lag max {max_store:.2f} s  snapshot lag max {max_snap:.2f} s  cpu µs/event {out['cpu_us_per_event']}",
          flush=True)
    return out


def wait_drained(settings: Settings, timeout_s: float) -> float:
    """Wait until the processor's group has committed every predictions offset (at most ``timeout_s``), so a
    level does not start on the backlog of the one before; return the seconds waited."""
    from confluent_kafka import TopicPartition

    from inferwatch.processor.topics import app_id

    t0 = time.monotonic()
    c = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": app_id(settings)})
    try:
        topic = settings.predictions_topic
        tps = [TopicPartition(topic, p) for p in c.list_topics(topic, timeout=10).topics[topic].partitions]
        while time.monotonic() - t0 < timeout_s:
            ends = {tp.partition: c.get_watermark_offsets(tp, timeout=10)[1] for tp in tps}
            done = {tp.partition: tp.offset for tp in c.committed(tps, timeout=10)}
            if all(end <= 0 or done.get(p, -1) >= end for p, end in ends.items()):
                break
            time.sleep(1.0)
    finally:
        c.close()
    return time.monotonic() - t0


def _wall(mono: float) -> float:
    """The wall-clock time of a monotonic instant (the snapshots' window ends are wall-clock ms)."""
    return time.time() - (time.monotonic() - mono)


def broker_alone(ctx: BenchContext, n: int) -> tuple[float, float | None, float | None]:
    """Events/s the broker absorbs from the same SDK with nothing else running (log ``n``, flush), and
    the CPU µs per event of the broker and of this process (the SDK) meanwhile."""
    s = Settings(kafka_bootstrap=ctx.kafka_bootstrap, topic_prefix=f"bb{uuid.uuid4().hex[:8]}.",
                 data_dir=ctx.scratch / "broker-alone")
    apply_topics(s)
    loggers = [InferenceLogger(f"bb-m{j}", "1", settings=s, spool_dir=ctx.scratch / "spool-bb") for j in range(MODELS)]
    preds = [lg.prediction for lg in loggers]
    inputs = [features(i) for i in range(1000)]
    b0, s0 = cpu_s(broker_pid(ctx)), cpu_s(os.getpid())
    t0 = time.perf_counter()
    for i in range(n):
        preds[i % MODELS](inputs[i % 1000], OUTPUTS, latency_ms=1.5, segment={"device": f"d{i % 5}"})
        if i % 50_000 == 49_999:  # the SDK's local queue holds 200k: flushing in steps keeps it from spooling
            loggers[0].flush(120)
    for lg in loggers:
        lg.flush(120)
    spooled = sum(lg.stats()["spooled"] for lg in loggers)
    if spooled:
        print(f"    broker alone: {spooled} events spooled (the rate counts them as absorbed)", flush=True)  # noqa: T201
    elapsed = time.perf_counter() - t0
    b1, s1 = cpu_s(broker_pid(ctx)), cpu_s(os.getpid())
    for lg in loggers:
        lg.close()
    return n / elapsed, _per_event(b0, b1, n), _per_event(s0, s1, n)


def _per_event(cpu0: float | None, cpu1: float | None, n: int) -> float | None:
    """CPU µs per event between two readings of :func:`cpu_s` (None when either is unknown)."""
    return None if cpu0 is None or cpu1 is None else round((cpu1 - cpu0) / max(n, 1) * 1e6, 2)


def run(ctx: BenchContext) -> None:
    """Entry point of ``python -m bench pipeline``."""
    from tests.support.kafka import new_prefix

    from inferwatch.demo.stack import Stack, StackSettings

    start, seconds = (QUICK_START, QUICK_LEVEL_S) if ctx.quick else (START, LEVEL_S)
    base, base_broker_us, base_sdk_us = broker_alone(ctx, 200_000 if ctx.quick else 1_000_000)
    env = {**PROCESSOR_ENV, "INFERWATCH_PROCESSOR_HEALTH_PORT": str(free_port())}
    stack = Stack(StackSettings(data_dir=ctx.scratch / "pipeline", kafka_bootstrap=ctx.kafka_bootstrap,
                                topic_prefix=new_prefix(), processor_env=env))
    levels: list[dict[str, Any]] = []
    with stack.start():
        pids = {"broker": broker_pid(ctx), "sdk": os.getpid()}
        pids.update({svc.name: svc.proc.pid for svc in stack.supervisor.services})
        time.sleep(5.0)  # the services settle (group joins) before the first level
        i = RATES.index(start)
        passed_once = failed_once = False
        while 0 <= i < len(RATES) and not (passed_once and failed_once):
            stack.supervisor.check()
            drained_s = wait_drained(stack.settings, 300.0)
            res = _level(ctx, stack, pids, len(levels), RATES[i], seconds)
            res["waited_for_drain_s"] = round(drained_s, 1)
            levels.append(res)
            if res["passed"]:
                passed_once, i = True, i + 1
            else:
                failed_once, i = True, i - 1
            time.sleep(3.0)
    passed = [lv["rate"] for lv in levels if lv["passed"]]
    best = max(passed, default=0)
    at = next((lv for lv in levels if lv["rate"] == best), levels[-1])
    ctx.record("pipeline.sustained_eps", best, "events/s", baseline="broker alone, same SDK", baseline_value=base,
               target=50_000, lag_limit_s=LAG_LIMIT_S, level_s=seconds, rates_tried=[lv["rate"] for lv in levels],
               levels=levels, cpu_us_per_event=at["cpu_us_per_event"], cores=len(os.sched_getaffinity(0)),
               cpus=os.cpu_count(), load_avg_1m=os.getloadavg()[0], processor_workers=1, models=MODELS,
               features=15, window_s=WINDOW_S, baseline_broker_cpu_us_per_event=base_broker_us,
               baseline_sdk_cpu_us_per_event=base_sdk_us,
               note="broker, 1 processor, sink (embedded store), alerter as processes; SDK in the bench process")


