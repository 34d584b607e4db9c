"""The event contract: pydantic models of every event on Inferwatch's topics.

These models are the single source of truth. The JSON Schemas in ``schemas/events/`` are
generated from them (``python -m inferwatch.contract.generate``) and a contract test fails
when the two drift apart.

Wire format: one UTF-8 JSON object per Kafka message. Timestamps are integers, milliseconds
since the Unix epoch, UTC. Every event names its type and version in ``schema_version``.

Compatibility rule (see ``schemas/README.md``): a v1 consumer ignores fields it does not know
(``extra="ignore"``); a producer may add optional fields to v1; removing a field, renaming
it, changing its type or making an optional field required needs a v2 event and a new schema.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from inferwatch.contract import limits as L

# Every number below comes from inferwatch.contract.limits (the one place a limit is written).
# Names (models, features, segment keys) are identifiers that end up as ClickHouse map keys and
# metric-name parts, so they are kept to a printable, bounded alphabet.
Name = Annotated[str, Field(min_length=1, max_length=L.NAME_MAX, pattern=L.NAME_PATTERN)]
Version = Annotated[str, Field(min_length=1, max_length=L.VERSION_MAX, pattern=L.NAME_PATTERN)]
EventId = Annotated[str, Field(min_length=1, max_length=L.EVENT_ID_MAX)]
PredictionId = Annotated[str, Field(min_length=1, max_length=L.PREDICTION_ID_MAX)]
TimestampMs = Annotated[int, Field(ge=L.TS_MIN_MS, le=L.TS_MAX_MS, description="ms since epoch, UTC")]
ShortText = Annotated[str, Field(max_length=L.SHORT_TEXT_MAX)]
Hash = Annotated[str, Field(min_length=1, max_length=L.HASH_MAX)]
# The bounds say "finite" in the JSON Schema too (a JSON number like 1e400 is beyond them).
FiniteFloat = Annotated[float, Field(allow_inf_nan=False, ge=-L.FLOAT_MAX, le=L.FLOAT_MAX)]
NonNegInt = Annotated[int, Field(ge=0, le=L.INT_MAX)]
Count = Annotated[int, Field(ge=0, le=L.LLM_COUNT_MAX)]
Unit = Annotated[float, Field(ge=0.0, le=1.0)]
LogProb = Annotated[float, Field(ge=-L.FLOAT_MAX, le=0.0, allow_inf_nan=False)]

FeatureValue = FiniteFloat | bool | ShortText | None
"""A feature is numeric (any JSON number, read as a double; bool counts as 0/1), categorical (string)
or missing (null). There is no separate integer branch: ``1`` and ``1.0`` are the same feature value on
every hop, and an integer beyond 64 bits is a (finite) double, not a refusal."""


def _one_of_set(*fields: str) -> dict[str, Any]:
    """The JSON Schema of a model validator "at least one of ``fields`` is set (not null)"."""
    return {"anyOf": [{"required": [f], "properties": {f: {"not": {"type": "null"}}}} for f in fields]}


class _Event(BaseModel):
    """Base of every event: consumers ignore unknown fields (the v1 compatibility rule)."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=False)


class Outputs(_Event):
    """What the model answered: a label, a score, class probabilities, or a regression value."""

    model_config = ConfigDict(json_schema_extra=_one_of_set("label", "score", "probabilities", "value"))

    label: ShortText | None = Field(None, description="Predicted class label (classifiers).")
    score: FiniteFloat | None = Field(None, description="Score or confidence of the predicted label.")
    probabilities: dict[ShortText, Unit] | None = Field(
        None, description="Class probabilities by label.", max_length=L.MAX_PROBABILITIES
    )
    value: FiniteFloat | None = Field(None, description="Predicted value (regression).")

    @model_validator(mode="after")
    def _not_empty(self) -> Outputs:
        if self.label is None and self.score is None and self.probabilities is None and self.value is None:
            raise ValueError("outputs needs at least one of label, score, probabilities, value")
        return self


class LLMBlock(_Event):
    """Signals of one LLM response. Prompt and completion may be replaced by their hashes."""

    prompt: str | None = Field(None, max_length=L.LLM_TEXT_MAX)
    completion: str | None = Field(None, max_length=L.LLM_TEXT_MAX)
    prompt_hash: Hash | None = Field(None, description="Hash of the prompt; equal prompts, equal hashes.")
    completion_hash: Hash | None = None
    completion_chars: Count | None = Field(
        None, description="Length of the completion in characters (kept when the text is hashed)."
    )
    refusal: bool | None = Field(None, description="Set by the caller when it knows the answer is a refusal.")
    token_logprobs: list[LogProb] | None = Field(
        None, max_length=L.MAX_LOGPROBS, description="Log-probability of each generated token."
    )
    top_logprobs: list[Annotated[list[LogProb], Field(max_length=L.MAX_TOP_LOGPROBS_PER_TOKEN)]] | None = Field(
        None, max_length=L.MAX_LOGPROBS, description="Per generated token, the top-k alternatives' logprobs."
    )
    input_tokens: Count | None = None
    output_tokens: Count | None = None
    finish_reason: ShortText | None = Field(None, description="stop, length, content_filter, ...")


