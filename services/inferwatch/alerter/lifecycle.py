"""An alert's life: inactive → pending → firing → resolved, driven by EVENT time.

Which clock: ``for`` and ``keep_firing_for`` are measured on the snapshots' ``window_end`` (event
time), not on the wall clock. A replay of last week's metrics in accelerated time then alerts
exactly as it would have live, and a burst of late snapshots cannot make a condition "hold for 5
minutes" in two seconds. Grouping timers (``group_wait``, ``group_interval``, ``repeat_interval``)
and silences are wall-clock: they are about people and receivers, which live in real time (see
:mod:`inferwatch.alerter.dispatch`).

A snapshot whose ``window_end`` is not newer than the last one evaluated for the alert is skipped,
so re-reading snapshots after a crash (at-least-once) does not move any state.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from inferwatch.alerter.evaluate import Evaluation
from inferwatch.alerter.templates import render

State = Literal["pending", "firing", "resolved"]


@dataclass(frozen=True)
class AlertRecord:
    """The stored state of one alert (one fingerprint)."""

    fingerprint: str
    rule: str
    state: State
    labels: dict[str, str]
    annotations: dict[str, str] = field(default_factory=dict)
    severity: str = "warning"
    active_since_ms: int = 0
    starts_at_ms: int | None = None
    ends_at_ms: int | None = None
    last_true_ms: int = 0
    last_eval_ms: int = 0
    keep_firing_since_ms: int | None = None
    value: float | None = None
    model: str | None = None
    model_version: str | None = None
    segment: str | None = None


Change = Literal["pending", "firing", "resolved", "updated", "dropped"]


def _annotations(ev: Evaluation) -> dict[str, str]:
    return {k: render(t, ev.context) for k, t in ev.rule.annotations.items()}


def step(rec: AlertRecord | None, ev: Evaluation) -> tuple[AlertRecord | None, Change | None]:
    """Apply one evaluation. Returns the new record (None = inactive) and what changed.

    ``ev.holds is None`` (no data) leaves the state as it is.
    """
    t = ev.event_ms
    if rec is not None and t <= rec.last_eval_ms:
        return rec, None  # replayed or out-of-order snapshot: already accounted for
    if ev.holds is None:
        return rec, None
    rule = ev.rule
    if ev.holds:
        if rec is None or rec.state == "resolved":
            rec = AlertRecord(
                fingerprint=ev.fingerprint, rule=rule.name, state="pending", labels=ev.labels,
                severity=rule.severity, active_since_ms=t, last_true_ms=t, last_eval_ms=t,
                model=ev.labels.get("model"), model_version=ev.labels.get("model_version"),
                segment=ev.labels.get("segment"), value=ev.value, annotations=_annotations(ev),
            )
            change: Change = "pending"
        else:
            rec = replace(rec, last_true_ms=t, last_eval_ms=t, value=ev.value, annotations=_annotations(ev),
                          keep_firing_since_ms=None)
            change = "updated"
        if rec.state == "pending" and t - rec.active_since_ms >= rule.for_s * 1000:
            rec = replace(rec, state="firing", starts_at_ms=t, ends_at_ms=None)
            change = "firing"
        return rec, change
    # the condition is false
    if rec is None:
        return None, None
    if rec.state == "pending":
        return None, "dropped"
    if rec.state == "firing":
        # as in Prometheus, keep_firing_for counts from the first evaluation that found it false
        since = t if rec.keep_firing_since_ms is None else rec.keep_firing_since_ms
        if t - since < rule.keep_firing_for_s * 1000:
            return replace(rec, last_eval_ms=t, value=ev.value, keep_firing_since_ms=since), "updated"
        return replace(rec, state="resolved", ends_at_ms=t, last_eval_ms=t, value=ev.value), "resolved"
    return replace(rec, last_eval_ms=t), None
