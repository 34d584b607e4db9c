"""The sink's replay guard against a topic deleted and re-created on the real broker.

The guard skips messages already stored (a replay after a crash between insert and commit). Offsets
of a re-created topic start again at 0, below what the store holds for the old topic: the new
messages must be stored, not skipped as replays, and not dropped by the store's deduplication of a
batch token seen before. A genuine replay (same messages at the same offsets) is still skipped.
"""

from __future__ import annotations

import threading
import time

import orjson
import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient

from inferwatch.config import Settings
from inferwatch.kafka.admin import apply_topics
from inferwatch.sink import Sink, SinkSettings
from inferwatch.store import open_store
from inferwatch.store.base import Store

pytestmark = pytest.mark.integration


def _pred(tag: str, i: int) -> bytes:
    return orjson.dumps({
        "schema_version": "prediction.v1", "event_id": f"{tag}{i}", "prediction_id": f"{tag}p{i}",
        "ts": int(time.time() * 1000), "model": "m", "model_version": "v1", "latency_ms": 3.0,
        "inputs": {"w": i}, "outputs": {"label": "cat"},
    })


def _produce(s: Settings, values: list[bytes]) -> None:
    p = Producer({"bootstrap.servers": s.kafka_bootstrap, "linger.ms": 5})
    for v in values:
        p.produce(s.predictions_topic, key=b"m", value=v)  # one key: one partition, offsets 0..n-1
    assert p.flush(30) == 0
    p.close()


def _sink_until(settings: Settings, store: Store, group: str, expected: int, timeout_s: float = 60) -> int:
    """Run a sink until the predictions table holds ``expected`` rows (or ``timeout_s``); the count."""
    sink = Sink(settings, store, SinkSettings(group_id=group, batch_rows=5000, batch_ms=300,
                                             session_timeout_ms=6000))
    stop = threading.Event()
    t = threading.Thread(target=sink.run, args=(stop,), daemon=True)
    t.start()
    deadline = time.monotonic() + timeout_s
    got = 0
    try:
        while time.monotonic() < deadline:
            got = store.scalar("SELECT count() FROM predictions")
            if got >= expected:
                time.sleep(1.0)  # a wrong extra row would land now
                got = store.scalar("SELECT count() FROM predictions")
                break
            time.sleep(0.3)
    finally:
        stop.set()
        t.join(60)
    assert not t.is_alive()
    return int(got)


def _recreate(settings: Settings) -> None:
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    admin.delete_topics([settings.predictions_topic])[settings.predictions_topic].result(timeout=30)
    deadline = time.monotonic() + 60
    while True:  # deletion finishes asynchronously: creating too early fails with "marked for deletion"
        try:
            apply_topics(settings)
            if settings.predictions_topic in admin.list_topics(timeout=10).topics:
                return
        except KafkaException:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("the topic could not be re-created")
        time.sleep(0.5)


def test_new_messages_of_a_recreated_topic_are_stored_not_skipped(settings: Settings) -> None:
    n = 400
    group = f"g-recreate-{settings.topic_prefix}"
    store = open_store(settings)
    store.migrate()
    try:
        _produce(settings, [_pred("old", i) for i in range(n)])
        assert _sink_until(settings, store, group, n) == n

        _recreate(settings)
        # The same number of messages: the same offsets 0..n-1, so the same batch boundaries as before.
        _produce(settings, [_pred("new", i) for i in range(n)])
        assert _sink_until(settings, store, group, 2 * n) == 2 * n
        new = store.query("SELECT event_id FROM predictions WHERE startsWith(event_id, 'new')", max_rows=2 * n).rows
        assert sorted(r[0] for r in new) == sorted(f"new{i}" for i in range(n))

        # A genuine replay of the re-created topic (its offsets committed away: re-read from 0 by a new
        # group) is still recognised and skipped: no duplicate.
        assert _sink_until(settings, store, group + "-replay", 2 * n + 1, timeout_s=8) == 2 * n
        total, distinct = store.query("SELECT count(), uniqExact(event_id) FROM predictions").rows[0]
        assert (total, distinct) == (2 * n, 2 * n)
    finally:
        store.close()