class LineageRef(_Event):
    """Which model (and version) produced something this prediction used."""

    kind: Literal["items", "embedding", "features", "other"] = "items"
    model: Name
    model_version: Version
    share: Unit = Field(
        1.0, description="Share of the used items/embeddings that came from this producer."
    )


class PredictionV1(_Event):
    """One prediction made by a model in production (topic ``inferwatch.predictions``)."""

    model_config = ConfigDict(json_schema_extra=_one_of_set("outputs", "error"))

    schema_version: Literal["prediction.v1"] = "prediction.v1"
    event_id: EventId
    prediction_id: PredictionId
    ts: TimestampMs
    model: Name
    model_version: Version
    latency_ms: Annotated[float, Field(ge=0.0, le=L.FLOAT_MAX, allow_inf_nan=False)] | None = None
    error: Annotated[str, Field(max_length=L.ERROR_MAX)] | None = Field(None, description="Error text; null when the prediction succeeded.")
    inputs: dict[Name, FeatureValue] = Field(default_factory=dict, max_length=L.MAX_INPUTS)
    outputs: Outputs | None = Field(None, description="Null only when the prediction failed (error set).")
    segment: dict[Name, ShortText] = Field(default_factory=dict, max_length=L.MAX_SEGMENT)
    embedding: list[FiniteFloat] | None = Field(None, min_length=1, max_length=L.MAX_EMBEDDING)
    llm: LLMBlock | None = None
    lineage: list[LineageRef] | None = Field(None, max_length=L.MAX_LINEAGE)
    tags: dict[Name, ShortText] = Field(default_factory=dict, max_length=L.MAX_TAGS)

    @model_validator(mode="after")
    def _outputs_or_error(self) -> PredictionV1:
        if self.outputs is None and self.error is None:
            raise ValueError("a prediction needs outputs, or an error when it failed")
        return self


class FeedbackV1(_Event):
    """Ground truth for an earlier prediction (topic ``inferwatch.feedback``), possibly days later."""

    model_config = ConfigDict(json_schema_extra=_one_of_set("label", "value"))

    schema_version: Literal["feedback.v1"] = "feedback.v1"
    event_id: EventId
    prediction_id: PredictionId
    ts: TimestampMs
    model: Name
    model_version: Version | None = Field(None, description="Optional: the prediction carries it.")
    label: ShortText | None = Field(None, description="True class label (classifiers).")
    value: FiniteFloat | None = Field(None, description="True value (regression).")
    tags: dict[Name, ShortText] = Field(default_factory=dict, max_length=L.MAX_TAGS)

    @model_validator(mode="after")
    def _label_or_value(self) -> FeedbackV1:
        if self.label is None and self.value is None:
            raise ValueError("feedback needs a label or a value")
        return self


class SegmentContribution(_Event):
    """How much one segment value explains a drifted or degraded whole-version metric."""

    key: Name
    value: ShortText
    contribution: FiniteFloat = Field(description="Share of the change explained; ranked descending.")
    metric_value: FiniteFloat | None = Field(None, description="The metric inside this segment.")
    count: Annotated[int, Field(ge=0)] = 0


class Finding(_Event):
    """A metric that drifted or degraded in this window, with the segments that explain it."""

    metric: Annotated[str, Field(min_length=1, max_length=L.METRIC_NAME_MAX)]
    kind: Literal["drift", "degradation", "anomaly"]
    value: FiniteFloat
    reference: FiniteFloat | None = None
    threshold: FiniteFloat | None = None
    top_segments: list[SegmentContribution] = Field(default_factory=list, max_length=L.MAX_TOP_SEGMENTS)


