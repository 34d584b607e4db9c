"""Consumer lag of each Inferwatch service's consumer group, from Kafka's committed offsets.

Wire format: the Kafka protocol through confluent-kafka (``list_topics``, ``committed``,
``get_watermark_offsets``); no group is joined — a throwaway consumer only reads offsets.
Lag of a partition = high watermark − committed offset (the whole partition when nothing is
committed yet).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition

from inferwatch.config import Settings
from inferwatch.contract import topics as _t


@dataclass(frozen=True)
class GroupLag:
    """The lag of one consumer group over the topics it reads."""

    service: str
    group: str
    topics: tuple[str, ...]
    lag: int | None
    per_topic: dict[str, int]
    error: str | None = None


def service_groups(settings: Settings) -> list[tuple[str, str, tuple[str, ...]]]:
    """(service, consumer group, topics read) of the processor, sink and alerter of a deployment."""
    from inferwatch.kafka.groups import ALERTER, group_id
    from inferwatch.processor.topics import app_id
    from inferwatch.sink.settings import SinkSettings, sink_group_id

    s = settings
    return [
        ("processor", app_id(s), (s.predictions_topic, s.feedback_topic)),
        ("sink", sink_group_id(s, SinkSettings()),
         tuple(s.topic(n) for n in (_t.PREDICTIONS, _t.FEEDBACK, _t.METRICS, _t.ALERTS, _t.DEADLETTER,
                                     _t.DETECTIONS))),
        ("alerter", group_id(s, ALERTER), (s.metrics_topic, s.detections_topic)),
    ]


def _base(settings: Settings) -> dict[str, object]:
    from inferwatch.kafka.clientconf import base_config

    # offset lookups only: Kafka being away is reported by the caller (kafka_up, lag=None), not logged
    return {**base_config(settings), "log_level": 0}


def consumer_lag(settings: Settings, timeout_s: float = 5.0) -> list[GroupLag]:
    """The lag of every service's group; a group or topic Kafka cannot answer for has ``lag=None``."""
    out: list[GroupLag] = []
    for service, group, topics in service_groups(settings):
        c = Consumer({**_base(settings), "group.id": group, "enable.auto.commit": False,
                      "client.id": f"inferwatch-lag-{uuid.uuid4().hex[:6]}"})
        try:
            md = c.list_topics(timeout=timeout_s)
            parts = [TopicPartition(t, p) for t in topics if t in md.topics for p in md.topics[t].partitions]
            committed = c.committed(parts, timeout=timeout_s) if parts else []
            per: dict[str, int] = {}
            for tp in committed:
                _lo, hi = c.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=timeout_s, cached=False)
                done = tp.offset if tp.offset >= 0 else 0
                per[tp.topic] = per.get(tp.topic, 0) + max(0, hi - done)
            out.append(GroupLag(service, group, topics, sum(per.values()), per))
        except KafkaException as exc:
            out.append(GroupLag(service, group, topics, None, {}, str(exc)[:300]))
        finally:
            c.close()
    return out


def topic_end_offsets(settings: Settings, timeout_s: float = 5.0) -> dict[str, int]:
    """Messages ever written to each registry topic (sum of high watermarks): the "events in" counters."""
    c = Consumer({**_base(settings), "group.id": f"inferwatch-offsets-{uuid.uuid4().hex[:6]}",
                  "enable.auto.commit": False})
    out: dict[str, int] = {}
    try:
        md = c.list_topics(timeout=timeout_s)
        for name in (_t.PREDICTIONS, _t.FEEDBACK, _t.METRICS, _t.ALERTS, _t.DEADLETTER):
            full = settings.topic(name)
            if full not in md.topics:
                continue
            total = 0
            for p in md.topics[full].partitions:
                _lo, hi = c.get_watermark_offsets(TopicPartition(full, p), timeout=timeout_s, cached=False)
                total += hi
            out[name] = total
    finally:
        c.close()
    return out
