"""Rule evaluation over batches of snapshots, with the alert states kept in memory and in SQLite.

``process`` evaluates every rule on every snapshot, steps each alert's lifecycle, and persists the
batch's changes in ONE transaction before returning; the caller commits the Kafka offsets only
after that, so a crash re-reads at most snapshots whose effect is either stored (and then skipped
by the event-time guard in :mod:`inferwatch.alerter.lifecycle.transitions`) or not stored at all.

``tick`` is the wall-clock half, called periodically by the service whether snapshots arrive or
not: it decides pending alerts that waited ``for_max_wait`` (:func:`~inferwatch.alerter.lifecycle.transitions.decide`)
and raises the alerts of absent rules (a selected model that sent nothing for ``absent_for``).
Both count wall-clock time from no earlier than the engine's start, so an alerter that was down
(or is catching up on a backlog) does not fire on time it did not watch. The clock is injectable.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from inferwatch.alerter.evaluation.durations import format_duration
from inferwatch.alerter.evaluation.evaluate import evaluate
from inferwatch.alerter.evaluation.expr import MissingValue
from inferwatch.alerter.evaluation.rules import Rule, _glob
from inferwatch.alerter.evaluation.templates import render
from inferwatch.alerter.lifecycle.fingerprint import fingerprint
from inferwatch.alerter.lifecycle.state import AlertStore
from inferwatch.alerter.lifecycle.transitions import AlertRecord, decide, drop_reason, step, with_reason
from inferwatch.clock import now_ms
from inferwatch.contract.events import DetectionV1, MetricSnapshotV1

log = logging.getLogger(__name__)

# A sighting for an absent rule is written to SQLite when the stored one is older than this: the
# precision an absence needs is minutes, and a write per batch per model would be wasted.
SEEN_PERSIST_S = 30.0
DROPPED_KEPT = 100  # the last decisions that dropped a pending alert, for inspection
#: A rule reads detections (``detection.v1``) when its ``metric`` starts with this: ``detection:*``
#: reads every detection, ``detection:input.*`` those of input features (the pattern is matched
#: against the detection's ``metric``).
DETECTION_PREFIX = "detection:"


def detection_labels(rule: Rule, det: DetectionV1) -> dict[str, str]:
    """The identity labels of the alert ``rule`` raises for a detection: one alert per model version,
    segment and tested metric (``input.alcohol.cusum``: the detector named last, so the metric reads
    like a window metric's ``input.alcohol.psi``)."""
    labels = {"alertname": rule.name, "model": det.model, "model_version": det.model_version,
              "metric": f"{det.metric}.{det.detector}", "severity": rule.severity}
    if det.segment_key is not None:
        labels["segment"] = f"{det.segment_key}={det.segment_value}"
    labels.update(rule.labels)
    return labels


def detection_context(rule: Rule, det: DetectionV1, labels: dict[str, str]) -> dict[str, Any]:
    """Template variables of a detection's alert (those of a snapshot's where they mean the same)."""
    seg = labels.get("segment") or "whole"
    ev = [f"{e.name} ({e.score:+.3g})" for e in det.evidence]
    return {
        "rule": rule.name, "model": det.model, "model_version": det.model_version, "segment": seg,
        "metric": det.metric, "signal": det.signal, "detector": det.detector, "value": det.value,
        "reference": det.reference, "statistic": det.statistic, "threshold": det.threshold,
        "false_alarm_rate": det.false_alarm_rate, "events": det.events, "labels_count": det.labels,
        "count": det.events, "new_segment": det.new_segment, "change_ts": det.change_ts,
        "evidence": ev, "evidence_names": [e.name for e in det.evidence], "severity": rule.severity,
        "labels": labels, "zscore": None, "window_start": det.change_ts, "window_end": det.ts,
        "change_pct": (100.0 * (det.value - det.reference) / abs(det.reference))
        if det.value is not None and det.reference else None,
    }


def detection_reason(det: DetectionV1) -> str:
    """Why a detection's alert fired: the detector's evidence, not a wait."""
    rate = f", calibrated for {det.false_alarm_rate:.2g} false alarms per event" if det.false_alarm_rate else ""
    lab = f" ({det.labels} labels)" if det.labels is not None else ""
    new = "; a new segment, compared with the whole version's reference" if det.new_segment else ""
    return (f"sequential {det.detector} detection: statistic {det.statistic:.3g} crossed {det.threshold:.3g} "
            f"after {det.events} events{lab} since the estimated change{rate}{new}")


def absent_labels(rule: Rule, model: str, model_version: str) -> dict[str, str]:
    """The identity labels of an absent rule's alert (no ``model_version`` when it watches models)."""
    labels = {"alertname": rule.name, "model": model, "severity": rule.severity}
    if model_version:
        labels["model_version"] = model_version
    labels.update(rule.labels)
    return labels


class Engine:
    """Evaluates rules and owns the alert states.

    ``clock`` gives the wall time in ms (tests inject one); ``decisions`` counts what the wall-clock
    half decided (``fired``, ``dropped``, ``absent``) and ``dropped`` keeps the last dropped alerts
    with their reasons.
    """

    def __init__(self, store: AlertStore, rules: Sequence[Rule], clock: Callable[[], int] = now_ms) -> None:
        self.store = store
        self.rules: list[Rule] = list(rules)
        self.alerts: dict[str, AlertRecord] = store.load_alerts()
        self._history: dict[str, deque[float]] = {}
        self.evaluations = 0
        self.clock = clock
        self.started_wall_ms = clock()
        # absent rules: (rule, model, model_version) -> wall ms of the last snapshot; and what is stored
        self._seen: dict[tuple[str, str, str], int] = store.load_seen()
        self._seen_stored: dict[tuple[str, str, str], int] = dict(self._seen)
        self._absent_fp: dict[tuple[str, str, str], str] = {}
        self.decisions: Counter[str] = Counter()
        self.dropped: deque[tuple[AlertRecord, str]] = deque(maxlen=DROPPED_KEPT)

    def set_rules(self, rules: Sequence[Rule]) -> list[AlertRecord]:
        """Swap the rule set (hot reload). Alerts of rules that are gone are resolved, as in Prometheus."""
        self.rules = list(rules)
        self._absent_fp.clear()  # labels (and so fingerprints) may have changed with the rules
        names = {r.name for r in rules}
        gone: list[AlertRecord] = []
        deletes: list[str] = []
        for fp, rec in list(self.alerts.items()):
            if rec.rule in names:
                continue
            if rec.state == "firing":
                rec = replace(rec, state="resolved", ends_at_ms=rec.last_eval_ms)
                self.alerts[fp] = rec
                gone.append(rec)
            elif rec.state == "pending":
                del self.alerts[fp]
                deletes.append(fp)
        if gone or deletes:
            self.store.save_evaluations(gone, deletes, [], {})
        return gone

    def _hist(self, fp: str, limit: int) -> deque[float]:
        h = self._history.get(fp)
        if h is None:
            h = self._history[fp] = deque(self.store.history(fp, limit), maxlen=limit)
        return h

    def _hist_or_empty(self, fp: str, n: int) -> Sequence[float]:
        # Only anomaly rules (n > 0) keep a history; others get an empty one.
        return self._hist(fp, n) if n else ()

    def process(self, snaps: Iterable[MetricSnapshotV1]) -> list[AlertRecord]:
        """Evaluate, step, persist. Returns the alerts that became firing or resolved, or changed while firing."""
        changed: dict[str, AlertRecord] = {}
        deletes: set[str] = set()
        history: list[tuple[str, int, float]] = []
        keep: dict[str, int] = {}
        notify: dict[str, AlertRecord] = {}
        now = self.clock()
        seen: dict[tuple[str, str, str], int] = {}
        for snap in snaps:
            for rule in self.rules:
                if rule.absent_for_s is not None:
                    self._sighted(rule, snap, now, seen, changed, notify)
                    continue
                limit = rule.anomaly.window if rule.anomaly else 0
                for ev in evaluate(rule, snap, functools.partial(self._hist_or_empty, n=limit)):
                    self.evaluations += 1
                    old = self.alerts.get(ev.fingerprint)
                    new, change = step(old, ev, now)
                    if ev.history_value is not None and (old is None or ev.event_ms > old.last_eval_ms):
                        self._hist(ev.fingerprint, limit).append(ev.history_value)
                        history.append((ev.fingerprint, ev.event_ms, ev.history_value))
                        keep[ev.fingerprint] = limit
                    if change is None:
                        continue
                    if new is None:
                        self.alerts.pop(ev.fingerprint, None)
                        changed.pop(ev.fingerprint, None)
                        deletes.add(ev.fingerprint)
                        continue
                    self.alerts[ev.fingerprint] = new
                    changed[ev.fingerprint] = new
                    deletes.discard(ev.fingerprint)
                    if change in ("firing", "resolved") or (change == "updated" and new.state == "firing"):
                        notify[ev.fingerprint] = new
        if changed or deletes or history or seen:
            self.store.save_evaluations(changed.values(), deletes, history, keep,
                                        [(*k, v) for k, v in seen.items()])
            self._seen_stored.update(seen)
        return list(notify.values())

    def detection_rules(self) -> list[Rule]:
        """The rules that read detections (``metric: detection:...``)."""
        return [r for r in self.rules if r.metric.startswith(DETECTION_PREFIX) and r.absent_for_s is None]

    def process_detections(self, dets: Iterable[DetectionV1]) -> list[AlertRecord]:
        """Turn ``detection.v1`` events into alerts; persist (one transaction); return what changed.

        A ``detected`` event fires its alert at once: the confirmation is the detector's own
        evidence (its threshold controls the false-alarm rate), not ``for``. A ``cleared`` event
        resolves it. Every rule whose ``metric`` is ``detection:<pattern>`` and whose ``match`` selects
        the detection's model, version and segment (``min_count`` against the detection's ``events``)
        applies; its ``condition`` may further ask for ``statistic``, ``threshold``, ``value``,
        ``reference``, ``events``, ``labels`` or ``false_alarm_rate`` (a fixed threshold instead of the
        calibrated one). A detection not newer than the alert's last one (a replay) changes nothing.
        """
        rules = self.detection_rules()
        changed: dict[str, AlertRecord] = {}
        for det in dets:
            for rule in rules:
                if not rule.selector.selects(det.model, det.model_version, det.segment_key, det.segment_value,
                                             det.events):
                    continue
                if not _glob(rule.metric[len(DETECTION_PREFIX):]).match(det.metric):
                    continue
                rec = self._detection(rule, det)
                if rec is not None:
                    self.alerts[rec.fingerprint] = changed[rec.fingerprint] = rec
        if changed:
            self.store.save_evaluations(changed.values(), [], [], {})
        return list(changed.values())

    def _detection(self, rule: Rule, det: DetectionV1) -> AlertRecord | None:
        labels = detection_labels(rule, det)
        fp = fingerprint(labels)
        old = self.alerts.get(fp)
        now = self.clock()
        if old is not None and det.ts <= old.last_eval_ms:
            return None  # replayed or out of order
        self.evaluations += 1
        if det.status == "cleared":
            if old is None or old.state != "firing":
                return None
            return replace(old, state="resolved", ends_at_ms=det.ts, last_eval_ms=det.ts, last_seen_wall_ms=now)
        if rule.condition is not None:
            names: dict[str, float | None] = {
                "statistic": det.statistic, "threshold": det.threshold, "value": det.value,
                "reference": det.reference, "events": float(det.events), "count": float(det.events),
                "labels": None if det.labels is None else float(det.labels),
                "false_alarm_rate": det.false_alarm_rate,
            }

            def resolve(name: str) -> float:
                v = names.get(name)
                if v is None:
                    raise MissingValue(name)
                return v

            try:
                if not rule.condition.holds(resolve):
                    return None
            except MissingValue:
                return None
        ctx = detection_context(rule, det, labels)
        reason = detection_reason(det)
        annotations = with_reason({k: render(t, ctx) for k, t in rule.annotations.items()}, reason)
        value = det.value if det.value is not None else det.statistic
        if old is not None and old.state == "firing":
            return replace(old, last_true_ms=det.ts, last_eval_ms=det.ts, value=value, annotations=annotations,
                           last_seen_wall_ms=now)
        return AlertRecord(
            fingerprint=fp, rule=rule.name, state="firing", labels=labels, annotations=annotations,
            severity=rule.severity, active_since_ms=det.change_ts if det.change_ts is not None else det.ts,
            starts_at_ms=det.ts, last_true_ms=det.ts, last_eval_ms=det.ts, value=value, model=det.model,
            model_version=det.model_version, segment=labels.get("segment"), breaches=1,
            pending_since_wall_ms=now, last_seen_wall_ms=now, reason=reason,
        )

    def _sighted(self, rule: Rule, snap: MetricSnapshotV1, now: int, seen: dict[tuple[str, str, str], int],
                 changed: dict[str, AlertRecord], notify: dict[str, AlertRecord]) -> None:
        """An absent rule saw ``snap``: note the sighting, resolve its alert if it was firing."""
        if not rule.selector.selects(snap.model, snap.model_version, snap.segment_key, snap.segment_value,
                                     snap.count):
            return
        key = (rule.name, snap.model, snap.model_version if rule.absent_per == "model_version" else "")
        self._seen[key] = now
        if now - self._seen_stored.get(key, -(2**62)) >= SEEN_PERSIST_S * 1000:
            seen[key] = now
        fp = self._absent_fp.get(key)
        if fp is None:  # hashing the labels on every snapshot would be most of this rule's cost
            fp = self._absent_fp[key] = fingerprint(absent_labels(rule, key[1], key[2]))
        rec = self.alerts.get(fp)
        if rec is not None and rec.state == "firing":
            rec = replace(rec, state="resolved", ends_at_ms=now, last_eval_ms=now, last_seen_wall_ms=now)
            self.alerts[fp] = changed[fp] = notify[fp] = rec
            seen[key] = now  # the resolution and the sighting that caused it are stored together

    def tick(self) -> list[AlertRecord]:
        """The wall-clock half: decide pending alerts past ``for_max_wait``, raise absent alerts.

        Persists what changed (one transaction) and returns the alerts to hand to the dispatcher.
        """
        now = self.clock()
        by_name = {r.name: r for r in self.rules}
        changed: dict[str, AlertRecord] = {}
        deletes: list[str] = []
        for fp, rec in list(self.alerts.items()):
            rule = by_name.get(rec.rule)
            if rec.state != "pending" or rule is None:
                continue
            # a rule reloaded as an absent rule under the same name: its old pending alerts are over
            out = decide(rec, rule, now, self.started_wall_ms) if rule.absent_for_s is None else (None, "dropped")
            if out is None:
                continue
            new, change = out
            if new is None:
                reason = ("the rule was reloaded as an absent rule" if rule.absent_for_s is not None
                          else drop_reason(rec, rule, now, self.started_wall_ms))
                log.info("pending alert %s %s dropped: %s", rec.rule, rec.labels, reason)
                self.dropped.append((replace(rec, reason=reason), reason))
                self.decisions["dropped"] += 1
                del self.alerts[fp]
                deletes.append(fp)
                continue
            log.info("pending alert %s %s fired: %s", rec.rule, rec.labels, new.reason)
            self.decisions["fired"] += 1
            self.alerts[fp] = changed[fp] = new
        for rule in self.rules:
            if rule.absent_for_s is not None:
                self._absences(rule, now, changed)
        if changed or deletes:
            self.store.save_evaluations(changed.values(), deletes, [], {})
        return list(changed.values())

    def _absences(self, rule: Rule, now: int, changed: dict[str, AlertRecord]) -> None:
        """Raise the alerts of ``rule`` for models silent for ``absent_for``."""
        assert rule.absent_for_s is not None
        limit_ms = rule.absent_for_s * 1000
        sel = rule.selector
        for (name, model, version), last in self._seen.items():
            if name != rule.name or (version == "") != (rule.absent_per == "model"):
                continue
            labels = absent_labels(rule, model, version)
            fp = fingerprint(labels)
            rec = self.alerts.get(fp)
            # a reloaded rule may select other models: a sighting it would not make does not count,
            # and the alert of a model it no longer selects is over
            if (sel.model is not None and not sel.model.match(model)) or (
                    version and sel.model_version is not None and not sel.model_version.match(version)):
                if rec is not None and rec.state == "firing":
                    self.alerts[fp] = changed[fp] = replace(rec, state="resolved", ends_at_ms=now, last_eval_ms=now)
                continue
            if now - max(last, self.started_wall_ms) < limit_ms or (rec is not None and rec.state == "firing"):
                continue
            silent_s = (now - last) / 1000
            reason = (f"no snapshot for {format_duration(silent_s)} (absent_for "
                      f"{format_duration(rule.absent_for_s)})")
            ctx: dict[str, Any] = {
                "rule": rule.name, "model": model, "model_version": version or None, "severity": rule.severity,
                "labels": labels, "last_seen": datetime.fromtimestamp(last / 1000, UTC).isoformat(),
                "last_seen_ms": last, "silent_s": silent_s, "absent_for_s": rule.absent_for_s,
                "silent_for": format_duration(silent_s),
            }
            annotations = {k: render(t, ctx) for k, t in rule.annotations.items()}
            rec = AlertRecord(
                fingerprint=fp, rule=rule.name, state="firing", labels=labels, severity=rule.severity,
                active_since_ms=last, starts_at_ms=now, last_true_ms=now, last_eval_ms=now,
                model=model, model_version=version or None, value=silent_s, last_seen_wall_ms=last,
                reason=reason, annotations=with_reason(annotations, reason),
            )
            log.info("absent: %s %s", rule.name, labels)
            self.decisions["absent"] += 1
            self.alerts[fp] = changed[fp] = rec

    def firing_labels(self) -> list[dict[str, str]]:
        """Labels of every firing alert (inhibition sources)."""
        return [a.labels for a in self.alerts.values() if a.state == "firing"]

    def gc(self, older_than_wall_ms: int) -> list[str]:
        """Forget long-resolved alerts."""
        fps = self.store.gc_resolved(older_than_wall_ms)
        for fp in fps:
            rec = self.alerts.get(fp)
            if rec is not None and rec.state == "resolved":
                del self.alerts[fp]
        return fps
