"""``detection.v1``: the rules beyond single fields (the segment pair), the lists defined once in the
limits, the evidence bound, and the deterministic event id."""

from __future__ import annotations

import json
from typing import Any, get_args

import jsonschema
import pytest

from inferwatch.contract import ContractError, jsonschema_gen, validate
from inferwatch.contract import limits as L
from inferwatch.contract.events import DetectionV1, detection_id

TS = 1764140061000


def _det(**over: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "schema_version": "detection.v1", "event_id": "d-1", "ts": TS, "model": "photo-verifier",
        "model_version": "3.2.0", "segment_key": "device", "segment_value": "pixel-9", "new_segment": True,
        "signal": "input", "metric": "input.image_width", "detector": "cusum", "statistic": 12.5,
        "threshold": 9.0, "false_alarm_rate": 1e-4, "events": 31, "change_ts": TS - 30_000,
        "evidence": [{"name": "input.image_width", "score": 8.1}],
    }
    ev.update(over)
    return ev


def _schema_ok(ev: dict[str, Any]) -> bool:
    return jsonschema.Draft202012Validator(jsonschema_gen.schema_for("detection.v1")).is_valid(ev)


@pytest.mark.parametrize(("key", "value", "ok"), [
    ("device", "pixel-9", True), (None, None, True), ("device", None, False), (None, "pixel-9", False)])
def test_segment_key_and_value_go_together_in_the_model_and_the_schema(key: Any, value: Any, ok: bool) -> None:
    ev = _det(segment_key=key, segment_value=value)
    assert _schema_ok(ev) is ok
    if ok:
        validate("detection.v1", ev)
    else:
        with pytest.raises(ContractError, match="both set or both null"):
            validate("detection.v1", ev)


def test_evidence_is_bounded_by_the_limit() -> None:
    at = [{"name": f"input.f{i}", "score": float(i)} for i in range(L.MAX_EVIDENCE)]
    validate("detection.v1", _det(evidence=at))
    with pytest.raises(ContractError) as info:
        validate("detection.v1", _det(evidence=[*at, {"name": "input.x", "score": 0.0}]))
    assert info.value.path == "evidence"
    assert not _schema_ok(_det(evidence=[*at, {"name": "input.x", "score": 0.0}]))


@pytest.mark.parametrize(("field", "bad", "path"), [
    ("false_alarm_rate", 1.5, "false_alarm_rate"), ("events", -1, "events"), ("events", 1.0, "events"),
    ("signal", "vibes", "signal"), ("detector", "adwin", "detector"), ("status", "firing", "status"),
    ("statistic", "1", "statistic"), ("metric", "", "metric"), ("metric", "m" * (L.METRIC_NAME_MAX + 1), "metric"),
    ("evidence", [{"name": "", "score": 1.0}], "evidence[0].name"), ("change_ts", L.TS_MAX_MS + 1, "change_ts"),
])
def test_a_broken_field_is_named(field: str, bad: Any, path: str) -> None:
    with pytest.raises(ContractError) as info:
        validate("detection.v1", _det(**{field: bad}))
    assert info.value.path == path
    if not (field == "events" and bad == 1.0):  # JSON Schema's integer takes 1.0 (docs/contract.md)
        assert not _schema_ok(_det(**{field: bad}))


def test_the_literals_are_the_limits_lists() -> None:
    fields = DetectionV1.model_fields
    assert get_args(fields["signal"].annotation) == L.DETECTION_SIGNALS
    assert get_args(fields["detector"].annotation) == L.DETECTORS
    assert get_args(fields["status"].annotation) == L.DETECTION_STATUSES


def test_detection_id_is_deterministic_and_unambiguous() -> None:
    args = ("m", "1", "device", "pixel-9", "input", "input.w", "cusum", "detected", TS)
    assert detection_id(*args) == detection_id(*args)
    assert len(detection_id(*args)) <= L.EVENT_ID_MAX
    others = {detection_id(*args[:7], "cleared", TS), detection_id(*args[:8], TS + 1),
              detection_id("m", "1", None, None, *args[4:])}
    assert detection_id(*args) not in others and len(others) == 3
    # a separator inside a value cannot make two different detections collide
    assert detection_id("m", "1", "k", "a|b", "input", "c", "cusum", "detected", TS) != \
        detection_id("m", "1", "k", "a", "input", "b|c", "cusum", "detected", TS)


def test_a_detection_survives_the_wire() -> None:
    d = DetectionV1.model_validate(_det(labels=None, value=4032.0, reference=1920.0))
    again = validate("detection.v1", d.model_dump_json().encode())
    assert again == d
    assert json.loads(d.model_dump_json())["schema_version"] == "detection.v1"


def test_the_detections_topic_is_keyed_and_partitioned_like_the_metrics_topic() -> None:
    """The alerter reads both topics in one consumer group: a model's snapshots and detections share a key
    and a partition count, so one alerter sees both for the models of its partitions."""
    from inferwatch.contract.topics import DETECTIONS, METRICS, load_registry

    reg = load_registry()
    det, met = reg[DETECTIONS], reg[METRICS]
    assert det.schema_ == "detection.v1"
    assert det.partitions == met.partitions and det.replication == met.replication
    assert "model name" in det.key.lower() and "model name" in met.key.lower()
    assert set(det.producers) == {"processor"} and {"alerter", "sink"} <= set(det.consumers)
