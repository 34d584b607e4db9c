"""Rule evaluation over batches of snapshots, with the alert states kept in memory and in SQLite.

``process`` evaluates every rule on every snapshot, steps each alert's lifecycle, and persists the
batch's changes in ONE transaction before returning; the caller commits the Kafka offsets only
after that, so a crash re-reads at most snapshots whose effect is either stored (and then skipped
by the event-time guard in :mod:`inferwatch.alerter.lifecycle`) or not stored at all.
"""

from __future__ import annotations

import functools
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import replace

from inferwatch.alerter.evaluate import evaluate
from inferwatch.alerter.lifecycle import AlertRecord, step
from inferwatch.alerter.rules import Rule
from inferwatch.alerter.state import AlertStore
from inferwatch.contract.events import MetricSnapshotV1

log = logging.getLogger(__name__)


class Engine:
    """Evaluates rules and owns the alert states."""

    def __init__(self, store: AlertStore, rules: Sequence[Rule]) -> None:
        self.store = store
        self.rules: list[Rule] = list(rules)
        self.alerts: dict[str, AlertRecord] = store.load_alerts()
        self._history: dict[str, deque[float]] = {}
        self.evaluations = 0

    def set_rules(self, rules: Sequence[Rule]) -> list[AlertRecord]:
        """Swap the rule set (hot reload). Alerts of rules that are gone are resolved, as in Prometheus."""
        self.rules = list(rules)
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
        for snap in snaps:
            for rule in self.rules:
                limit = rule.anomaly.window if rule.anomaly else 0
                for ev in evaluate(rule, snap, functools.partial(self._hist_or_empty, n=limit)):
                    self.evaluations += 1
                    old = self.alerts.get(ev.fingerprint)
                    new, change = step(old, ev)
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
        if changed or deletes or history:
            self.store.save_evaluations(changed.values(), deletes, history, keep)
        return list(notify.values())

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
