"""What a processor worker reads of the uploaded reference profiles before its first batch
(:func:`inferwatch.processor.reference.read_uploaded`), from the real compacted topic."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaException, Producer

from inferwatch.config import Settings
from inferwatch.processor.reference import read_uploaded
from inferwatch.processor.settings import ProcessorSettings
from inferwatch.processor.topics import ensure_topics, references_topic

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
