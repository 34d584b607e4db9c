"""What a processor worker reads of the uploaded reference profiles before its first batch
(:func:`inferwatch.processor.reference.read_uploaded`), from the real compacted topic."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaException, Producer

from inferwatch.config import Settings
from inferwatch.processor.reference import read_uploaded
from inferwatch.processor.settings import ProcessorSettings
from inferwatch.processor.topics import ensure_topics, references_topic
from tests.support.processor import Worker, log_predictions

pytestmark = pytest.mark.integration


def _once_the_topic_serves(settings: Settings, timeout_s: float = 30.0) -> dict[str, bytes]:
    """The first read of a topic just created: the broker answers UNKNOWN_PARTITION or NOT_LEADER
    until its partition has a leader that took it over."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return read_uploaded(settings)
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_the_last_value_of_each_key_wins_and_a_tombstone_withdraws_it(settings: Settings) -> None:
    ensure_topics(settings, ProcessorSettings())
    assert _once_the_topic_serves(settings) == {}  # an empty topic: nothing

    p = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    topic = references_topic(settings)
    for key, value in [("fraud@1", b"first"), ("churn@2", b"kept"), ("fraud@1", b"second"), ("gone@1", b"x"),
                       ("gone@1", None)]:
        p.produce(topic, key=key.encode(), value=value)
    assert p.flush(30) == 0

    assert read_uploaded(settings) == {"fraud@1": b"second", "churn@2": b"kept"}


def test_a_profile_uploaded_at_run_time_reaches_every_worker_of_the_group(settings: Settings, tmp_path: Path) -> None:
    """Two workers split the predictions partitions; a profile uploaded while both run is installed
    by BOTH (each follows the whole references topic). It used to reach only the worker the group
    gave the references partition to: the other compared that version with its pinned baseline
    until it restarted."""
    ensure_topics(settings, ProcessorSettings())
    _once_the_topic_serves(settings)
    models = [f"refs-{i}" for i in range(8)]  # spread over the predictions partitions
    workers = [Worker(settings, tmp_path / n, tmp_path / f"{n}.log") for n in ("w1", "w2")]
    try:
        for w in workers:
            w.wait_healthy()
        deadline = time.monotonic() + 90
        t0 = int(time.time() * 1000) - 3_600_000
        sent = 0
        # Both hold partitions and have read the topic once (their first batch builds their core).
        while time.monotonic() < deadline and not all(
                (w.health() or {}).get("assigned_partitions") and (w.health() or {}).get("batches_total", 0) > 0
                for w in workers):
            log_predictions(settings, models, 20, t0, start=sent)
            sent += 20
            time.sleep(1.0)
        assert all((w.health() or {}).get("batches_total", 0) > 0 for w in workers), [w.tail() for w in workers]

        p = Producer({"bootstrap.servers": settings.kafka_bootstrap})
        p.produce(references_topic(settings), key=b"late-upload@1", value=b"a profile uploaded at run time")
        assert p.flush(30) == 0
        want = "reference profile for late-upload@1 installed"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(want in w.tail(200_000) for w in workers):
            time.sleep(0.5)
        assert all(want in w.tail(200_000) for w in workers), [w.tail() for w in workers]
    finally:
        for w in workers:
            w.stop()
