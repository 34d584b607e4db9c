"""Alerter: breaching snapshot produced on the metrics topic → webhook request at a local receiver.

Each of N snapshots breaches a rule for its own model (so each is its own group, ``group_wait: 0``);
latency = receiver's arrival time − the producer's send time, p50/p99. Snapshots are paced (200/s)
so the number measures latency, not a backlog. The receiver runs in its own process, as a real
webhook endpoint would: in the alerter's process its thread per connection competed for the GIL
with the alerter's event loop and inflated the alerter's numbers. Baseline, same run and broker: the bare
confluent-kafka produce → consume round trip of the same messages at the same pace.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
import uuid
from typing import Any

import numpy as np
import orjson
from confluent_kafka import Consumer, Producer

from bench.context import BenchContext
from inferwatch.alerter.notification.webhook_receiver import LocalReceiver, Received
from inferwatch.alerter.route.routing import parse_config
from inferwatch.alerter.service import AlerterService
from inferwatch.config import Settings
from inferwatch.kafka.admin import apply_topics

RATE_PER_S = 200
T0 = 1_764_140_000_000


def _snap(model: str) -> bytes:
    return orjson.dumps({
        "schema_version": "metric_snapshot.v1", "event_id": model, "ts": T0 + 60_000, "model": model,
        "model_version": "1", "window_start": T0, "window_end": T0 + 60_000, "window_s": 60, "count": 100,
        "metrics": {"error_rate": 0.5}, "reference": {"error_rate": 0.0},
    })


def _paced(producer: Producer, topic: str, models: list[str], sent: dict[str, float]) -> None:
    start = time.perf_counter()
    for i, m in enumerate(models):
        delay = start + i / RATE_PER_S - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        sent[m] = time.time()
        producer.produce(topic, _snap(m), key=m.encode())
        producer.poll(0)
    producer.flush(30)


def _baseline(s: Settings, n: int) -> np.ndarray:
    topic = s.metrics_topic
    c = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": f"b-{uuid.uuid4().hex}",
                  "auto.offset.reset": "latest", "fetch.wait.max.ms": 10})
    c.subscribe([topic])
    deadline = time.monotonic() + 60
    while not c.assignment() and time.monotonic() < deadline:
        c.poll(0.1)
    p = Producer({"bootstrap.servers": s.kafka_bootstrap, "linger.ms": 5})
    models = [f"base-{i}" for i in range(n)]
    sent: dict[str, float] = {}
    got: dict[str, float] = {}
    import threading

    t = threading.Thread(target=_paced, args=(p, topic, models, sent))
    t.start()
    deadline = time.monotonic() + 120
    while len(got) < n and time.monotonic() < deadline:
        # the alerter's way of fetching: return at the first message, then drain what is fetched
        # (consume(500, t) alone would wait out t on every call and make the baseline look slow)
        first = c.consume(1, 0.05)
        for m in first + (c.consume(499, 0) if first else []):
            if m.error() is None and m.key():
                got[m.key().decode()] = time.time()
    t.join()
    c.close()
    return np.array([got[k] - sent[k] for k in got if k in sent])


def _receiver_process(port_out: Any, arrivals: Any, stop: Any) -> None:
    """Child process: a LocalReceiver that reports (model, arrival time) of every request."""

    def on_request(r: Received) -> None:
        arrivals.put((orjson.loads(r.body)["group_labels"]["model"], r.at))

    with LocalReceiver(on_request=on_request) as rcv:
        port_out.put(rcv.url)
        stop.wait(600)


def run(ctx: BenchContext) -> None:
    n = 200 if ctx.quick else 1000
    s = Settings(kafka_bootstrap=ctx.kafka_bootstrap, topic_prefix=f"b{uuid.uuid4().hex[:8]}.",
                 data_dir=ctx.scratch / f"alerter-{uuid.uuid4().hex[:6]}")
    apply_topics(s)
    rules = ctx.scratch / "bench_alerter_rules.yaml"
    rules.write_text("rules: [{name: errors, metric: error_rate, condition: value > 0.1, severity: critical}]\n")
    arrived: dict[str, float] = {}
    mpc = mp.get_context("spawn")
    port_q, arrivals, stop = mpc.Queue(), mpc.Queue(), mpc.Event()
    child = mpc.Process(target=_receiver_process, args=(port_q, arrivals, stop), daemon=True)
    child.start()
    try:
        url = port_q.get(timeout=60)
        cfg: Any = parse_config({
            "http": {"port": 0}, "start_from": "latest",
            "delivery": {"max_concurrency": 64, "per_receiver_concurrency": 32},
            "route": {"receiver": "hook", "group_by": ["model"], "group_wait": 0, "group_interval": "5m",
                      "repeat_interval": "4h"},
            "receivers": [{"name": "hook", "url": url, "secret": "bench"}],
        })
        svc = AlerterService(s, rules, cfg).start_in_thread()
        try:
            time.sleep(1.0)
            sent: dict[str, float] = {}
            models = [f"m{i}" for i in range(n)]
            _paced(Producer({"bootstrap.servers": s.kafka_bootstrap, "linger.ms": 5}), s.metrics_topic, models, sent)
            deadline = time.monotonic() + 120
            while len(arrived) < n and time.monotonic() < deadline:
                try:
                    model, at = arrivals.get(timeout=1.0)
                except queue.Empty:
                    continue
                arrived.setdefault(model, at)
        finally:
            svc.join()
    finally:
        stop.set()
        child.join(10)
        if child.is_alive():
            child.kill()
    lat = np.array([arrived[m] - sent[m] for m in arrived if m in sent])
    base = _baseline(s, n)
    params = {"alerts": n, "received": int(lat.size), "rate_per_s": RATE_PER_S, "group_wait_s": 0}
    ctx.record("alerter.breach_to_webhook_p50_s", float(np.percentile(lat, 50)), "s",
               baseline="produce_consume_roundtrip_p50", baseline_value=float(np.percentile(base, 50)), **params)
    ctx.record("alerter.breach_to_webhook_p99_s", float(np.percentile(lat, 99)), "s",
               baseline="produce_consume_roundtrip_p99", baseline_value=float(np.percentile(base, 99)), **params)
