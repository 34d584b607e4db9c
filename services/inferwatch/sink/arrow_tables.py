"""Build one Arrow table per ClickHouse table from a batch of validated events.

Column names and types follow ``schemas/clickhouse/000*_*.sql``. The builders read attributes
only, so they take the contract's pydantic models and the sink's msgspec structs alike.

Speed matters here (the sink must keep up with the store's own insert rate): every column is one
list comprehension over the batch, maps are flat key/value arrays plus offsets, the inputs map is
split into numeric / categorical / missing with numpy masks over the flattened values instead of a
per-value branch, and optional blocks that no event of the batch carries (LLM, lineage,
embedding) become all-null or all-empty columns without touching the rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from inferwatch.contract.events import (
    AlertV1,
    DeadletterV1,
    DetectionV1,
    FeedbackV1,
    MetricSnapshotV1,
    PredictionV1,
    _Event,
)

TS = pa.timestamp("ms", tz="UTC")
_EMPTY: dict[str, Any] = {}


class Kafka:
    """Kafka coordinates of the rows of one batch (all from one topic and partition)."""

    __slots__ = ("offsets", "partition", "topic")

    def __init__(self, topic: str, partition: int, offsets: list[int]) -> None:
        self.topic = topic
        self.partition = partition
        self.offsets = offsets

    def columns(self) -> dict[str, pa.Array]:
        n = len(self.offsets)
        return {
            "kafka_topic": pa.repeat(pa.scalar(self.topic, pa.string()), n),
            "kafka_partition": pa.repeat(pa.scalar(self.partition, pa.uint32()), n),
            "kafka_offset": pa.array(self.offsets, pa.uint64()),
        }


class _MapBuilder:
    """Accumulates a Map(String, V) column as offsets + flat keys + flat values (row by row)."""

    __slots__ = ("keys", "offsets", "values", "vtype")

    def __init__(self, vtype: pa.DataType) -> None:
        self.vtype = vtype
        self.offsets = [0]
        self.keys: list[str] = []
        self.values: list[Any] = []

    def add_dict(self, d: dict[str, Any] | None) -> None:
        if d:
            self.keys.extend(d.keys())
            self.values.extend(d.values())
        self.offsets.append(len(self.keys))

    def build(self) -> pa.Array:
        return pa.MapArray.from_arrays(
            pa.array(self.offsets, pa.int32()), pa.array(self.keys, pa.string()), pa.array(self.values, self.vtype)
        )


def _offsets(lengths: Sequence[int] | np.ndarray) -> pa.Array:
    """Arrow int32 offsets (n + 1 values, starting at 0) from per-row lengths."""
    off = np.zeros(len(lengths) + 1, np.int32)
    np.cumsum(lengths, out=off[1:])
    return pa.array(off)


def _map(dicts: Sequence[dict[str, Any]], vtype: pa.DataType) -> pa.Array:
    """A Map(String, vtype) column from one dict per row (no None)."""
    keys = list(chain.from_iterable(dicts))
    values = list(chain.from_iterable(map(dict.values, dicts)))
    return pa.MapArray.from_arrays(_offsets(list(map(len, dicts))), pa.array(keys, pa.string()),
                                   pa.array(values, vtype))


def _list(rows: Sequence[list[Any] | None], vtype: pa.DataType) -> pa.Array:
    """An Array(vtype) column; None rows become empty arrays (ClickHouse arrays are not nullable)."""
    return pa.array([r or [] for r in rows], pa.list_(vtype))


def _empty_lists(n: int, vtype: pa.DataType) -> pa.Array:
    return pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), pa.array([], vtype))


def _empty_map(n: int, vtype: pa.DataType) -> pa.Array:
    return pa.MapArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), pa.array([], pa.string()),
                                   pa.array([], vtype))


# Feature value kind by Python type: 0 numeric (bool counts as 0/1 by the contract), 1 categorical, 2 missing.
_KIND: dict[type, int] = {float: 0, int: 0, bool: 0, str: 1, type(None): 2}


def _inputs(inputs: Sequence[dict[str, Any]]) -> tuple[pa.Array, pa.Array, pa.Array]:
    """``inputs_num``, ``inputs_cat`` and ``inputs_null`` from the inputs dict of every row."""
    n = len(inputs)
    lengths = np.fromiter(map(len, inputs), np.int64, n)
    keys = list(chain.from_iterable(inputs))
    values = list(chain.from_iterable(map(dict.values, inputs)))
    if not keys:
        return _empty_map(n, pa.float64()), _empty_map(n, pa.string()), _empty_lists(n, pa.string())
    kind = np.fromiter(map(_KIND.__getitem__, map(type, values)), np.int8, len(values))
    row = np.repeat(np.arange(n), lengths)
    karr = pa.array(keys, pa.string())
    vobj = np.empty(len(values), object)
    vobj[:] = values

    def part(k: int) -> tuple[pa.Array, pa.Array, np.ndarray]:
        mask = kind == k
        return _offsets(np.bincount(row[mask], minlength=n)), karr.filter(pa.array(mask)), vobj[mask]

    off, k, v = part(0)
    num = pa.MapArray.from_arrays(off, k, pa.array(v.astype(np.float64), pa.float64()))
    off, k, v = part(1)
    cat = pa.MapArray.from_arrays(off, k, pa.array(v, pa.string()))
    off, k, _ = part(2)
    null = pa.ListArray.from_arrays(off, k)
    return num, cat, null


_LLM_COLUMNS: dict[str, pa.DataType] = {
    "llm_prompt": pa.string(), "llm_completion": pa.string(), "llm_prompt_hash": pa.string(),
    "llm_completion_hash": pa.string(), "llm_completion_chars": pa.uint32(), "llm_refusal": pa.bool_(),
    "llm_input_tokens": pa.uint32(), "llm_output_tokens": pa.uint32(), "llm_finish_reason": pa.string(),
    "llm_logprob_mean": pa.float64(), "llm_logprob_min": pa.float64(),
}


def _llm(blocks: Sequence[Any]) -> dict[str, pa.Array]:
    """The ``llm_*`` columns; ``completion_chars`` falls back to the completion's length."""
    n = len(blocks)
    if all(b is None for b in blocks):
        cols = {name: pa.nulls(n, t) for name, t in _LLM_COLUMNS.items()}
        cols["llm_token_logprobs"] = _empty_lists(n, pa.float32())
        return cols

    def get(attr: str) -> list[Any]:
        return [getattr(b, attr) if b is not None else None for b in blocks]

    chars = [None if b is None else b.completion_chars if b.completion_chars is not None or b.completion is None
             else len(b.completion) for b in blocks]
    lps = [b.token_logprobs if b is not None else None for b in blocks]
    return {
        "llm_prompt": pa.array(get("prompt"), pa.string()),
        "llm_completion": pa.array(get("completion"), pa.string()),
        "llm_prompt_hash": pa.array(get("prompt_hash"), pa.string()),
        "llm_completion_hash": pa.array(get("completion_hash"), pa.string()),
        "llm_completion_chars": pa.array(chars, pa.uint32()),
        "llm_refusal": pa.array(get("refusal"), pa.bool_()),
        "llm_input_tokens": pa.array(get("input_tokens"), pa.uint32()),
        "llm_output_tokens": pa.array(get("output_tokens"), pa.uint32()),
        "llm_finish_reason": pa.array(get("finish_reason"), pa.string()),
        "llm_logprob_mean": pa.array([sum(lp) / len(lp) if lp else None for lp in lps], pa.float64()),
        "llm_logprob_min": pa.array([min(lp) if lp else None for lp in lps], pa.float64()),
        "llm_token_logprobs": _list(lps, pa.float32()),
    }


