"""Incidents, not alert storms: what one notification says about the findings it groups.

One cause (a new camera) breaks one feature in every segment that contains the new traffic, so
the rules raise one finding per feature per segment (18 for the demo's camera). The dispatcher
groups findings of one model version that start together (``group_by: [model, model_version]``,
the default, within ``group_wait``) into one notification; this module turns the alerts of that
group into one incident: the segment it points at, the features, the metrics and the evidence.
The per-feature findings stay inside the notification (its ``alerts``). Computed here and only
here, so the three payload formats say the same thing.

Which segment: the one with the most firing findings of its own; ties go to the segment the other
findings name (``mostly in segment X``: the processor's attribution of a whole-version change),
then to the larger sum of finding values (a new device's drift is strongest in its own segment).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from inferwatch.contract.events import AlertInstance

#: The grouping of a route whose ``group_by`` is not written: one incident per model version.
DEFAULT_GROUP_BY: tuple[str, ...] = ("model", "model_version")
#: The annotation carrying the incident text, on the first alert of a notification (and in
#: Alertmanager's ``commonAnnotations``).
INCIDENT_ANNOTATION = "incident"
MAX_LISTED = 8  # features, metrics and evidence lines named in the text; the rest are counted
TEXT_LIMIT = 4000  # below the contract's annotation limit (4096)

_NAMED = re.compile(r"in segment (\S+=[^\s;,)]+)")


@dataclass(frozen=True)
class Incident:
    """The findings of one notification, summarized."""

    model: str | None
    model_version: str | None
    segment: str | None
    segments: tuple[str, ...]
    features: tuple[str, ...]
    metrics: tuple[str, ...]
    evidence: tuple[str, ...]
    firing: int
    resolved: int

    def text(self) -> str:
        """One paragraph a person on call reads first."""
        who = f"{self.model or '?'}@{self.model_version}" if self.model_version else (self.model or "?")
        head = f"{who}: {self.firing} finding{'s' if self.firing != 1 else ''} firing"
        if self.resolved:
            head += f", {self.resolved} resolved"
        if self.segment:
            head += f", in segment {self.segment}"
            others = [s for s in self.segments if s != self.segment]
            if others:
                head += f" (also seen in {_listed(others)})"
        parts = [head]
        if self.features:
            parts.append(f"features: {_listed(self.features)}")
        if self.metrics:
            parts.append(f"metrics: {_listed(self.metrics)}")
        if self.evidence:
            parts.append("evidence: " + "; ".join(self.evidence[:MAX_LISTED])
                         + (f"; … {len(self.evidence) - MAX_LISTED} more" if len(self.evidence) > MAX_LISTED else ""))
        return ". ".join(parts)[:TEXT_LIMIT]


def _listed(xs: Sequence[str]) -> str:
    out = ", ".join(xs[:MAX_LISTED])
    return out + (f" and {len(xs) - MAX_LISTED} more" if len(xs) > MAX_LISTED else "")


def feature_of(metric: str) -> str | None:
    """``input.image_width.psi`` → ``image_width``; None for a metric that is not about one input feature."""
    if metric.startswith("input.") and metric.count(".") >= 2:
        return metric[len("input."):metric.rindex(".")]
    return None


def _metric(a: AlertInstance) -> str:
    return a.labels.get("metric") or a.rule


def summarize(alerts: Sequence[AlertInstance]) -> Incident:
    """The incident of a notification's alerts (firing ones decide the segment and the evidence)."""
    firing = [a for a in alerts if a.status == "firing"]
    basis = firing or list(alerts)
    own: Counter[str] = Counter()
    named: Counter[str] = Counter()
    weight: dict[str, float] = {}
    for a in basis:
        seg = a.segment or a.labels.get("segment")
        if seg:
            own[seg] += 1
            weight[seg] = weight.get(seg, 0.0) + (abs(a.value) if a.value is not None else 0.0)
        for m in _NAMED.findall(a.annotations.get("summary", "")):
            if m != seg:
                named[m] += 1
    segments = sorted(set(own) | set(named), key=lambda s: (-own[s], -named[s], -weight.get(s, 0.0), s))
    cause = segments[0] if segments else None
    metrics = sorted({_metric(a) for a in basis})
    features = sorted({f for f in (feature_of(m) for m in metrics) if f})

    def strength(a: AlertInstance) -> tuple[int, int, float, str, str, str]:
        seg = a.segment or a.labels.get("segment")
        # the cause segment's findings first, critical before warning, larger values first, then
        # by segment and metric so equal findings always read in the same order
        return (0 if seg == cause else 1, 0 if a.severity == "critical" else 1,
                -(abs(a.value) if a.value is not None else 0.0), seg or "", _metric(a), a.fingerprint)

    evidence = []
    for a in sorted(basis, key=strength):
        seg = a.segment or a.labels.get("segment") or "whole version"
        val = "no value" if a.value is None else f"{a.value:.4g}"
        evidence.append(f"{a.rule} {_metric(a)} = {val} ({seg})")
    first = basis[0] if basis else None
    return Incident(
        model=first.model if first else None, model_version=first.model_version if first else None,
        segment=cause, segments=tuple(segments), features=tuple(features), metrics=tuple(metrics),
        evidence=tuple(evidence), firing=len(firing), resolved=sum(1 for a in alerts if a.status == "resolved"),
    )
