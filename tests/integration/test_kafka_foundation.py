"""The foundation against the real broker: topics from the registry, and a 10,000-event round trip."""

from __future__ import annotations

import uuid

import orjson
import pytest
from confluent_kafka import Producer

from inferwatch.config import Settings
from inferwatch.contract import PredictionV1, validate
from inferwatch.contract.topics import ALL_TOPICS, load_registry
from inferwatch.kafka.admin import admin_client, apply_topics
from tests.support.kafka import consume_all, new_prefix

pytestmark = pytest.mark.integration


def test_apply_topics_creates_registry_topics_then_is_idempotent(kafka_bootstrap: str) -> None:
    s = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=new_prefix())
    first = apply_topics(s)
    assert sorted(first.created) == sorted(s.topic(t) for t in ALL_TOPICS)
    second = apply_topics(s)
    assert second.created == [] and second.updated == []
    assert sorted(second.unchanged) == sorted(s.topic(t) for t in ALL_TOPICS)
    md = admin_client(s).list_topics(timeout=10).topics
    for name, spec in load_registry().items():
        assert len(md[s.topic(name)].partitions) == spec.partitions


def test_apply_topics_raises_partitions_and_fixes_config(kafka_bootstrap: str) -> None:
    s = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=new_prefix())
    reg = load_registry()
    small = {k: v.model_copy(update={"partitions": 1, "retention_ms": 1000}) for k, v in reg.items()}
    apply_topics(s, small)
    rep = apply_topics(s)
    assert sorted(rep.updated) == sorted(s.topic(t) for t in ALL_TOPICS)
    md = admin_client(s).list_topics(timeout=10).topics
    assert len(md[s.predictions_topic].partitions) == reg["inferwatch.predictions"].partitions


def test_ten_thousand_predictions_round_trip(settings: Settings) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 5, "enable.idempotence": True})
    sent: set[str] = set()
    for i in range(10_000):
        eid = uuid.uuid4().hex
        ev = PredictionV1(
            event_id=eid, prediction_id=f"p{i}", ts=1_764_000_000_000 + i, model=f"m{i % 3}", model_version="1",
            latency_ms=1.0, inputs={"x": float(i)}, outputs={"score": 0.5},
        )
        producer.produce(settings.predictions_topic, key=ev.model, value=orjson.dumps(ev.model_dump(mode="json")))
        producer.poll(0)
        sent.add(eid)
    assert producer.flush(30) == 0
    msgs = consume_all(settings.kafka_bootstrap, settings.predictions_topic, expected=10_000, timeout_s=60)
    got = [validate("prediction.v1", m.value()).event_id for m in msgs]  # type: ignore[attr-defined]
    assert len(got) == 10_000
    assert set(got) == sent
