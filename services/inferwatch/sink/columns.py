"""Build one Arrow table per ClickHouse table from a batch of validated events.

Column names and types follow ``schemas/clickhouse/000*_*.sql``. Maps are built as flat
key/value arrays plus offsets (one pass over the rows, no per-row Arrow objects), which is what
keeps the sink close to the store's own insert speed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson
import pyarrow as pa

from inferwatch.contract.events import (
    AlertV1,
    DeadletterV1,
    FeedbackV1,
    MetricSnapshotV1,
    PredictionV1,
    _Event,
)

TS = pa.timestamp("ms", tz="UTC")


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
            "kafka_topic": pa.array([self.topic] * n, pa.string()),
            "kafka_partition": pa.array([self.partition] * n, pa.uint32()),
            "kafka_offset": pa.array(self.offsets, pa.uint64()),
        }


class _MapBuilder:
    """Accumulates a Map(String, V) column as offsets + flat keys + flat values."""

    __slots__ = ("keys", "offsets", "values", "vtype")

    def __init__(self, vtype: pa.DataType) -> None:
        self.vtype = vtype
        self.offsets = [0]
        self.keys: list[str] = []
        self.values: list[Any] = []

    def close_row(self) -> None:
        self.offsets.append(len(self.keys))

    def add_dict(self, d: dict[str, Any] | None) -> None:
        if d:
            self.keys.extend(d.keys())
            self.values.extend(d.values())
        self.offsets.append(len(self.keys))

    def build(self) -> pa.Array:
        return pa.MapArray.from_arrays(
            pa.array(self.offsets, pa.int32()), pa.array(self.keys, pa.string()), pa.array(self.values, self.vtype)
        )


def _list(rows: list[list[Any] | None], vtype: pa.DataType) -> pa.Array:
    return pa.array([r or [] for r in rows], pa.list_(vtype))


def predictions(events: Sequence[PredictionV1], kafka: Kafka) -> pa.Table:
    """Rows of ``predictions``: inputs split into numeric / categorical / missing."""
    num, cat, probs, seg, tags = (_MapBuilder(pa.float64()), _MapBuilder(pa.string()), _MapBuilder(pa.float64()),
                                  _MapBuilder(pa.string()), _MapBuilder(pa.string()))
    nulls: list[list[str]] = []
    out_label: list[str | None] = []
    out_score: list[float | None] = []
    out_value: list[float | None] = []
    emb: list[list[float] | None] = []
    llm: dict[str, list[Any]] = {k: [] for k in (
        "prompt", "completion", "prompt_hash", "completion_hash", "completion_chars", "refusal",
        "input_tokens", "output_tokens", "finish_reason", "logprob_mean", "logprob_min", "token_logprobs")}
    lin: dict[str, list[list[Any]]] = {"kind": [], "model": [], "model_version": [], "share": []}
    nk, nv, ck, cv = num.keys, num.values, cat.keys, cat.values
    for e in events:
        missing: list[str] = []
        for k, v in e.inputs.items():
            # bool before int: bool is an int subclass, and counts as 0/1 by the contract.
            t = type(v)
            if t is float or t is int or t is bool:
                nk.append(k)
                nv.append(float(v))  # type: ignore[arg-type]
            elif v is None:
                missing.append(k)
            else:
                ck.append(k)
                cv.append(v)
        num.close_row()
        cat.close_row()
        nulls.append(missing)
        o = e.outputs
        if o is None:
            out_label.append(None)
            out_score.append(None)
            out_value.append(None)
            probs.close_row()
        else:
            out_label.append(o.label)
            out_score.append(o.score)
            out_value.append(o.value)
            probs.add_dict(o.probabilities)
        seg.add_dict(e.segment)
        tags.add_dict(e.tags)
        emb.append(e.embedding)
        b = e.llm
        if b is None:
            for col in llm.values():
                col.append(None)
        else:
            lp = b.token_logprobs
            llm["prompt"].append(b.prompt)
            llm["completion"].append(b.completion)
            llm["prompt_hash"].append(b.prompt_hash)
            llm["completion_hash"].append(b.completion_hash)
            chars = b.completion_chars
            llm["completion_chars"].append(chars if chars is not None or b.completion is None else len(b.completion))
            llm["refusal"].append(b.refusal)
            llm["input_tokens"].append(b.input_tokens)
            llm["output_tokens"].append(b.output_tokens)
            llm["finish_reason"].append(b.finish_reason)
            llm["logprob_mean"].append(sum(lp) / len(lp) if lp else None)
            llm["logprob_min"].append(min(lp) if lp else None)
            llm["token_logprobs"].append(lp)
        refs = e.lineage or []
        lin["kind"].append([r.kind for r in refs])
        lin["model"].append([r.model for r in refs])
        lin["model_version"].append([r.model_version for r in refs])
        lin["share"].append([r.share for r in refs])
    cols: dict[str, pa.Array] = {
        "event_id": pa.array([e.event_id for e in events], pa.string()),
        "prediction_id": pa.array([e.prediction_id for e in events], pa.string()),
        "ts": pa.array([e.ts for e in events], pa.int64()).cast(TS),
        "model": pa.array([e.model for e in events], pa.string()),
        "model_version": pa.array([e.model_version for e in events], pa.string()),
        "latency_ms": pa.array([e.latency_ms for e in events], pa.float64()),
        "error": pa.array([e.error for e in events], pa.string()),
        "inputs_num": num.build(),
        "inputs_cat": cat.build(),
        "inputs_null": _list(nulls, pa.string()),  # type: ignore[arg-type]
        "output_label": pa.array(out_label, pa.string()),
        "output_score": pa.array(out_score, pa.float64()),
        "output_value": pa.array(out_value, pa.float64()),
        "output_probabilities": probs.build(),
        "segment": seg.build(),
        "embedding": _list(emb, pa.float32()),
        "llm_prompt": pa.array(llm["prompt"], pa.string()),
        "llm_completion": pa.array(llm["completion"], pa.string()),
        "llm_prompt_hash": pa.array(llm["prompt_hash"], pa.string()),
        "llm_completion_hash": pa.array(llm["completion_hash"], pa.string()),
        "llm_completion_chars": pa.array(llm["completion_chars"], pa.uint32()),
        "llm_refusal": pa.array(llm["refusal"], pa.bool_()),
        "llm_input_tokens": pa.array(llm["input_tokens"], pa.uint32()),
        "llm_output_tokens": pa.array(llm["output_tokens"], pa.uint32()),
        "llm_finish_reason": pa.array(llm["finish_reason"], pa.string()),
        "llm_logprob_mean": pa.array(llm["logprob_mean"], pa.float64()),
        "llm_logprob_min": pa.array(llm["logprob_min"], pa.float64()),
        "llm_token_logprobs": _list(llm["token_logprobs"], pa.float32()),
        "lineage_kind": _list(lin["kind"], pa.string()),
        "lineage_model": _list(lin["model"], pa.string()),
        "lineage_model_version": _list(lin["model_version"], pa.string()),
        "lineage_share": _list(lin["share"], pa.float64()),
        "tags": tags.build(),
    }
    cols.update(kafka.columns())
    return pa.table(cols)


def feedback(events: Sequence[FeedbackV1], kafka: Kafka) -> pa.Table:
    """Rows of ``feedback``."""
    tags = _MapBuilder(pa.string())
    for e in events:
        tags.add_dict(e.tags)
    cols: dict[str, pa.Array] = {
        "event_id": pa.array([e.event_id for e in events], pa.string()),
        "prediction_id": pa.array([e.prediction_id for e in events], pa.string()),
        "ts": pa.array([e.ts for e in events], pa.int64()).cast(TS),
        "model": pa.array([e.model for e in events], pa.string()),
        "model_version": pa.array([e.model_version for e in events], pa.string()),
        "label": pa.array([e.label for e in events], pa.string()),
        "value": pa.array([e.value for e in events], pa.float64()),
        "tags": tags.build(),
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


BUILDERS: dict[str, tuple[str, Callable[[Any, Kafka], pa.Table]]] = {
    "prediction.v1": ("predictions", predictions),
    "feedback.v1": ("feedback", feedback),
    "metric_snapshot.v1": ("metrics", metrics),
    "alert.v1": ("alerts", alerts),
    "deadletter.v1": ("deadletter", deadletter),
}
"""Event schema -> (ClickHouse table, column builder)."""


def build(schema: str, events: Sequence[_Event], kafka: Kafka) -> tuple[str, pa.Table]:
    """The table name and the Arrow rows of ``events`` of ``schema``."""
    table, fn = BUILDERS[schema]
    return table, fn(events, kafka)
