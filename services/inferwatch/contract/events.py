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

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Names (models, features, segment keys) are identifiers that end up as ClickHouse map keys and
# metric-name parts, so they are kept to a printable, bounded alphabet.
Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:/@+-]+$")]
Version = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:/@+-]+$")]
EventId = Annotated[str, Field(min_length=1, max_length=64)]
PredictionId = Annotated[str, Field(min_length=1, max_length=128)]
TimestampMs = Annotated[int, Field(ge=0, le=32503680000000, description="ms since epoch, UTC")]
ShortText = Annotated[str, Field(max_length=256)]
Hash = Annotated[str, Field(min_length=1, max_length=128)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]

FeatureValue = FiniteFloat | int | bool | ShortText | None
"""A feature is numeric (int/float; bool counts as 0/1), categorical (string) or missing (null)."""


class _Event(BaseModel):
    """Base of every event: consumers ignore unknown fields (the v1 compatibility rule)."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=False)


class Outputs(_Event):
    """What the model answered: a label, a score, class probabilities, or a regression value."""

    label: ShortText | None = Field(None, description="Predicted class label (classifiers).")
    score: FiniteFloat | None = Field(None, description="Score or confidence of the predicted label.")
    probabilities: dict[ShortText, Annotated[float, Field(ge=0.0, le=1.0)]] | None = Field(
        None, description="Class probabilities by label.", max_length=1000
    )
    value: FiniteFloat | None = Field(None, description="Predicted value (regression).")

    @model_validator(mode="after")
    def _not_empty(self) -> Outputs:
        if self.label is None and self.score is None and self.probabilities is None and self.value is None:
            raise ValueError("outputs needs at least one of label, score, probabilities, value")
        return self


class LLMBlock(_Event):
    """Signals of one LLM response. Prompt and completion may be replaced by their hashes."""

    prompt: str | None = Field(None, max_length=1_000_000)
    completion: str | None = Field(None, max_length=1_000_000)
    prompt_hash: Hash | None = Field(None, description="Hash of the prompt; equal prompts, equal hashes.")
    completion_hash: Hash | None = None
    completion_chars: Annotated[int, Field(ge=0)] | None = Field(
        None, description="Length of the completion in characters (kept when the text is hashed)."
    )
    refusal: bool | None = Field(None, description="Set by the caller when it knows the answer is a refusal.")
    token_logprobs: list[Annotated[float, Field(le=0.0, allow_inf_nan=False)]] | None = Field(
        None, max_length=100_000, description="Log-probability of each generated token."
    )
    top_logprobs: list[list[Annotated[float, Field(le=0.0, allow_inf_nan=False)]]] | None = Field(
        None, max_length=100_000, description="Per generated token, the top-k alternatives' logprobs."
    )
    input_tokens: Annotated[int, Field(ge=0)] | None = None
    output_tokens: Annotated[int, Field(ge=0)] | None = None
    finish_reason: ShortText | None = Field(None, description="stop, length, content_filter, ...")


class LineageRef(_Event):
    """Which model (and version) produced something this prediction used."""

    kind: Literal["items", "embedding", "features", "other"] = "items"
    model: Name
    model_version: Version
    share: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        1.0, description="Share of the used items/embeddings that came from this producer."
    )


class PredictionV1(_Event):
    """One prediction made by a model in production (topic ``inferwatch.predictions``)."""

    schema_version: Literal["prediction.v1"] = "prediction.v1"
    event_id: EventId
    prediction_id: PredictionId
    ts: TimestampMs
    model: Name
    model_version: Version
    latency_ms: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] | None = None
    error: Annotated[str, Field(max_length=4096)] | None = Field(None, description="Error text; null when the prediction succeeded.")
    inputs: dict[Name, FeatureValue] = Field(default_factory=dict, max_length=2000)
    outputs: Outputs | None = Field(None, description="Null only when the prediction failed (error set).")
    segment: dict[Name, ShortText] = Field(default_factory=dict, max_length=32)
    embedding: list[FiniteFloat] | None = Field(None, min_length=1, max_length=65536)
    llm: LLMBlock | None = None
    lineage: list[LineageRef] | None = Field(None, max_length=64)
    tags: dict[Name, ShortText] = Field(default_factory=dict, max_length=64)

    @model_validator(mode="after")
    def _outputs_or_error(self) -> PredictionV1:
        if self.outputs is None and self.error is None:
            raise ValueError("a prediction needs outputs, or an error when it failed")
        return self


class FeedbackV1(_Event):
    """Ground truth for an earlier prediction (topic ``inferwatch.feedback``), possibly days later."""

    schema_version: Literal["feedback.v1"] = "feedback.v1"
    event_id: EventId
    prediction_id: PredictionId
    ts: TimestampMs
    model: Name
    model_version: Version | None = Field(None, description="Optional: the prediction carries it.")
    label: ShortText | None = Field(None, description="True class label (classifiers).")
    value: FiniteFloat | None = Field(None, description="True value (regression).")
    tags: dict[Name, ShortText] = Field(default_factory=dict, max_length=64)

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

    metric: Annotated[str, Field(min_length=1, max_length=256)]
    kind: Literal["drift", "degradation", "anomaly"]
    value: FiniteFloat
    reference: FiniteFloat | None = None
    threshold: FiniteFloat | None = None
    top_segments: list[SegmentContribution] = Field(default_factory=list, max_length=100)


class MetricSnapshotV1(_Event):
    """Metrics of one model version, whole or one segment value, over one window (``inferwatch.metrics``).

    ``segment_key``/``segment_value`` are both null for the whole version. Metric names are
    listed in ``schemas/METRICS.md``.
    """

    schema_version: Literal["metric_snapshot.v1"] = "metric_snapshot.v1"
    event_id: EventId
    ts: TimestampMs = Field(description="When the snapshot was emitted.")
    model: Name
    model_version: Version
    segment_key: Name | None = None
    segment_value: ShortText | None = None
    window_start: TimestampMs
    window_end: TimestampMs
    window_s: Annotated[int, Field(ge=1, le=86400)]
    count: Annotated[int, Field(ge=0)]
    late_events: Annotated[int, Field(ge=0)] = 0
    metrics: dict[Annotated[str, Field(max_length=256)], FiniteFloat | None] = Field(default_factory=dict)
    reference: dict[Annotated[str, Field(max_length=256)], FiniteFloat | None] = Field(
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

    fingerprint: Annotated[str, Field(min_length=1, max_length=64)]
    rule: Annotated[str, Field(min_length=1, max_length=256)]
    status: Literal["firing", "resolved"]
    severity: Literal["info", "warning", "critical"] = "warning"
    labels: dict[Annotated[str, Field(max_length=128)], ShortText]
    annotations: dict[Annotated[str, Field(max_length=128)], Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=dict
    )
    starts_at: TimestampMs
    ends_at: TimestampMs | None = None
    value: FiniteFloat | None = None
    model: Name | None = None
    model_version: Version | None = None
    segment: Annotated[str, Field(max_length=300)] | None = Field(None, description="'key=value', or null for the whole version.")


class Delivery(_Event):
    """One attempt to deliver a notification to a receiver, and how it ended."""

    attempt: Annotated[int, Field(ge=1)]
    outcome: Literal["delivered", "retrying", "failed", "suppressed"]
    http_status: int | None = None
    error: Annotated[str, Field(max_length=4096)] | None = None
    duration_ms: Annotated[float, Field(ge=0.0)] | None = None


class AlertV1(_Event):
    """A notification about alert state changes, for one receiver and one group (``inferwatch.alerts``).

    This is also the body of the generic webhook (without ``delivery``). On the topic, every
    delivery attempt is one record with ``delivery`` set.
    """

    schema_version: Literal["alert.v1"] = "alert.v1"
    event_id: EventId
    ts: TimestampMs
    idempotency_key: Annotated[str, Field(min_length=1, max_length=128)]
    receiver: Annotated[str, Field(min_length=1, max_length=128)]
    status: Literal["firing", "resolved"]
    group_key: Annotated[str, Field(max_length=1024)]
    group_labels: dict[Annotated[str, Field(max_length=128)], ShortText] = Field(default_factory=dict)
    alerts: list[AlertInstance] = Field(min_length=1, max_length=10_000)
    delivery: Delivery | None = None


class DeadletterV1(_Event):
    """A message that could not be processed, with the reason and its original bytes (``inferwatch.deadletter``)."""

    schema_version: Literal["deadletter.v1"] = "deadletter.v1"
    event_id: EventId
    ts: TimestampMs
    stage: Literal["sdk", "processor", "sink", "alerter"]
    reason: Annotated[str, Field(min_length=1, max_length=4096)]
    error_path: Annotated[str, Field(max_length=512)] | None = Field(None, description="Path of the offending field, e.g. outputs.score.")
    source_topic: Annotated[str, Field(max_length=256)] | None = None
    source_partition: Annotated[int, Field(ge=0)] | None = None
    source_offset: Annotated[int, Field(ge=0)] | None = None
    expected_schema: Annotated[str, Field(max_length=64)] | None = None
    key_b64: str | None = None
    payload_b64: str = Field(description="The original message bytes, base64.")


EVENT_MODELS: dict[str, type[_Event]] = {
    "prediction.v1": PredictionV1,
    "feedback.v1": FeedbackV1,
    "metric_snapshot.v1": MetricSnapshotV1,
    "alert.v1": AlertV1,
    "deadletter.v1": DeadletterV1,
}
"""Every event type and version, by its ``schema_version`` name."""
