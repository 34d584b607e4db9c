"""Redaction, checked where it matters: the bytes that reach the real broker hold no raw value.

A logger redacting inputs, segment, tags, outputs, error and LLM text logs predictions through
every call shape (the plain call the fast path would take, ``timed()`` with a failure, LLM blocks)
and feedback; the test then reads the raw record bytes (keys, values, headers) of the topics.
"""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, TopicPartition

from inferwatch.config import Settings
from inferwatch.kafka.clientconf import base_config
from inferwatch.sdk import InferenceLogger
from inferwatch.sdk.redaction import SALT_FILE, value_hash

pytestmark = pytest.mark.integration

SECRETS = ["ann@example.com", "acme-corp", "req-7781", "approved-loan", "denied-loan", "card 4111-1111",
           "tell me about ann", "ann lives in paris", "ssn-123-45-6789"]
REDACT = {
    "drop": ["email"], "hash": ["user_id"],
    "segment": {"customer": "hash"}, "tags": {"request": "hash", "*": "drop"},
    "outputs": {"label": "hash", "probabilities": "hash"}, "error": "drop", "llm_text": "hash",
}


def _raw_records(s: Settings, topic: str) -> list[bytes]:
    """Every record of ``topic`` as the broker hands it out: key + value + header bytes."""
    c = Consumer({**base_config(s), "group.id": f"raw-{s.topic_prefix}", "enable.auto.commit": False})
    out: list[bytes] = []
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in parts}
        want = sum(hi - lo for lo, hi in ends.values())
        c.assign([TopicPartition(topic, p, lo) for p, (lo, _) in ends.items()])
        for _ in range(200):
            if len(out) >= want:
                break
            for m in c.consume(500, timeout=0.2):
                if m.error() is None:
                    hdrs = b"".join(k.encode() + (v or b"") for k, v in (m.headers() or []))
                    out.append((m.key() or b"") + b"|" + (m.value() or b"") + b"|" + hdrs)
    finally:
        c.close()
    assert len(out) == want
    return out


def test_no_raw_value_reaches_kafka(settings: Settings) -> None:
    with InferenceLogger("loans", "1", settings=settings, spool_dir=None, redact=REDACT) as lg:
        # the plain call: without redaction this shape is served by the C fast path
        pid = lg.prediction({"email": "ann@example.com", "user_id": "ssn-123-45-6789", "income": 52000.0},
                            {"label": "approved-loan"}, latency_ms=3.0, segment={"customer": "acme-corp"})
        lg.prediction({"user_id": "ssn-123-45-6789"}, {"label": "denied-loan",
                                                       "probabilities": {"approved-loan": 0.2, "denied-loan": 0.8}},
                      tags={"request": "req-7781", "card": "card 4111-1111"}, segment={"customer": "acme-corp"})
        with pytest.raises(KeyError), lg.timed({"email": "ann@example.com"}, segment={"customer": "acme-corp"}):
            raise KeyError("card 4111-1111 of ann@example.com")
        lg.prediction({"x": 1.0}, {"label": "approved-loan"},
                      llm={"prompt": "tell me about ann", "completion": "ann lives in paris", "output_tokens": 5})
        lg.feedback(pid, "approved-loan", tags={"request": "req-7781"})
        assert lg.flush(30)
        assert lg.stats()["delivered"] == 5

    preds = _raw_records(settings, settings.predictions_topic)
    feedback = _raw_records(settings, settings.feedback_topic)
    assert len(preds) == 4 and len(feedback) == 1
    wire = b"\n".join(preds + feedback)
    for secret in SECRETS:
        for form in {secret.encode(), secret.encode("unicode_escape"), secret.replace(" ", "\\u0020").encode()}:
            assert form not in wire, f"{secret!r} reached Kafka"
    # what is there instead: keyed hashes, under the salt kept in the data dir
    salt = (settings.data_dir / SALT_FILE).read_bytes().strip()
    assert value_hash("acme-corp", salt).encode() in preds[0]
    assert value_hash("approved-loan", salt).encode() in preds[0] and value_hash("approved-loan", salt).encode() in feedback[0]
    assert b'"error":"redacted"' in wire and b'"income":52000.0' in preds[0]
    assert b'"prompt_hash"' in preds[3] and b'"completion_chars":18' in preds[3]
