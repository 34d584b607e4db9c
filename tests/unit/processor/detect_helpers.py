"""Builders for the sequential detectors' unit tests: columns of synthetic predictions."""

from __future__ import annotations

from typing import Any

import numpy as np

from inferwatch.processor.core.detect import DetectSettings, VersionDetectors
from inferwatch.processor.core.event_arrays import Columns

T0 = 1_764_140_040_000
REF_END = T0 + 1_000_000


def columns(ts: np.ndarray, num: dict[str, np.ndarray] | None = None, cat: dict[str, list[Any]] | None = None,
            segments: dict[str, list[Any]] | None = None, embedding: np.ndarray | None = None) -> Columns:
    """Columns of ``len(ts)`` predictions (event order)."""
    n = len(ts)
    cols = Columns(n=n, ts=np.asarray(ts, np.int64), segments=dict(segments or {}), latency=np.full(n, np.nan),
                   error=np.zeros(n, np.bool_), num=dict(num or {}), cat=dict(cat or {}), pos_name=[None] * n,
                   pos_score=np.full(n, np.nan))
    if embedding is not None:
        cols.embedding = embedding
        cols.embedding_rows = np.arange(n, dtype=np.int64)
    return cols


def feed(det: VersionDetectors, make: Any, n: int, start_ms: int, batch: int = 50) -> list[Any]:
    """Feed ``n`` events made by ``make(k, ts)`` (a Columns of ``k`` events) in batches; every decision."""
    out = []
    t = start_ms
    done = 0
    while done < n:
        k = min(batch, n - done)
        ts = t + np.arange(k, dtype=np.int64) * 10
        out += det.observe(make(k, ts))
        t = int(ts[-1]) + 10
        done += k
    return out


def detectors(**kw: Any) -> VersionDetectors:
    return VersionDetectors(DetectSettings(**kw), REF_END)
