"""Evaluate rules against one ``metric_snapshot.v1``: which conditions hold, with value and context.

Pure: the anomaly history comes in as an argument and the new value to remember goes out in the
result, so :mod:`inferwatch.alerter.evaluation.rule_engine` decides where history lives (SQLite).

Names in a condition: ``value`` (the rule's metric in this window), ``reference`` (the same
metric over the reference period), ``count``, ``window_s``, ``late_events``, ``zscore`` (anomaly
rules), any metric by its name (``embedding.drift_threshold``) and ``ref("name")``. A name the
snapshot does not carry means "no data": the alert's state is left as it is.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from inferwatch.alerter.evaluation.expr import MissingValue
from inferwatch.alerter.evaluation.rules import Rule
from inferwatch.alerter.lifecycle.fingerprint import fingerprint
from inferwatch.contract.events import Finding, MetricSnapshotV1

# An input feature is said to have drifted "there" (in the alert's segment) at this PSI; the same
# rule of thumb as the default drift rule, used only to enrich annotations.
RELATED_DRIFT_PSI = 0.2


@dataclass(frozen=True)
class Evaluation:
    """The outcome of one rule on one metric of one snapshot.

    ``holds`` is None when the condition could not be decided (missing data, too little history).
    """

    rule: Rule
    labels: dict[str, str]
    fingerprint: str
    holds: bool | None
    value: float | None
    event_ms: int
    context: dict[str, Any] = field(default_factory=dict)
    history_value: float | None = None


def segment_of(snap: MetricSnapshotV1) -> str | None:
    """``key=value`` for a segment snapshot, None for the whole version."""
    return None if snap.segment_key is None else f"{snap.segment_key}={snap.segment_value}"


def series_labels(rule: Rule, snap: MetricSnapshotV1, metric: str) -> dict[str, str]:
    """The identity labels of the alert this rule raises on this snapshot and metric."""
    labels = {
        "alertname": rule.name,
        "model": snap.model,
        "model_version": snap.model_version,
        "metric": metric,
        "severity": rule.severity,
    }
    seg = segment_of(snap)
    if seg is not None:
        labels["segment"] = seg
    labels.update(rule.labels)
    return labels


def _finding(snap: MetricSnapshotV1, metric: str) -> Finding | None:
    for f in snap.findings:
        if f.metric == metric:
            return f
    return None


def explain(snap: MetricSnapshotV1, metric: str) -> dict[str, Any]:
    """Template context that points at the cause: the top segment of the metric's finding, and the
    input features that drifted in that segment (or in this segment, for a segment snapshot)."""
    ctx: dict[str, Any] = {"top_segment": None, "top_segment_value": None, "top_segment_contribution": None}
    seg = segment_of(snap)
    f = _finding(snap, metric)
    if f is not None and f.top_segments:
        top = f.top_segments[0]
        seg = f"{top.key}={top.value}"
        ctx.update(top_segment=seg, top_segment_value=top.metric_value, top_segment_contribution=top.contribution)
    related: list[str] = []
    for other in snap.findings:
        if other.metric == metric or other.kind != "drift" or not other.top_segments:
            continue
        t = other.top_segments[0]
        if seg is not None and f"{t.key}={t.value}" == seg:
            related.append(_feature(other.metric))
    if snap.segment_key is not None:
        for name, v in snap.metrics.items():
            if name.startswith("input.") and name.endswith(".psi") and v is not None and v >= RELATED_DRIFT_PSI:
                related.append(_feature(name))
    ctx["related_drift"] = sorted(set(related))
    return ctx


def _feature(metric: str) -> str:
    """``input.image_width.psi`` → ``image_width``; other metric names unchanged."""
    if metric.startswith("input.") and metric.count(".") >= 2:
        return metric[len("input."):metric.rindex(".")]
    return metric


def zscore(value: float, history: Sequence[float]) -> float:
    """How many standard deviations ``value`` is from the mean of ``history``.

    The deviation is floored (1e-9 plus 1% of |mean|) so a perfectly flat history does not turn
    the smallest wobble into an infinite score.
    """
    mean = statistics.fmean(history)
    sd = statistics.pstdev(history) if len(history) > 1 else 0.0
    sd = max(sd, 1e-9 + 0.01 * abs(mean))
    return (value - mean) / sd


def evaluate(
    rule: Rule,
    snap: MetricSnapshotV1,
    history: Callable[[str], Sequence[float]] = lambda fp: (),
) -> list[Evaluation]:
    """Evaluate ``rule`` on ``snap``; one :class:`Evaluation` per metric the rule reads there.

    Returns nothing when the rule does not select the snapshot. ``history(fingerprint)`` gives the
    series' earlier values (oldest first) for anomaly rules.
    """
    if not rule.selector.selects(snap.model, snap.model_version, snap.segment_key, snap.segment_value, snap.count):
        return []
    out: list[Evaluation] = []
    for metric in rule.metrics_in(snap.metrics.keys()):
        labels = series_labels(rule, snap, metric)
        fp = fingerprint(labels)
        value = snap.metrics.get(metric)
        ref = snap.reference.get(metric)
        ctx: dict[str, Any] = {
            "rule": rule.name, "model": snap.model, "model_version": snap.model_version,
            "segment": segment_of(snap) or "whole", "metric": metric, "value": value, "reference": ref,
            "count": snap.count, "window_start": snap.window_start, "window_end": snap.window_end,
            "window_s": snap.window_s, "severity": rule.severity, "labels": labels, "zscore": None,
            "change_pct": (100.0 * (value - ref) / abs(ref)) if value is not None and ref else None,
        }
        ctx.update(explain(snap, metric))
        holds: bool | None = None
        hist_value: float | None = None
        if value is not None and math.isfinite(value):
            names: dict[str, float | None] = {
                "value": value, "reference": ref, "count": float(snap.count),
                "window_s": float(snap.window_s), "late_events": float(snap.late_events),
            }
            if rule.anomaly is not None:
                hist_value = value
                past = list(history(fp))[-rule.anomaly.window:]
                if len(past) >= rule.anomaly.min_windows:
                    z = zscore(value, past)
                    ctx["zscore"] = z
                    a = rule.anomaly
                    holds = (z >= a.zscore if a.direction == "above" else
                             z <= -a.zscore if a.direction == "below" else abs(z) >= a.zscore)
            else:
                holds = _holds(rule, snap, names)
        out.append(Evaluation(rule, labels, fp, holds, value, snap.window_end, ctx, hist_value))
    return out


def _holds(rule: Rule, snap: MetricSnapshotV1, names: dict[str, float | None]) -> bool | None:
    assert rule.condition is not None

    def resolve(name: str) -> float:
        if name in names:
            v = names[name]
        elif name.startswith("ref:"):
            v = snap.reference.get(name[4:])
        else:
            v = snap.metrics.get(name)
        if v is None:
            raise MissingValue(name)
        return v

    try:
        return rule.condition.holds(resolve)
    except MissingValue:
        return None
