"""Decode and validate one Kafka message value against the contract's pydantic models.

Wire format: one UTF-8 JSON object per message (see ``inferwatch.contract.events``). The pydantic
models are the truth: pydantic-core parses and validates the bytes in one pass (no dict in between).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from inferwatch.contract.events import EVENT_MODELS, _Event
from inferwatch.contract.validate import _path


@dataclass(frozen=True)
class Rejected:
    """Why a message could not be decoded: a reason, and the offending field's path when known."""

    reason: str
    error_path: str | None = None


def decode(schema: str, raw: bytes | None) -> _Event | Rejected:
    """The validated event of ``schema`` in ``raw``, or why it is not one."""
    if raw is None:
        return Rejected("empty message (null value)")
    model = EVENT_MODELS[schema]
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        path = _path(tuple(err["loc"]))
        if err["type"] == "json_invalid":
            return Rejected(f"not valid JSON: {err['msg']}")
        if err["type"] == "model_type":
            return Rejected("an event must be a JSON object")
        return Rejected(f"{schema}: {path or '<event>'}: {err['msg']} ({err['type']})", path or None)
