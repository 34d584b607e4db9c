"""The sink's dead letters against the real broker: an offset is committed only once Kafka confirmed
every dead letter of its range; a refused one holds the commit, is retried, and shows on /healthz
and /metrics; a dead letter too large for any topic is written with its payload cut, not lost."""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from fastapi.testclient import TestClient

from inferwatch.api.app import create_app
from inferwatch.config import Settings
from inferwatch.sink import Sink, SinkSettings
from inferwatch.store import open_store
from tests.integration.test_alerter_deadletters import _dead_letters, _set_max_message_bytes, _until

pytestmark = pytest.mark.integration


def _pred(i: int) -> bytes:
    return orjson.dumps({
        "schema_version": "prediction.v1", "event_id": f"e{i}", "prediction_id": f"p{i}",
        "ts": int(time.time() * 1000), "model": "m", "model_version": "v1", "latency_ms": 3.0,
        "inputs": {"w": i}, "outputs": {"label": "cat"},
    })


def _produce(s: Settings, values: list[bytes], **conf: Any) -> None:
    p = Producer({"bootstrap.servers": s.kafka_bootstrap, "linger.ms": 5, **conf})
    for v in values:
        p.produce(s.predictions_topic, key=b"m", value=v)
    assert p.flush(30) == 0
    p.close()


def _committed(s: Settings, group: str) -> int:
    c = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": group})
    try:
        for attempt in range(20):
            try:
                offs = c.committed([TopicPartition(s.predictions_topic, p) for p in range(6)], timeout=10)
                break
            except KafkaException:  # NOT_COORDINATOR while a fresh broker loads its group coordinator
                if attempt == 19:
                    raise
                time.sleep(0.5)
    finally:
        c.close()
    return sum(max(0, tp.offset) for tp in offs)


def _metric(text: str, name: str) -> float:
    return float(next(x for x in text.splitlines() if x.startswith(name + " ")).split()[1])


def test_refused_dead_letter_holds_the_commit_and_retries_visibly(settings: Settings) -> None:
    n, bad = 300, [b"{broken", b"[]", orjson.dumps({"schema_version": "prediction.v1", "event_id": "x"})]
    _set_max_message_bytes(settings, "64")  # every dead letter is larger: the broker refuses them
    _produce(settings, [_pred(i) for i in range(n)] + bad)
    store = open_store(settings)
    store.migrate()
    group = f"g-dl-{settings.topic_prefix}"
    sink = Sink(settings, store, SinkSettings(group_id=group, batch_rows=1000, batch_ms=200,
                                             retry_initial_s=0.1, retry_max_s=0.5))
    api = TestClient(create_app(health_checks={"sink": sink.health.snapshot}, settings=settings, alerts=False))
    stop = threading.Event()
    t = threading.Thread(target=sink.run, args=(stop,), daemon=True)
    t.start()
    try:
        assert _until(lambda: sink.health.snapshot().get("deadletters", {}).get("failures_total", 0)
                      >= 2 * len(bad), 60)
        r = api.get("/healthz")
        assert r.status_code == 503
        body = r.json()["checks"]["sink"]
        assert body["ok"] is False and body["deadletters"]["ok"] is False
        assert "too large" in body["deadletters"]["error"].lower(), body
        assert body["store"]["ok"] is True  # the store is fine: it is Kafka that refuses
        assert _metric(api.get("/metrics").text, "inferwatch_sink_deadletter_failures_total") >= 2 * len(bad)
        assert _committed(settings, group) == 0 and t.is_alive()
        assert sink.health.rows_written.get("predictions", 0) == 0  # dead letters go first, then the rows

        _set_max_message_bytes(settings, None)  # the topic takes them again
        assert _until(lambda: _committed(settings, group) >= n + len(bad), 60)
        assert api.get("/healthz").status_code == 200
        snap = sink.health.snapshot()
        assert snap["deadletters"]["ok"] is True and snap["deadletters"]["error"] is None
    finally:
        stop.set()
        t.join(60)
        store.close()
    assert not t.is_alive()
    dead = [orjson.loads(m.value()) for m in _dead_letters(settings, 100, 5)]
    assert sorted(base64.b64decode(d["payload_b64"]) for d in dead) == sorted(bad)  # each once
    assert sink.health.dead_letters == len(bad)
    assert sink.health.rows_written["predictions"] == n


def test_a_dead_letter_too_large_for_kafka_is_cut_not_lost_nor_fatal(settings: Settings) -> None:
    # 900 kB of garbage is a valid Kafka record but not a valid event; base64 makes its dead letter
    # ~1.2 MB, over the producer's message.max.bytes: produce() itself raises.
    huge = b"{" + b"x" * 900_000
    _produce(settings, [_pred(0), huge, _pred(1)], **{"message.max.bytes": 2_000_000})
    store = open_store(settings)
    store.migrate()
    group = f"g-big-{settings.topic_prefix}"
    sink = Sink(settings, store, SinkSettings(group_id=group, batch_ms=200, retry_initial_s=0.1, retry_max_s=0.5))
    stop = threading.Event()
    t = threading.Thread(target=sink.run, args=(stop,), daemon=True)
    t.start()
    try:
        assert _until(lambda: _committed(settings, group) >= 3 or not t.is_alive(), 60)
        assert t.is_alive(), "the sink died on a large dead letter"
        rows = store.scalar("SELECT count() FROM predictions")
    finally:
        stop.set()
        t.join(60)
        store.close()
    dead = [orjson.loads(m.value()) for m in _dead_letters(settings, 1, 20)]
    assert len(dead) == 1
    payload = base64.b64decode(dead[0]["payload_b64"])
    assert huge.startswith(payload) and 0 < len(payload) < len(huge)
    assert "truncated" in dead[0]["reason"] and str(len(huge)) in dead[0]["reason"]
    assert rows == 2
