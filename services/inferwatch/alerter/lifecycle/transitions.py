"""An alert's life: inactive → pending → firing → resolved, driven by EVENT time.

Which clock: ``for`` and ``keep_firing_for`` are measured on the snapshots' ``window_end`` (event
time), not on the wall clock. A replay of last week's metrics in accelerated time then alerts
exactly as it would have live, and a burst of late snapshots cannot make a condition "hold for 5
minutes" in two seconds. Grouping timers (``group_wait``, ``group_interval``, ``repeat_interval``)
and silences are wall-clock: they are about people and receivers, which live in real time (see
:mod:`inferwatch.alerter.route.dispatch`).

A snapshot whose ``window_end`` is not newer than the last one evaluated for the alert is skipped,
so re-reading snapshots after a crash (at-least-once) does not move any state.

Confirmation without stalls: event time only advances when snapshots arrive, so a stream that
slows down or stops would leave an alert ``pending`` forever. Two ways out:

- ``for_events: N`` fires once N consecutive snapshots breached, whatever event time they span;
- ``for_max_wait`` (wall clock, default :func:`max_wait_s`) bounds ``pending``: :func:`decide`
  (called on the alerter's periodic tick) fires a pending alert whose last evaluation breached (a
  pending alert has only breaching evaluations: one that does not breach drops it), and drops one
  whose last snapshots carried no data for the condition, each with its ``reason``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from inferwatch.alerter.evaluation.durations import format_duration
from inferwatch.alerter.evaluation.evaluate import Evaluation
from inferwatch.alerter.evaluation.rules import Rule
from inferwatch.alerter.evaluation.templates import render

# ``for_max_wait`` when a rule does not set it: twice ``for``, and never under 5 minutes so that a
# healthy stream (a snapshot per window, windows of a minute or so) always confirms in event time.
DEFAULT_MAX_WAIT_S = 300.0
QUIET_FIRED = "stream went quiet while breaching; fired after for_max_wait"

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
    # confirmation (wall clock, ms): consecutive breaching snapshots while pending, when the alert
    # became pending, when its series last sent a snapshot, whether that one carried no data
    breaches: int = 0
    pending_since_wall_ms: int = 0
    last_seen_wall_ms: int = 0
    last_no_data: bool = False
    reason: str | None = None  # why it fired or was dropped, when not by ``for`` in event time


Change = Literal["pending", "firing", "resolved", "updated", "dropped"]


def with_reason(annotations: dict[str, str], reason: str | None) -> dict[str, str]:
    """``annotations`` plus ``reason`` (unless the rule writes its own ``reason`` annotation)."""
    if reason is None or "reason" in annotations:
        return annotations
    return {**annotations, "reason": reason}


def _annotations(ev: Evaluation, reason: str | None = None) -> dict[str, str]:
    return with_reason({k: render(t, ev.context) for k, t in ev.rule.annotations.items()}, reason)


def max_wait_s(rule: Rule) -> float:
    """The wall-clock bound on ``pending`` of ``rule``: ``for_max_wait``, else max(2 x ``for``, 5 min)."""
    if rule.for_max_wait_s is not None:
        return rule.for_max_wait_s
    return max(2.0 * rule.for_s, DEFAULT_MAX_WAIT_S)


def _confirmed(rule: Rule, rec: AlertRecord, t: int) -> str | None:
    """Whether a pending alert fires on this snapshot: ``""`` by ``for`` (event time), a reason by
    ``for_events``, None not yet. With ``for_events`` and no ``for``, only the count confirms."""
    if rule.for_events and rec.breaches >= rule.for_events:
        return f"{rec.breaches} consecutive breaching snapshots (for_events)"
    if rule.for_events and not rule.for_s:
        return None
    return "" if t - rec.active_since_ms >= rule.for_s * 1000 else None


def step(rec: AlertRecord | None, ev: Evaluation, now_wall_ms: int = 0) -> tuple[AlertRecord | None, Change | None]:
    """Apply one evaluation at wall time ``now_wall_ms``. Returns the new record (None = inactive)
    and what changed.

    ``ev.holds is None`` (no data) leaves the state as it is; a pending alert only notes that its
    series sent a snapshot without data (for :func:`decide`).
    """
    t = ev.event_ms
    if rec is not None and t <= rec.last_eval_ms:
        return rec, None  # replayed or out-of-order snapshot: already accounted for
    rule = ev.rule
    if ev.holds is None:
        if rec is not None and rec.state == "pending":
            return replace(rec, last_seen_wall_ms=now_wall_ms, last_no_data=True), "updated"
        return rec, None
    if ev.holds:
        if rec is None or rec.state == "resolved":
            rec = AlertRecord(
                fingerprint=ev.fingerprint, rule=rule.name, state="pending", labels=ev.labels,
                severity=rule.severity, active_since_ms=t, last_true_ms=t, last_eval_ms=t,
                model=ev.labels.get("model"), model_version=ev.labels.get("model_version"),
                segment=ev.labels.get("segment"), value=ev.value, annotations=_annotations(ev),
                breaches=1, pending_since_wall_ms=now_wall_ms, last_seen_wall_ms=now_wall_ms,
            )
            change: Change = "pending"
        else:
            rec = replace(rec, last_true_ms=t, last_eval_ms=t, value=ev.value,
                          annotations=_annotations(ev, rec.reason), keep_firing_since_ms=None,
                          breaches=rec.breaches + 1, last_seen_wall_ms=now_wall_ms, last_no_data=False)
            change = "updated"
        if rec.state == "pending" and (why := _confirmed(rule, rec, t)) is not None:
            reason = why or None
            rec = replace(rec, state="firing", starts_at_ms=t, ends_at_ms=None, reason=reason,
                          annotations=with_reason(rec.annotations, reason))
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


def decide(rec: AlertRecord, rule: Rule, now_wall_ms: int, floor_wall_ms: int = 0) -> tuple[
        AlertRecord | None, Change] | None:
    """Settle a pending alert that waited ``for_max_wait`` of wall-clock time; None = not yet.

    Returns the firing record (``"firing"``) when its last evaluation breached, or ``(None,
    "dropped")`` when its last snapshot carried no data for the condition; the reason is in
    ``reason`` (and the ``reason`` annotation) of a fired alert and in the log for a dropped one
    (:func:`drop_reason`). Wall-clock times are counted from no earlier than ``floor_wall_ms`` (the
    engine's start), so an alerter that was down does not decide on time it did not watch.
    """
    if rec.state != "pending":
        return None
    wait_ms = max_wait_s(rule) * 1000
    if now_wall_ms - max(rec.pending_since_wall_ms, floor_wall_ms) < wait_ms:
        return None
    if rec.last_no_data:
        return None, "dropped"
    quiet = now_wall_ms - max(rec.last_seen_wall_ms, floor_wall_ms) >= wait_ms
    reason = QUIET_FIRED if quiet else (
        f"still breaching after for_max_wait ({format_duration(wait_ms / 1000)}) of wall-clock time, "
        f"over {rec.breaches} snapshot(s) spanning {format_duration((rec.last_eval_ms - rec.active_since_ms) / 1000)} "
        f"of event time (for: {format_duration(rule.for_s)}); fired")
    return replace(rec, state="firing", starts_at_ms=rec.last_eval_ms, ends_at_ms=None, reason=reason,
                   annotations=with_reason(rec.annotations, reason)), "firing"


def drop_reason(rec: AlertRecord, rule: Rule, now_wall_ms: int, floor_wall_ms: int = 0) -> str:
    """Why :func:`decide` dropped ``rec`` (for the log and the engine's record of decisions)."""
    quiet = now_wall_ms - max(rec.last_seen_wall_ms, floor_wall_ms) >= max_wait_s(rule) * 1000
    return (f"{'stream went quiet' if quiet else 'series kept sending'} without data for the condition "
            f"after {rec.breaches} breaching snapshot(s); dropped after for_max_wait "
            f"({format_duration(max_wait_s(rule))})")
