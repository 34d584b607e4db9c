"""Detections end to end: processor → ``inferwatch.detections`` → sink/store and alerter → one webhook.

A real ``inferwatch run processor`` worker reads a stream whose first minute of event time is the
reference; after it, the input ``width`` of segment ``device=d2`` jumps while ``d0``/``d1`` stay as they
were. The worker's sequential detectors publish ``detection.v1`` events; the sink stores them in the
``detections`` table and the alerter (same consumer for metrics and detections) sends ONE notification
that names the segment. A malformed detection on the topic is dead-lettered by the sink (a row in
``deadletter``) and by the alerter (a dead letter on the topic), and both go on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from confluent_kafka import Producer

from inferwatch.alerter.notification.webhook_receiver import LocalReceiver
from inferwatch.alerter.route.routing import parse_config
from inferwatch.alerter.service import AlerterService
from inferwatch.config import Settings
from inferwatch.sink import Sink, SinkSettings
from inferwatch.store import Store, open_store
from tests.support.kafka import consume_all
from tests.support.processor import Worker

pytestmark = pytest.mark.integration

# an hour ago, on a window boundary (the reference is exactly the first minute); recent, so that the
# store's TTL keeps the rows
T0 = (int(time.time() * 1000) - 3_600_000) // 60_000 * 60_000
RATE = 25  # events per second of event time
N_REF, N_DRIFT = 1_500, 1_200  # 60 s of reference, then 48 s with d2 drifted
MODEL = "camera"
WORKER_ENV = {"INFERWATCH_PROCESSOR_BASELINE_S": "60", "INFERWATCH_PROCESSOR_IDLE_FLUSH_S": "600",
              "INFERWATCH_PROCESSOR_DETECT_ENABLED": "true"}
RULES = """
rules:
  - name: drift_detected
    metric: "detection:*"
    match: {segments: all}
    condition: statistic >= threshold
    annotations:
      summary: "{{ model }} {{ metric }}{% if segment != 'whole' %} in segment {{ segment }}{% endif %}"
"""


def _event(i: int, rng: np.random.Generator) -> bytes:
    device = f"d{i % 3}"
    drifted = i >= N_REF and device == "d2"
    return orjson.dumps({
        "schema_version": "prediction.v1", "event_id": f"e{i}", "prediction_id": f"p{i}",
        "ts": T0 + i * 1000 // RATE, "model": MODEL, "model_version": "1", "latency_ms": 5.0,
        "inputs": {"width": float(rng.normal(4000.0 if drifted else 1000.0, 50.0)),
                   "brightness": float(rng.uniform(0.0, 1.0))},
        "outputs": {"label": "real" if rng.uniform() < 0.8 else "fake", "score": float(rng.uniform(0.5, 1.0))},
        "segment": {"device": device},
    })


def _produce(settings: Settings, topic: str, values: list[bytes]) -> None:
    p = Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 20})
    for v in values:
        p.produce(topic, key=MODEL.encode(), value=v)
    assert p.flush(30) == 0


def _wait(check: Any, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    got = check()
    while not got and time.monotonic() < deadline:
        time.sleep(0.3)
        got = check()
    return got


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    st = open_store(settings)
    st.migrate()
    try:
        yield st
    finally:
        st.close()


def test_a_segment_drift_is_stored_and_notified_once_and_bad_detections_are_dead_lettered(
        settings: Settings, store: Store, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    rng = np.random.default_rng(12)
    _produce(settings, settings.predictions_topic, [_event(i, rng) for i in range(N_REF + N_DRIFT)])
    bad = [b"not json", orjson.dumps({"schema_version": "detection.v1", "event_id": "half", "ts": T0,
                                      "model": MODEL, "model_version": "1", "segment_key": "device",
                                      "segment_value": None, "signal": "input", "metric": "input.width",
                                      "detector": "cusum", "statistic": 1.0, "threshold": 1.0, "events": 1})]
    _produce(settings, settings.detections_topic, bad)

    worker = Worker(settings, tmp_path / "worker", tmp_path / "worker.log", extra_env=WORKER_ENV)
    stop = threading.Event()
    sink = Sink(settings, store, SinkSettings(group_id=f"sink-{settings.topic_prefix}", batch_rows=500, batch_ms=200))
    sink_thread = threading.Thread(target=sink.run, args=(stop,), daemon=True)
    with LocalReceiver() as rcv:
        cfg = parse_config({
            "http": {"port": 0}, "start_from": "earliest",
            "route": {"receiver": "hook", "group_wait": "8s", "group_interval": "1s", "repeat_interval": "1h"},
            "receivers": [{"name": "hook", "url": rcv.url, "signing": "none"}],
        })
        alerter = AlerterService(settings, rules, cfg).start_in_thread()
        sink_thread.start()
        try:
            got = _wait(lambda: store.query(
                "SELECT segment_key, segment_value, new_segment, signal, metric, events FROM detections "
                "WHERE status = 'detected' AND segment_value = 'd2'").rows, 60)
            assert got, (f"no detection of device=d2 stored; detections: "
                         f"{store.query('SELECT segment_value, metric, status, events FROM detections').rows}; "
                         f"dead letters: {store.query('SELECT stage, source_topic, reason FROM deadletter').rows}")
            assert {(r[0], r[3]) for r in got} == {("device", "input")}, got
            assert "input.width" in {r[4] for r in got} and not any("brightness" in r[4] for r in got), got
            assert all(r[2] is False for r in got)  # d2 was in the reference
            assert min(r[5] for r in got) <= 100  # tens of events of the segment, not a window
            assert rcv.wait_for(lambda rs: len(rs) >= 1, 20), "no notification"
            time.sleep(3.0)  # a second notification (another group, a group update) would come now
            reqs = list(rcv.requests)
            sink_dead = _wait(lambda: store.query(
                "SELECT source_offset, expected_schema FROM deadletter WHERE stage = 'sink' "
                "AND source_topic = {t:String} ORDER BY source_offset",
                params={"t": settings.detections_topic}).rows, 20)
        finally:
            alerter.join()
            stop.set()
            sink_thread.join(30)
            worker.stop()
    assert len(reqs) == 1, [r.body for r in reqs]
    body = orjson.loads(reqs[0].body)
    assert body["status"] == "firing"
    # one incident for the model version: the segment named first, the per-detection alerts inside it
    assert "in segment device=d2" in body["alerts"][0]["annotations"]["incident"], body
    assert "device=d2" in {a["segment"] for a in body["alerts"]}, body
    assert all(a["model"] == MODEL and a["labels"]["alertname"] == "drift_detected" for a in body["alerts"])
    assert [tuple(r) for r in sink_dead] == [(0, "detection.v1"), (1, "detection.v1")]
    dead = [orjson.loads(m.value()) for m in consume_all(settings.kafka_bootstrap, settings.deadletter_topic, 4, 30)]
    alerter_dead = sorted((d["source_offset"], d["expected_schema"]) for d in dead if d["stage"] == "alerter")
    assert alerter_dead == [(0, "detection.v1"), (1, "detection.v1")], dead
    assert alerter.stats.detections >= 1 and alerter.health()["ok"]
