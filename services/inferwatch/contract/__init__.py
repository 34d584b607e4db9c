"""The event contract between hops: pydantic models, validation, and the topic registry."""

from inferwatch.contract.errors import ContractError, UnknownSchemaError
from inferwatch.contract.events import (
    EVENT_MODELS,
    AlertInstance,
    AlertV1,
    DeadletterV1,
    Delivery,
    DetectionV1,
    Evidence,
    FeedbackV1,
    Finding,
    LineageRef,
    LLMBlock,
    MetricSnapshotV1,
    Outputs,
    PredictionV1,
    SegmentContribution,
)
from inferwatch.contract.validate import validate, validate_any

__all__ = [
    "EVENT_MODELS",
    "AlertInstance",
    "AlertV1",
    "ContractError",
    "DeadletterV1",
    "Delivery",
    "DetectionV1",
    "Evidence",
    "FeedbackV1",
    "Finding",
    "LLMBlock",
    "LineageRef",
    "MetricSnapshotV1",
    "Outputs",
    "PredictionV1",
    "SegmentContribution",
    "UnknownSchemaError",
    "validate",
    "validate_any",
]
