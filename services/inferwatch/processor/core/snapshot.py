"""Closed window → ``metric_snapshot.v1`` events: one for the whole version and one per emitted segment
value, with drift against the reference, findings, and the segments that explain each finding.

Segment localisation is leave-one-out: a segment's contribution to a whole-version finding is the
share of the whole's deviation that disappears when the segment's events are removed,
``(bad(whole) - bad(whole without segment)) / bad(whole)``, where ``bad`` is the distance from the
reference in the metric's bad direction (PSI: its value). A new device that alone causes an
accuracy drop explains ~100% of it; a healthy segment explains ~0% (or less than 0).
"""

from __future__ import annotations

import time
import uuid

from inferwatch.contract.events import Finding, MetricSnapshotV1, SegmentContribution
from inferwatch.processor.core import window_metrics as mx
from inferwatch.processor.core.accumulator import WHOLE, WindowAcc
from inferwatch.processor.settings import ProcessorSettings

_NS = uuid.UUID("6f1c2a4e-9b7d-4c3e-8a51-0d2e7f9b3c11")


def snapshot_id(model: str, version: str, key: str | None, value: str | None, start_ms: int) -> str:
    """Deterministic event id of a window's snapshot: a re-emission after a crash has the same id."""
    return uuid.uuid5(_NS, f"{model}|{version}|{key or ''}={value or ''}|{start_ms}").hex


def _clean(m: dict[str, float | None]) -> dict[str, float | None]:
    import math

    return {k: (None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)) for k, v in m.items()}


def _ref_slot(ref: WindowAcc, name: tuple[str, str], cfg: ProcessorSettings) -> int:
    """A segment's own reference slot when it had enough reference traffic, else the whole version's."""
    s = ref.slots.get(name)
    if s is not None and float(ref.get("count", s)) >= cfg.min_reference_count:
        return s
    return 0


def build_snapshots(acc: WindowAcc, ref: WindowAcc | None, cfg: ProcessorSettings, late_events: int = 0,
                    now_ms: int | None = None) -> list[MetricSnapshotV1]:
    """The snapshots of a closed window (``acc`` is collapsed to top-K segment values first)."""
    acc = acc.collapsed(cfg.top_k)
    span_s = (acc.end_ms - acc.start_ms) / 1000
    window_s = max(1, round(span_s))
    ts = now_ms if now_ms is not None else int(time.time() * 1000)
    ref_span = (ref.end_ms - ref.start_ms) / 1000 if ref is not None else 0.0
    cache: mx.RefCache = {}  # the reference side of the drift statistics, shared by all snapshots

    def compute(slot: int, name: tuple[str, str]) -> tuple[dict[str, float | None], dict[str, float | None], int]:
        m = mx.summary(acc, slot, span_s)
        r: dict[str, float | None] = {}
        rs = 0
        if ref is not None:
            rs = _ref_slot(ref, name, cfg)
            m.update(mx.drift(acc, slot, ref, rs, cache=cache))
            r = mx.summary(ref, rs, ref_span)
            if slot == 0:
                m.update(mx.embedding_drift(acc, ref, cfg.embedding_permutations))
        em, er = mx.estimated_performance(acc, slot, ref, rs)
        m.update(em)
        r.update(er)
        return m, r, rs

    out: list[MetricSnapshotV1] = []
    whole_m, whole_r, _ = compute(0, WHOLE)
    count0 = float(acc.get("count", 0))
    findings: list[Finding] = []
    if ref is not None:
        for metric, kind, value, refv, th in mx.judge(whole_m, whole_r, count0, float(acc.get("labeled", 0)), cfg):
            findings.append(Finding(metric=metric, kind=kind, value=value, reference=refv, threshold=th,  # type: ignore[arg-type]
                                    top_segments=_localise(acc, ref, metric, value, refv, cfg, cache)))
    out.append(_snap(acc, None, None, window_s, ts, whole_m, whole_r, findings, late_events))
    for name in acc.segment_names():
        s = acc.slots[name]
        m, r, _ = compute(s, name)
        f: list[Finding] = []
        if ref is not None:
            for metric, kind, value, refv, th in mx.judge(m, r, float(acc.get("count", s)), float(acc.get("labeled", s)), cfg):
                if metric == "embedding.drift":
                    continue
                f.append(Finding(metric=metric, kind=kind, value=value, reference=refv, threshold=th))  # type: ignore[arg-type]
        out.append(_snap(acc, name[0], name[1], window_s, ts, m, r, f, 0))
    return out


def _localise(acc: WindowAcc, ref: WindowAcc, metric: str, value: float, refv: float | None,
              cfg: ProcessorSettings, cache: mx.RefCache | None = None) -> list[SegmentContribution]:
    """Segments ranked by the share of the whole-version deviation of ``metric`` they explain."""
    whole_bad = mx.badness(metric, value, refv)
    if not whole_bad or metric == "embedding.drift":
        return []
    feat = mx.feature_of(metric)
    feats = {feat} if feat is not None else set()
    rows: list[SegmentContribution] = []
    for name in acc.segment_names():
        s = acc.slots[name]
        rest = mx.without(acc, s)
        if float(rest.get("count", 0)) <= 0:
            continue
        if metric.endswith((".psi", ".js", ".ks")):
            rest_v = mx.drift(rest, 0, ref, 0, feats, cache).get(metric)
            seg_v = mx.drift(acc, s, ref, _ref_slot(ref, name, cfg), feats, cache).get(metric)
        else:
            rest_v = mx.summary(rest, 0, 1.0).get(metric)
            seg_v = mx.summary(acc, s, 1.0).get(metric)
        rest_bad = mx.badness(metric, rest_v, refv)
        if rest_bad is None:
            continue
        contrib = (whole_bad - rest_bad) / whole_bad
        rows.append(SegmentContribution(key=name[0], value=name[1], contribution=float(contrib),
                                        metric_value=None if seg_v is None else float(seg_v),
                                        count=int(acc.get("count", s))))
    rows.sort(key=lambda c: (-c.contribution, c.key, c.value))
    return rows[: cfg.top_segments]


def _snap(acc: WindowAcc, key: str | None, value: str | None, window_s: int, ts: int,
          m: dict[str, float | None], r: dict[str, float | None], findings: list[Finding], late: int) -> MetricSnapshotV1:
    return MetricSnapshotV1(
        event_id=snapshot_id(acc.model, acc.version, key, value, acc.start_ms),
        ts=ts, model=acc.model, model_version=acc.version, segment_key=key, segment_value=value,
        window_start=acc.start_ms, window_end=acc.end_ms, window_s=window_s,
        count=int(m.get("count") or 0), late_events=late,
        metrics=_clean({**m, **({"late_events": float(late)} if key is None else {})}), reference=_clean(r),
        findings=findings,
    )