def _lineage(refs: Sequence[list[Any] | None]) -> dict[str, pa.Array]:
    """``lineage_*``: one array per attribute of the lineage references, parallel per row."""
    n = len(refs)
    names = ("kind", "model", "model_version", "share")
    types = (pa.string(), pa.string(), pa.string(), pa.float64())
    if not any(refs):
        return {f"lineage_{a}": _empty_lists(n, t) for a, t in zip(names, types, strict=True)}
    off = _offsets([len(r) if r else 0 for r in refs])
    flat = [x for r in refs if r for x in r]
    return {f"lineage_{a}": pa.ListArray.from_arrays(off, pa.array([getattr(x, a) for x in flat], t))
            for a, t in zip(names, types, strict=True)}


def predictions(events: Sequence[PredictionV1], kafka: Kafka) -> pa.Table:
    """Rows of ``predictions``: inputs split into numeric / categorical / missing."""
    n = len(events)
    inputs_num, inputs_cat, inputs_null = _inputs([e.inputs for e in events])
    outs = [e.outputs for e in events]
    if all(o is not None for o in outs):
        label = [o.label for o in outs]  # type: ignore[union-attr]
        score = [o.score for o in outs]  # type: ignore[union-attr]
        value = [o.value for o in outs]  # type: ignore[union-attr]
        probs = [o.probabilities or _EMPTY for o in outs]  # type: ignore[union-attr]
    else:
        label = [o.label if o is not None else None for o in outs]
        score = [o.score if o is not None else None for o in outs]
        value = [o.value if o is not None else None for o in outs]
        probs = [o.probabilities or _EMPTY if o is not None else _EMPTY for o in outs]
    emb = [e.embedding for e in events]
    cols: dict[str, pa.Array] = {
        "event_id": pa.array([e.event_id for e in events], pa.string()),
        "prediction_id": pa.array([e.prediction_id for e in events], pa.string()),
        "ts": pa.array([e.ts for e in events], pa.int64()).cast(TS),
        "model": pa.array([e.model for e in events], pa.string()),
        "model_version": pa.array([e.model_version for e in events], pa.string()),
        "latency_ms": pa.array([e.latency_ms for e in events], pa.float64()),
        "error": pa.array([e.error for e in events], pa.string()),
        "inputs_num": inputs_num,
        "inputs_cat": inputs_cat,
        "inputs_null": inputs_null,
        "output_label": pa.array(label, pa.string()),
        "output_score": pa.array(score, pa.float64()),
        "output_value": pa.array(value, pa.float64()),
        "output_probabilities": _map(probs, pa.float64()) if any(probs) else _empty_map(n, pa.float64()),
        "segment": _map([e.segment for e in events], pa.string()),
        "embedding": _list(emb, pa.float32()) if any(x is not None for x in emb) else _empty_lists(n, pa.float32()),
        **_llm([e.llm for e in events]),
        **_lineage([e.lineage for e in events]),
        "tags": _map([e.tags for e in events], pa.string()),
    }
    cols.update(kafka.columns())
    return pa.table(cols)


