"""Processor settings: windows, lateness, references, thresholds. Env prefix ``INFERWATCH_PROCESSOR_``."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ProcessorSettings(BaseSettings):
    """Everything the processor's pure core needs to know; each field is ``INFERWATCH_PROCESSOR_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="INFERWATCH_PROCESSOR_", frozen=True, extra="ignore")

    window_s: int = Field(60, ge=5, le=86400, description="Tumbling event-time window length.")
    lateness_s: int = Field(10, ge=0, description="Allowed lateness: a window closes when max event ts passes end + lateness.")
    label_wait_s: int = Field(0, ge=0, description="Extra wait before closing a window so delayed labels can join it.")
    label_stall_s: int = Field(600, ge=0, description=(
        "For a model that has received labels, a window also waits for the label watermark (max label ts) to pass "
        "end + lateness + label_wait; it closes anyway when the prediction watermark passes that point plus "
        "label_stall_s (labels stopped coming)."))
    idle_flush_s: float = Field(30.0, gt=0, description="Wall seconds without events after which a model's open windows close.")
    baseline_s: int = Field(300, ge=0, description="Pinned baseline: the first baseline_s of a version's traffic is its reference.")
    join_retention_s: int = Field(7 * 86400, ge=60, description="How long a prediction waits for its label (and vice versa).")
    fetch_max_wait_ms: int = Field(100, ge=1, le=30000, description=(
        "faust worker: longest time the broker holds a fetch that finds no data. A busy partition is "
        "fetched again only after the pending fetch of the idle ones returns, so a long wait idles the "
        "worker under load (faust's default is 1500)."))
    batch_max_records: int = Field(20000, ge=1, le=200_000, description=(
        "faust worker: most records of one predictions/feedback partition per batch event (aiokafka's "
        "max_poll_records). The core writes each window's state once per batch, so bigger batches of a "
        "backlog cost less per event; a worker keeping up still gets small batches at once."))
    failure_attempts: int = Field(3, ge=1, le=100, description=(
        "faust worker: tries of a batch whose processing raises before it is narrowed down to the failing "
        "records (halves, then single records), which go to the dead-letter topic with the exception. "
        "Until then the batch and everything after it stay uncommitted."))
    failure_backoff_s: float = Field(0.5, ge=0, le=300, description=(
        "faust worker: sleep before the second try of a failing batch; doubles per try (at most 30 s)."))
    failure_bisect_budget: int = Field(64, ge=0, le=100_000, description=(
        "faust worker: tries spent on halves of a batch that failed failure_attempts times, to find the "
        "records that fail; when spent, the rest of the failing range is dead-lettered whole."))
    health_port: int = Field(8789, ge=0, le=65535, description=(
        "faust worker: port of GET /healthz and GET /metrics on INFERWATCH_API_HOST (0: not served)."))
    top_k: int = Field(10, ge=1, le=100, description="Segment values per key emitted per window (by volume); the rest is 'other'.")
    max_tracked_values: int = Field(50, ge=1, le=1000, description="Hard cap on distinct segment values per key per window.")
    max_categories: int = Field(64, ge=2, le=1000, description="Distinct values kept per categorical feature; the rest is '__other__'.")
    max_features: int = Field(256, ge=1, description="Features tracked per model version; more are ignored (counted).")
    min_count: int = Field(100, ge=1, description="Fewest events (or labels) in a window/segment for a finding.")
    min_reference_count: int = Field(100, ge=1, description="Fewest reference events for a segment to have its own reference.")
    embedding_sample: int = Field(256, ge=16, le=4096, description="Reservoir size for embedding drift (per window and reference).")
    embedding_permutations: int = Field(100, ge=10, le=1000)
    refusal_patterns: tuple[str, ...] = Field(
        (r"(?i)^\s*(i'?m sorry|i am sorry|i can(?:no|')t|i cannot|i'?m unable|as an ai)",),
        description="Regexes on the completion text that mark a refusal (also the caller's llm.refusal flag).",
    )
    # Default thresholds (documented in docs/processor.md).
    psi_threshold: float = Field(0.2, description="PSI at or above this is drift.")
    accuracy_drop: float = Field(0.05, description="Absolute drop of accuracy/precision/recall/F1/ROC-AUC that is degradation.")
    error_rate_rise: float = Field(0.05, description="Absolute rise of error_rate that is degradation.")
    regression_rise: float = Field(0.2, description="Relative rise of MAE/RMSE that is degradation.")
    latency_rise: float = Field(0.5, description="Relative rise of latency p95 that is degradation.")
    refusal_rise: float = Field(0.05, description="Absolute rise of refusal/empty rate that is degradation.")
    logprob_drop_nats: float = Field(0.5, description="Drop of mean token logprob that is degradation.")
    self_share_threshold: float = Field(0.5, description="lineage.self_share at or above this is an anomaly (feedback loop).")
    top_segments: int = Field(10, ge=1, le=100, description="Segments listed per finding.")
    detect_enabled: bool = Field(False, description=(
        "Run the sequential detectors (detection.v1 events: drift found within tens of events). Off by default: "
        "on the benchmark's wide stream they cost ~20 us per event and the core would fall below its 100k "
        "events/s target (bench processor: processor.core_detect); make demo turns them on."))
    detect_false_alarm_rate: float = Field(1e-6, gt=0, lt=1, description=(
        "Sequential detectors: false alarms per event of a model version the thresholds are calibrated for, "
        "split equally over the tests an event meets (see docs/alerting.md)."))
    detect_clear_events: int = Field(500, ge=1, description=(
        "Sequential detectors: events of the segment without a new crossing after which a detection is cleared."))