class MetricSnapshotV1(_Event):
    """Metrics of one model version, whole or one segment value, over one window (``inferwatch.metrics``).

    ``segment_key``/``segment_value`` are both null for the whole version. Metric names are
    listed in ``schemas/METRICS.md``. (``window_end > window_start`` is beyond JSON Schema: only the
    model checks it.)
    """

    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"required": ["segment_key", "segment_value"],
         "properties": {"segment_key": {"not": {"type": "null"}}, "segment_value": {"not": {"type": "null"}}}},
        {"properties": {"segment_key": {"type": "null"}, "segment_value": {"type": "null"}}},
    ]})

    schema_version: Literal["metric_snapshot.v1"] = "metric_snapshot.v1"
    event_id: EventId
    ts: TimestampMs = Field(description="When the snapshot was emitted.")
    model: Name
    model_version: Version
    segment_key: Name | None = None
    segment_value: ShortText | None = None
    window_start: TimestampMs
    window_end: TimestampMs
    window_s: Annotated[int, Field(ge=1, le=L.WINDOW_S_MAX)]
    count: Annotated[int, Field(ge=0)]
    late_events: Annotated[int, Field(ge=0)] = 0
    metrics: dict[Annotated[str, Field(max_length=L.METRIC_NAME_MAX)], FiniteFloat | None] = Field(default_factory=dict)
    reference: dict[Annotated[str, Field(max_length=L.METRIC_NAME_MAX)], FiniteFloat | None] = Field(
        default_factory=dict, description="The same metrics over the reference period."
    )
    findings: list[Finding] = Field(default_factory=list)

    @model_validator(mode="after")
    def _segment_pair(self) -> MetricSnapshotV1:
        if (self.segment_key is None) != (self.segment_value is None):
            raise ValueError("segment_key and segment_value are both set or both null")
        if self.window_end <= self.window_start:
            raise ValueError("window_end must be after window_start")
        return self


class AlertInstance(_Event):
    """One alert inside a notification, identified by the fingerprint of its labels."""

    fingerprint: Annotated[str, Field(min_length=1, max_length=L.FINGERPRINT_MAX)]
    rule: Annotated[str, Field(min_length=1, max_length=L.RULE_NAME_MAX)]
    status: Literal["firing", "resolved"]
    severity: Literal["info", "warning", "critical"] = "warning"
    labels: dict[Annotated[str, Field(max_length=L.LABEL_KEY_MAX)], ShortText]
    annotations: dict[Annotated[str, Field(max_length=L.LABEL_KEY_MAX)], Annotated[str, Field(max_length=L.ERROR_MAX)]] = Field(
        default_factory=dict
    )
    starts_at: TimestampMs
    ends_at: TimestampMs | None = None
    value: FiniteFloat | None = None
    model: Name | None = None
    model_version: Version | None = None
    segment: Annotated[str, Field(max_length=L.ALERT_SEGMENT_MAX)] | None = Field(None, description="'key=value', or null for the whole version.")


class Delivery(_Event):
    """One attempt to deliver a notification to a receiver, and how it ended."""

    attempt: Annotated[int, Field(ge=1)]
    outcome: Literal["delivered", "retrying", "failed", "suppressed"]
    http_status: int | None = None
    error: Annotated[str, Field(max_length=L.ERROR_MAX)] | None = None
    duration_ms: Annotated[float, Field(ge=0.0)] | None = None


class AlertV1(_Event):
    """A notification about alert state changes, for one receiver and one group (``inferwatch.alerts``).

    This is also the body of the generic webhook (without ``delivery``). On the topic, every
    delivery attempt is one record with ``delivery`` set.
    """

    schema_version: Literal["alert.v1"] = "alert.v1"
    event_id: EventId
    ts: TimestampMs
    idempotency_key: Annotated[str, Field(min_length=1, max_length=L.IDEMPOTENCY_KEY_MAX)]
    receiver: Annotated[str, Field(min_length=1, max_length=L.RECEIVER_MAX)]
    status: Literal["firing", "resolved"]
    group_key: Annotated[str, Field(max_length=L.GROUP_KEY_MAX)]
    group_labels: dict[Annotated[str, Field(max_length=L.LABEL_KEY_MAX)], ShortText] = Field(default_factory=dict)
    alerts: list[AlertInstance] = Field(min_length=1, max_length=L.MAX_ALERTS)
    delivery: Delivery | None = None


class DeadletterV1(_Event):
    """A message that could not be processed, with the reason and its original bytes (``inferwatch.deadletter``)."""

    schema_version: Literal["deadletter.v1"] = "deadletter.v1"
    event_id: EventId
    ts: TimestampMs
    stage: Literal["sdk", "processor", "sink", "alerter", "otlp"]  # = limits.STAGES
    reason: Annotated[str, Field(min_length=1, max_length=L.REASON_MAX)]
    error_path: Annotated[str, Field(max_length=L.ERROR_PATH_MAX)] | None = Field(None, description="Path of the offending field, e.g. outputs.score.")
    source_topic: Annotated[str, Field(max_length=L.TOPIC_NAME_MAX)] | None = None
    source_partition: Annotated[int, Field(ge=0)] | None = None
    source_offset: Annotated[int, Field(ge=0)] | None = None
    expected_schema: Annotated[str, Field(max_length=L.SCHEMA_NAME_MAX)] | None = None
    key_b64: str | None = None
    payload_b64: str = Field(description="The original message bytes, base64.")