def feedback(events: Sequence[FeedbackV1], kafka: Kafka) -> pa.Table:
    """Rows of ``feedback``."""
    cols: dict[str, pa.Array] = {
        "event_id": pa.array([e.event_id for e in events], pa.string()),
        "prediction_id": pa.array([e.prediction_id for e in events], pa.string()),
        "ts": pa.array([e.ts for e in events], pa.int64()).cast(TS),
        "model": pa.array([e.model for e in events], pa.string()),
        "model_version": pa.array([e.model_version for e in events], pa.string()),
        "label": pa.array([e.label for e in events], pa.string()),
        "value": pa.array([e.value for e in events], pa.float64()),
        "tags": _map([e.tags for e in events], pa.string()),
    }
    cols.update(kafka.columns())
    return pa.table(cols)


def metrics(events: Sequence[MetricSnapshotV1], kafka: Kafka) -> pa.Table:
    """Rows of ``metrics``; null metric values are left out of the maps."""
    m, r = _MapBuilder(pa.float64()), _MapBuilder(pa.float64())
    for e in events:
        m.add_dict({k: v for k, v in e.metrics.items() if v is not None})
        r.add_dict({k: v for k, v in e.reference.items() if v is not None})
    cols: dict[str, pa.Array] = {
        "event_id": pa.array([e.event_id for e in events], pa.string()),
        "ts": pa.array([e.ts for e in events], pa.int64()).cast(TS),
        "model": pa.array([e.model for e in events], pa.string()),
        "model_version": pa.array([e.model_version for e in events], pa.string()),
        "segment_key": pa.array([e.segment_key for e in events], pa.string()),
        "segment_value": pa.array([e.segment_value for e in events], pa.string()),
        "window_start": pa.array([e.window_start for e in events], pa.int64()).cast(TS),
        "window_end": pa.array([e.window_end for e in events], pa.int64()).cast(TS),
        "window_s": pa.array([e.window_s for e in events], pa.uint32()),
        "count": pa.array([e.count for e in events], pa.uint64()),
        "late_events": pa.array([e.late_events for e in events], pa.uint64()),
        "metrics": m.build(),
        "reference": r.build(),
        "finding_metrics": _list([[f.metric for f in e.findings] for e in events], pa.string()),
        "finding_kinds": _list([[f.kind for f in e.findings] for e in events], pa.string()),
        "findings_json": pa.array(
            [orjson.dumps([f.model_dump(mode="json") for f in e.findings]).decode() for e in events], pa.string()
        ),
    }
    cols.update(kafka.columns())
    return pa.table(cols)


