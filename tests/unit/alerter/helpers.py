"""Builders of snapshots for the alerter's unit tests."""

from __future__ import annotations

from typing import Any

from inferwatch.contract.events import MetricSnapshotV1

T0 = 1_764_140_000_000


def snap(i: int = 0, model: str = "photo-verifier", seg: tuple[str, str] | None = None, count: int = 1000,
         metrics: dict[str, float] | None = None, reference: dict[str, float] | None = None,
         findings: list[dict[str, Any]] | None = None, window_s: int = 60) -> MetricSnapshotV1:
    """The i-th 60 s window of a model (whole version, or one segment)."""
    return MetricSnapshotV1.model_validate({
        "event_id": f"e{i}-{model}-{seg}", "ts": T0 + (i + 1) * window_s * 1000, "model": model,
        "model_version": "1", "segment_key": seg[0] if seg else None, "segment_value": seg[1] if seg else None,
        "window_start": T0 + i * window_s * 1000, "window_end": T0 + (i + 1) * window_s * 1000,
        "window_s": window_s, "count": count, "metrics": metrics or {}, "reference": reference or {},
        "findings": findings or [],
    })
