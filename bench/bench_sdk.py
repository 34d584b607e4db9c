"""SDK benchmarks: caller cost of ``prediction()``, sustained throughput, RSS while spooling, and
one process serving many models.

Baseline (``kafka.raw_produce``), measured in the same run on the same 15-feature event: the least
any Python logger must do per event — ``orjson.dumps`` of the event dict plus a raw confluent-kafka
``produce()`` with the same key and the same producer settings. The many-model benchmarks compare
1,000 loggers (one per model) with one logger (``sdk.one_logger``), in the same run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from bench.context import BenchContext
from inferwatch.config import Settings
from inferwatch.kafka.admin import apply_topics
from inferwatch.sdk.encode import encoder_kind
from inferwatch.sdk.producer_config import producer_config

ROOT = Path(__file__).resolve().parents[1]


def features(i: int) -> dict[str, Any]:
    """A 15-feature input: 10 numeric, 3 categorical, 1 bool, 1 int."""
    f: dict[str, Any] = {f"num_{k}": (i % 97) * 0.5 + k for k in range(10)}
    f.update(device="pixel-9", country="de", app_version="8.1", is_new_user=bool(i & 1), image_width=4032)
    return f


OUTPUTS = {"label": "genuine", "score": 0.93}
SEGMENT = {"device": "pixel-9"}


def _pct(samples: list[int], q: float) -> float:
    samples.sort()
    return samples[min(len(samples) - 1, int(q * len(samples)))] / 1000.0


def _raw_producer(bootstrap: str) -> Producer:
    conf = producer_config(bootstrap, None, None, "bench-raw")
    return Producer(conf)


def _event(i: int, x: dict[str, Any]) -> dict[str, Any]:
    return {"schema_version": "prediction.v1", "event_id": f"e{i:x}", "prediction_id": str(i),
            "ts": 1_700_000_000_000, "model": "bench-model", "model_version": "1",
            "inputs": x, "outputs": OUTPUTS, "latency_ms": 1.5, "segment": SEGMENT}


def caller_cost(ctx: BenchContext, settings: Settings, n: int) -> None:
    """p50/p99 per-call cost of prediction() vs orjson.dumps + produce(), timed the same way.

    The two are measured in alternating blocks (raw, SDK, raw, SDK, ...) so that load from other
    processes on a shared machine falls on both alike. Each side gets one untimed warm-up block.
    The baseline times only ``dumps`` + ``produce`` (the event dict is built before the clock
    starts); ``baseline_with_build_us`` also times building that dict with a fresh id and
    timestamp, which a logger must do too, for context.
    """
    from inferwatch import InferenceLogger

    inputs = [features(i) for i in range(1000)]
    pc = time.perf_counter_ns
    tns = time.time_ns
    dumps = orjson.dumps
    p = _raw_producer(settings.kafka_bootstrap)
    produce = p.produce
    topic, key = settings.predictions_topic, b"bench-model"
    log = InferenceLogger("bench-model", "1", settings=settings, spool_dir=ctx.scratch / f"spool-{uuid.uuid4().hex[:6]}")
    pred = log.prediction
    raw: list[int] = []
    built: list[int] = []
    sdk: list[int] = []
    blocks = 20
    per = max(1000, n // blocks)
    for b in range(blocks + 1):
        timed = b > 0
        base = b * per
        for i in range(base, base + per):
            ev = _event(i, inputs[i % 1000])
            t0 = pc()
            try:  # noqa: SIM105 - contextlib.suppress would add cost to the timed baseline
                produce(topic, dumps(ev), key)
            except BufferError:
                pass
            t1 = pc()
            if timed:
                raw.append(t1 - t0)
            if i % 1000 == 0:
                p.poll(0)
        for i in range(base, base + per // 4):  # the baseline with the event built inside the clock
            x = inputs[i % 1000]
            t0 = pc()
            ev = {"schema_version": "prediction.v1", "event_id": f"e{i}", "prediction_id": f"e{i}",
                  "ts": tns() // 1_000_000, "model": "bench-model", "model_version": "1",
                  "inputs": x, "outputs": OUTPUTS, "latency_ms": 1.5, "segment": SEGMENT}
            try:  # noqa: SIM105
                produce(topic, dumps(ev), key)
            except BufferError:
                pass
            t1 = pc()
            if timed:
                built.append(t1 - t0)
        p.poll(0)
        for i in range(base, base + per):
            x = inputs[i % 1000]
            t0 = pc()
            pred(x, OUTPUTS, latency_ms=1.5, segment=SEGMENT)
            t1 = pc()
            if timed:
                sdk.append(t1 - t0)
    p.flush(30)
    log.flush(30)
    st = log.stats()
    log.close()
    base50 = _pct(raw, 0.5)
    p50, p99 = _pct(sdk, 0.5), _pct(sdk, 0.99)
    ctx.record("sdk.caller_p50_us", p50, "us", baseline="kafka.raw_produce", baseline_value=base50,
               events=len(sdk), features=15, spooled=st["spooled"], blocks=blocks, encoder=encoder_kind(log._encoder),
               baseline_with_build_us=_pct(built, 0.5), ratio_to_baseline_with_build=p50 / _pct(built, 0.5))
    ctx.record("sdk.caller_p99_us", p99, "us", baseline="kafka.raw_produce", baseline_value=_pct(raw, 0.99),
               events=len(sdk), target_us=50)


def throughput(ctx: BenchContext, settings: Settings, n: int) -> None:
    """Sustained events/s into the broker (logging plus flush), SDK vs raw dumps+produce.

    Measured in alternating blocks (raw, SDK, raw, SDK, ...; each block ends with a flush) so that
    load from other processes on a shared machine falls on both alike.
    """
    from inferwatch import InferenceLogger

    inputs = [features(i) for i in range(1000)]
    p = _raw_producer(settings.kafka_bootstrap)
    topic, key = settings.predictions_topic, b"bench-model"
    log = InferenceLogger("bench-model", "1", settings=settings, spool_dir=ctx.scratch / f"spool-{uuid.uuid4().hex[:6]}")
    pred = log.prediction
    blocks = 5
    per = n // blocks
    raw_s = sdk_s = 0.0
    raw_cpu = sdk_cpu = 0.0  # CPU of the logging thread alone: less swayed by other processes than wall time
    for b in range(blocks):
        t0 = time.perf_counter()
        c0 = time.thread_time()
        for i in range(b * per, (b + 1) * per):
            v = orjson.dumps(_event(i, inputs[i % 1000]))
            while True:
                try:
                    p.produce(topic, v, key)
                    break
                except BufferError:
                    p.poll(0.005)
        p.flush(60)
        raw_cpu += time.thread_time() - c0
        raw_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        c0 = time.thread_time()
        for i in range(b * per, (b + 1) * per):
            pred(inputs[i % 1000], OUTPUTS, latency_ms=1.5, segment=SEGMENT)
        log.flush(120)
        sdk_cpu += time.thread_time() - c0
        sdk_s += time.perf_counter() - t0
    st = log.stats()
    log.close()
    ctx.record("sdk.throughput", blocks * per / sdk_s, "events/s", baseline="kafka.raw_produce",
               baseline_value=blocks * per / raw_s, events=blocks * per, blocks=blocks, target=150_000,
               spooled=st["spooled"], replayed=st["replayed"], dropped=st["dropped"], delivered=st["delivered"],
               thread_cpu_us_per_event=round(sdk_cpu / (blocks * per) * 1e6, 3),
               baseline_thread_cpu_us_per_event=round(raw_cpu / (blocks * per) * 1e6, 3))


def _rss_child(n: int, spool_dir: str) -> None:
    """Run in a subprocess: log ``n`` events with no broker reachable; print RSS numbers as JSON."""
    from inferwatch import InferenceLogger

    def rss_kb(field: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
        return 0

    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inputs = [features(i) for i in range(1000)]
    log = InferenceLogger("bench-model", "1", bootstrap=f"127.0.0.1:{port}", spool_dir=spool_dir,
                          spool_max_bytes=4 << 30, close_timeout_s=0.5)
    for i in range(2000):
        log.prediction(inputs[i % 1000], OUTPUTS, latency_ms=1.5, segment=SEGMENT)
    before = rss_kb("VmRSS:")
    t0 = time.perf_counter()
    for i in range(n):
        log.prediction(inputs[i % 1000], OUTPUTS, latency_ms=1.5, segment=SEGMENT)
    dt = time.perf_counter() - t0
    peak = max(rss_kb("VmRSS:"), rss_kb("VmHWM:"))
    st = log.stats()
    log.close(0.5)
    print(json.dumps({"before_kb": before, "peak_kb": peak, "seconds": dt, "stats": st}))


def spool_rss(ctx: BenchContext, n: int) -> None:
    """RSS growth while ``n`` events go to the spool (broker unreachable), in a fresh process."""
    spool_dir = ctx.scratch / f"rss-spool-{uuid.uuid4().hex[:6]}"
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from bench.bench_sdk import _rss_child; _rss_child({n}, {str(spool_dir)!r})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    growth_mb = (res["peak_kb"] - res["before_kb"]) / 1024
    ctx.record("sdk.spool_rss_growth_mb", growth_mb, "MB", events=n, target_mb=100,
               spooled=res["stats"]["spooled"], dropped=res["stats"]["dropped"],
               in_queue=res["stats"]["in_queue"], events_per_s=round(n / res["seconds"]))
    for p in spool_dir.rglob("*"):
        if p.is_file():
            p.unlink()


N_MODELS = 1000


def many_models_throughput(ctx: BenchContext, settings: Settings, n: int) -> None:
    """Events/s with events spread over 1,000 loggers (one per model) vs all into one logger.

    Same loop for both (``preds[i % 1000](...)``): for the baseline the 1,000 entries are the one
    logger's ``prediction``. Alternating blocks, each ending with a flush, as in :func:`throughput`.
    The 1,000 loggers share one transport; the single logger has its own (another spool dir).
    """
    from inferwatch import InferenceLogger

    inputs = [features(i) for i in range(1000)]
    one = InferenceLogger("bench-model", "1", settings=settings, spool_dir=ctx.scratch / f"spool-{uuid.uuid4().hex[:6]}")
    spool = ctx.scratch / f"spool-{uuid.uuid4().hex[:6]}"
    t0, c0 = time.perf_counter(), time.thread_time()
    many = [InferenceLogger(f"bench-model-{k}", "1", settings=settings, spool_dir=spool) for k in range(N_MODELS)]
    create_us = (time.perf_counter() - t0) / N_MODELS * 1e6
    create_cpu_us = (time.thread_time() - c0) / N_MODELS * 1e6
    one_preds = [one.prediction] * N_MODELS
    many_preds = [lg.prediction for lg in many]
    blocks = 10  # alternating one/many blocks: the load of a shared machine falls on both alike
    per = n // blocks
    one_s = many_s = 0.0
    one_cpu = many_cpu = 0.0
    for b in range(blocks):
        for preds, flusher, is_many in ((one_preds, one, False), (many_preds, many[0], True)):
            t0 = time.perf_counter()
            c0 = time.thread_time()
            for i in range(b * per, (b + 1) * per):
                preds[i % N_MODELS](inputs[i % 1000], OUTPUTS, latency_ms=1.5, segment=SEGMENT)
            flusher.flush(120)
            cpu, wall = time.thread_time() - c0, time.perf_counter() - t0
            if is_many:
                many_s += wall
                many_cpu += cpu
            else:
                one_s += wall
                one_cpu += cpu
    st = many[0].stats()
    st_one = one.stats()
    total = blocks * per
    ctx.record("sdk.many_models_throughput", total / many_s, "events/s", baseline="sdk.one_logger",
               baseline_value=total / one_s, events=total, blocks=blocks, loggers=N_MODELS, target_ratio=0.8,
               create_us_per_logger=round(create_us, 1), create_cpu_us_per_logger=round(create_cpu_us, 1),
               thread_cpu_us_per_event=round(many_cpu / total * 1e6, 3),
               baseline_thread_cpu_us_per_event=round(one_cpu / total * 1e6, 3),
               transport_loggers=st["transport_loggers"], spooled=st["transport_spooled"],
               dropped=st["transport_dropped"], delivered=st["transport_delivered"],
               baseline_spooled=st_one["spooled"])
    for lg in many:
        lg.close()
    one.close()


def _threads_child(bootstrap: str, prefix: str, spool_dir: str, n: int) -> None:
    """Run in a subprocess: OS threads with one logger, then with ``n`` (same settings); print JSON."""
    from inferwatch import InferenceLogger

    def threads() -> int:
        return len(list(Path("/proc/self/task").iterdir()))

    kw: dict[str, Any] = {"bootstrap": bootstrap, "topic_prefix": prefix, "spool_dir": spool_dir}
    first = InferenceLogger("bench-model-0", "1", **kw)
    first.prediction(features(0), OUTPUTS, latency_ms=1.5, segment=SEGMENT)
    first.flush(30)
    time.sleep(0.5)  # librdkafka starts its broker threads as it connects
    one = threads()
    t0, c0 = time.perf_counter(), time.thread_time()
    rest = [InferenceLogger(f"bench-model-{k}", "1", **kw) for k in range(1, n)]
    create_us = (time.perf_counter() - t0) / (n - 1) * 1e6
    create_cpu_us = (time.thread_time() - c0) / (n - 1) * 1e6
    time.sleep(0.5)
    created = threads()
    for k, lg in enumerate([first, *rest]):
        lg.prediction(features(k), OUTPUTS, latency_ms=1.5, segment=SEGMENT)
    first.flush(30)
    time.sleep(0.5)
    logging_ = threads()
    st = first.stats()
    for lg in rest:
        lg.close()
    first.close()
    print(json.dumps({"one": one, "created": created, "after_logging": logging_, "create_us": create_us,
                      "create_cpu_us": create_cpu_us,
                      "transport_loggers": st["transport_loggers"], "delivered": st["transport_delivered"]}))


def many_models_threads(ctx: BenchContext, settings: Settings, n: int = N_MODELS) -> None:
    """OS threads of a fresh process after creating ``n`` loggers, vs the same process with one."""
    spool_dir = ctx.scratch / f"threads-spool-{uuid.uuid4().hex[:6]}"
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); from bench.bench_sdk import _threads_child; "
            f"_threads_child({settings.kafka_bootstrap!r}, {settings.topic_prefix!r}, {str(spool_dir)!r}, {n})")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    ctx.record("sdk.many_models_threads", res["created"], "threads", baseline="sdk.one_logger",
               baseline_value=res["one"], loggers=n, target="equal to the baseline",
               after_one_event_per_logger=res["after_logging"], create_us_per_logger=round(res["create_us"], 1),
               create_cpu_us_per_logger=round(res["create_cpu_us"], 1),
               transport_loggers=res["transport_loggers"])


def run(ctx: BenchContext) -> None:
    """Entry point of ``python -m bench sdk``."""
    settings = Settings(kafka_bootstrap=ctx.kafka_bootstrap, topic_prefix=f"bench{uuid.uuid4().hex[:6]}.",
                        data_dir=ctx.scratch / "data")
    apply_topics(settings)
    caller_cost(ctx, settings, 50_000 if ctx.quick else 300_000)
    throughput(ctx, settings, 200_000 if ctx.quick else 1_000_000)
    spool_rss(ctx, 100_000 if ctx.quick else 1_000_000)
    many_models_threads(ctx, settings)
    many_models_throughput(ctx, settings, 200_000 if ctx.quick else 1_000_000)