def alerts(events: Sequence[AlertV1], kafka: Kafka) -> pa.Table:
    """Rows of ``alerts``: one per notification/delivery attempt, alert instances as parallel arrays."""
    gl = _MapBuilder(pa.string())
    for e in events:
        gl.add_dict(e.group_labels)

    def arr(get: Callable[[Any], Any], t: pa.DataType) -> pa.Array:
        return _list([[get(a) for a in e.alerts] for e in events], t)

    def dv(get: Callable[[Any], Any], t: pa.DataType) -> pa.Array:
        return pa.array([get(e.delivery) if e.delivery is not None else None for e in events], t)

    cols: dict[str, pa.Array] = {
        "event_id": pa.array([e.event_id for e in events], pa.string()),
        "ts": pa.array([e.ts for e in events], pa.int64()).cast(TS),
        "idempotency_key": pa.array([e.idempotency_key for e in events], pa.string()),
        "receiver": pa.array([e.receiver for e in events], pa.string()),
        "status": pa.array([e.status for e in events], pa.string()),
        "group_key": pa.array([e.group_key for e in events], pa.string()),
        "group_labels": gl.build(),
        "alert_fingerprint": arr(lambda a: a.fingerprint, pa.string()),
        "alert_rule": arr(lambda a: a.rule, pa.string()),
        "alert_status": arr(lambda a: a.status, pa.string()),
        "alert_severity": arr(lambda a: a.severity, pa.string()),
        "alert_model": arr(lambda a: a.model, pa.string()),
        "alert_model_version": arr(lambda a: a.model_version, pa.string()),
        "alert_segment": arr(lambda a: a.segment, pa.string()),
        "alert_value": arr(lambda a: a.value, pa.float64()),
        "alerts_json": pa.array(
            [orjson.dumps([a.model_dump(mode="json") for a in e.alerts]).decode() for e in events], pa.string()
        ),
        "delivery_attempt": dv(lambda d: d.attempt, pa.uint32()),
        "delivery_outcome": dv(lambda d: d.outcome, pa.string()),
        "delivery_http_status": dv(lambda d: d.http_status, pa.int32()),
        "delivery_error": dv(lambda d: d.error, pa.string()),
        "delivery_duration_ms": dv(lambda d: d.duration_ms, pa.float64()),
    }
    cols.update(kafka.columns())
    return pa.table(cols)