class Evidence(_Event):
    """One item of a detection's evidence: what moved (a feature, a metric) and how strongly."""

    name: Annotated[str, Field(min_length=1, max_length=L.METRIC_NAME_MAX)]
    score: FiniteFloat = Field(description="How strongly it moved (the detector's own scale); ranked descending.")


_DETECTION_NS = uuid.UUID("7fa16d5f-1e78-4f83-94f9-bd4d35ffe314")


def detection_id(model: str, model_version: str, segment_key: str | None, segment_value: str | None, signal: str,
                 metric: str, detector: str, status: str, ts: int) -> str:
    """The deterministic ``event_id`` of a detection: a detector that trips again on the same event after a
    replay (a crashed worker, a rebuilt state) writes the same id, so the store and the alerter see a repeat.

    The parts are JSON-encoded before hashing: a segment value or a metric name may contain any
    separator, and ``("a|b", "c")`` must not hash like ``("a", "b|c")``.
    """
    parts = [model, model_version, segment_key, segment_value, signal, metric, detector, status, ts]
    return uuid.uuid5(_DETECTION_NS, json.dumps(parts, ensure_ascii=False, separators=(",", ":"))).hex


class DetectionV1(_Event):
    """A sequential detector tripped (``detected``) or came back within the reference (``cleared``) for one
    model version, whole or one segment value (topic ``inferwatch.detections``).

    Emitted by the processor per event, not per window: ``ts`` is the event time of the event that
    tripped the detector, ``change_ts`` the detector's estimate of when the change began, ``events``
    (and ``labels`` for label-based signals) how many of the segment's events it took since then.
    ``false_alarm_rate`` is the rate per event the threshold was calibrated for. ``segment_key`` and
    ``segment_value`` are both null for the whole version; ``new_segment`` marks a segment value the
    reference did not have (it is compared with the whole version's reference).
    """

    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"required": ["segment_key", "segment_value"],
         "properties": {"segment_key": {"not": {"type": "null"}}, "segment_value": {"not": {"type": "null"}}}},
        {"properties": {"segment_key": {"type": "null"}, "segment_value": {"type": "null"}}},
    ]})

    schema_version: Literal["detection.v1"] = "detection.v1"
    event_id: EventId
    ts: TimestampMs = Field(description="Event time of the event that tripped (or cleared) the detector.")
    model: Name
    model_version: Version
    segment_key: Name | None = None
    segment_value: ShortText | None = None
    new_segment: bool = Field(False, description="A segment value the reference did not have.")
    signal: Literal["input", "output", "performance", "estimated_performance", "embedding", "llm", "errors",
                    "latency"]  # = limits.DETECTION_SIGNALS
    metric: Annotated[str, Field(min_length=1, max_length=L.METRIC_NAME_MAX)] = Field(
        description="What was tested, e.g. input.image_width, performance.accuracy, llm.mean_logprob.")
    detector: Literal["cusum", "sprt", "window"]  # = limits.DETECTORS
    status: Literal["detected", "cleared"] = "detected"  # = limits.DETECTION_STATUSES
    statistic: FiniteFloat = Field(description="The detector's statistic when it decided.")
    threshold: FiniteFloat = Field(description="The threshold the statistic crossed (or fell back under).")
    false_alarm_rate: Unit | None = Field(None, description="False alarms per event the threshold was calibrated for.")
    events: NonNegInt = Field(description="Events of the segment since the estimated change.")
    labels: NonNegInt | None = Field(None, description="Labelled events since the change (label-based signals).")
    change_ts: TimestampMs | None = Field(None, description="Estimated start of the change (event time).")
    value: FiniteFloat | None = Field(None, description="The metric since the change.")
    reference: FiniteFloat | None = Field(None, description="The metric in the reference.")
    evidence: list[Evidence] = Field(default_factory=list, max_length=L.MAX_EVIDENCE,
                                     description="What moved most (features, metrics), ranked.")

    @model_validator(mode="after")
    def _segment_pair(self) -> DetectionV1:
        if (self.segment_key is None) != (self.segment_value is None):
            raise ValueError("segment_key and segment_value are both set or both null")
        return self


EVENT_MODELS: dict[str, type[_Event]] = {
    "prediction.v1": PredictionV1,
    "feedback.v1": FeedbackV1,
    "metric_snapshot.v1": MetricSnapshotV1,
    "alert.v1": AlertV1,
    "deadletter.v1": DeadletterV1,
    "detection.v1": DetectionV1,
}
"""Every event type and version, by its ``schema_version`` name."""