def deadletter(events: Sequence[DeadletterV1], kafka: Kafka) -> pa.Table:
    """Rows of ``deadletter``."""
    cols: dict[str, pa.Array] = {
        "event_id": pa.array([e.event_id for e in events], pa.string()),
        "ts": pa.array([e.ts for e in events], pa.int64()).cast(TS),
        "stage": pa.array([e.stage for e in events], pa.string()),
        "reason": pa.array([e.reason for e in events], pa.string()),
        "error_path": pa.array([e.error_path for e in events], pa.string()),
        "source_topic": pa.array([e.source_topic for e in events], pa.string()),
        "source_partition": pa.array([e.source_partition for e in events], pa.uint32()),
        "source_offset": pa.array([e.source_offset for e in events], pa.uint64()),
        "expected_schema": pa.array([e.expected_schema for e in events], pa.string()),
        "key_b64": pa.array([e.key_b64 for e in events], pa.string()),
        "payload_b64": pa.array([e.payload_b64 for e in events], pa.string()),
    }
    cols.update(kafka.columns())
    return pa.table(cols)


def detections(events: Sequence[DetectionV1], kafka: Kafka) -> pa.Table:
    """Rows of ``detections``: the evidence as two parallel arrays (names, scores)."""
    cols: dict[str, pa.Array] = {
        "event_id": pa.array([e.event_id for e in events], pa.string()),
        "ts": pa.array([e.ts for e in events], pa.int64()).cast(TS),
        "model": pa.array([e.model for e in events], pa.string()),
        "model_version": pa.array([e.model_version for e in events], pa.string()),
        "segment_key": pa.array([e.segment_key for e in events], pa.string()),
        "segment_value": pa.array([e.segment_value for e in events], pa.string()),
        "new_segment": pa.array([e.new_segment for e in events], pa.bool_()),
        "signal": pa.array([e.signal for e in events], pa.string()),
        "metric": pa.array([e.metric for e in events], pa.string()),
        "detector": pa.array([e.detector for e in events], pa.string()),
        "status": pa.array([e.status for e in events], pa.string()),
        "statistic": pa.array([e.statistic for e in events], pa.float64()),
        "threshold": pa.array([e.threshold for e in events], pa.float64()),
        "false_alarm_rate": pa.array([e.false_alarm_rate for e in events], pa.float64()),
        "events": pa.array([e.events for e in events], pa.uint64()),
        "labels": pa.array([e.labels for e in events], pa.uint64()),
        "change_ts": pa.array([e.change_ts for e in events], pa.int64()).cast(TS),
        "value": pa.array([e.value for e in events], pa.float64()),
        "reference": pa.array([e.reference for e in events], pa.float64()),
        "evidence_names": _list([[x.name for x in e.evidence] for e in events], pa.string()),
        "evidence_scores": _list([[x.score for x in e.evidence] for e in events], pa.float64()),
    }
    cols.update(kafka.columns())
    return pa.table(cols)


BUILDERS: dict[str, tuple[str, Callable[[Any, Kafka], pa.Table]]] = {
    "prediction.v1": ("predictions", predictions),
    "feedback.v1": ("feedback", feedback),
    "metric_snapshot.v1": ("metrics", metrics),
    "alert.v1": ("alerts", alerts),
    "deadletter.v1": ("deadletter", deadletter),
    "detection.v1": ("detections", detections),
}
"""Event schema -> (ClickHouse table, column builder)."""


def build(schema: str, events: Sequence[_Event], kafka: Kafka) -> tuple[str, pa.Table]:
    """The table name and the Arrow rows of ``events`` of ``schema``."""
    table, fn = BUILDERS[schema]
    return table, fn(events, kafka)
