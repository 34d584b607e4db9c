"""Route → group → inhibit → silence → dedup: deciding WHAT to notify and WHEN (wall clock).

Grouping follows Alertmanager: a new group waits ``group_wait`` before its first notification,
then is looked at every ``group_interval``; an unchanged group is re-sent after
``repeat_interval``. Timers are wall-clock (see :mod:`inferwatch.alerter.lifecycle.transitions` for why
alert state itself runs on event time). The dedup decision compares with the notification log
in SQLite, so a restart rebuilds the groups from the stored alerts and sends only what the
receivers have not been told. Decided notifications go to the outbox (same transaction as the
nflog), from where :mod:`inferwatch.alerter.notification.delivery` sends them.

Several alerters (issue #13): a group lives in ONE partition of the alerter's input, because its
notification log and outbox move with that partition. Groups that include ``model`` in their labels
(the default ``[model, model_version]``) are naturally in one partition (the input is keyed by model);
a group whose labels do not name the model (``group_by: []``, ``[alertname]``) is split per
partition: its key gets ``@partition=N`` (:func:`scoped_group_key`), so it is notified once per input
partition that holds its alerts instead of once in all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from inferwatch.alerter.lifecycle.fingerprint import group_key
from inferwatch.alerter.lifecycle.state import NO_PART, AlertStore, NflogEntry, OutboxItem
from inferwatch.alerter.lifecycle.transitions import AlertRecord
from inferwatch.alerter.notification.payloads import idempotency_key, notification
from inferwatch.alerter.route.inhibit import InhibitRule, inhibited
from inferwatch.alerter.route.routing import ReceiverConfig, Route, match_routes
from inferwatch.alerter.silence.silences import Silence, is_silenced


@dataclass
class Group:
    """An aggregation group: the alerts of one route with equal group labels."""

    route: Route
    key: str
    labels: dict[str, str]
    next_flush: float
    alerts: dict[str, AlertRecord] = field(default_factory=dict)
    part: int = NO_PART  # the input partition whose state holds this group's nflog and outbox


def scoped_group_key(key: str, labels: dict[str, str], part: int) -> str:
    """``key`` of a group that cannot span partitions: unchanged when its labels name the model (a
    model's alerts are all in one partition) or the partition is unknown, else ``key@partition=N``."""
    if part == NO_PART or "model" in labels:
        return key
    return f"{key}@partition={part}"


def needs_update(
    entry: NflogEntry | None, firing: set[str], resolved: set[str], send_resolved: bool, repeat_s: float, now_ms: int
) -> bool:
    """Alertmanager's DedupStage decision."""
    if entry is None:
        return bool(firing)
    if not firing <= entry.firing:
        return True
    if not firing:
        # all resolved: tell the receiver only if it was told they were firing
        return bool(entry.firing)
    if send_resolved and not resolved <= entry.resolved:
        return True
    return entry.notified_wall_ms + repeat_s * 1000 <= now_ms


class Dispatcher:
    """Holds the aggregation groups and turns due groups into outbox items."""

    def __init__(
        self,
        route: Route,
        receivers: dict[str, ReceiverConfig],
        inhibit_rules: Iterable[InhibitRule],
        store: AlertStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.route = route
        self.receivers = receivers
        self.inhibit_rules = list(inhibit_rules)
        self.store = store
        self.clock = clock
        self.groups: dict[str, Group] = {}
        self._silences: list[Silence] = []
        self._silence_version = -1
        self.muted_fingerprints: set[str] = set()
        # the dispatcher is the only writer of the nflog: read it once, then keep it in step
        self._nflog = store.all_nflog()

    def insert(self, rec: AlertRecord) -> None:
        """Put a firing or resolved alert into the groups of every route it matches."""
        if rec.state == "pending":
            return
        now = self.clock()
        part = self.store.partition_of(rec)
        for r in match_routes(self.route, rec.labels):
            labels = r.group_labels(rec.labels)
            gk = scoped_group_key(group_key(r.path, labels), labels, part)
            g = self.groups.get(gk)
            if g is None:
                g = self.groups[gk] = Group(r, gk, labels, now + r.group_wait_s, part=part)
            g.alerts[rec.fingerprint] = rec

    def forget(self, fingerprint: str) -> None:
        """Drop an alert from every group (e.g. garbage-collected)."""
        for g in self.groups.values():
            g.alerts.pop(fingerprint, None)

    def drop_partitions(self, parts: set[int]) -> None:
        """Forget the groups and notification log of input partitions another alerter now holds."""
        self.groups = {k: g for k, g in self.groups.items() if g.part not in parts}
        self._nflog = {k: e for k, e in self._nflog.items() if e.part not in parts}

    def reload_nflog(self) -> None:
        """Re-read the notification log (partitions were restored into the store)."""
        self._nflog = self.store.all_nflog()

    def next_due(self) -> float | None:
        """When the earliest group is due (wall seconds), if any."""
        return min((g.next_flush for g in self.groups.values()), default=None)

    def silences(self) -> list[Silence]:
        """Current silences, re-read only when the database changed."""
        v = self.store.data_version()
        if v != self._silence_version:
            self._silences = self.store.silences()
            self._silence_version = v
        return self._silences

    def invalidate_silences(self) -> None:
        """Force a re-read (this process wrote a silence: data_version does not see own writes)."""
        self._silence_version = -1

    def flush_due(self, firing_labels: Callable[[], list[dict[str, str]]]) -> list[OutboxItem]:
        """Flush every due group; ``firing_labels()`` gives the labels of all firing alerts (inhibition)."""
        now = self.clock()
        due = [g for g in self.groups.values() if g.next_flush <= now]
        if not due:
            return []
        sources = firing_labels() if self.inhibit_rules else []
        silences = self.silences()
        decided: list[tuple[NflogEntry, OutboxItem | None]] = []
        for g in due:
            d = self._flush(g, now, sources, silences)
            if d is not None:
                decided.append(d)
        # one transaction for every group due now; items are handed out (and sent) only after it
        self.store.record_notifications(decided)
        for entry, _ in decided:
            self._nflog[(entry.receiver, entry.group_key)] = entry
        return [item for _, item in decided if item is not None]

    def _muted(self, rec: AlertRecord, sources: list[dict[str, str]], silences: list[Silence], now_ms: int) -> bool:
        if is_silenced(silences, rec.labels, now_ms):
            return True
        return rec.state == "firing" and inhibited(self.inhibit_rules, rec.labels, sources)

    def _flush(
        self, g: Group, now: float, sources: list[dict[str, str]], silences: list[Silence]
    ) -> tuple[NflogEntry, OutboxItem | None] | None:
        now_ms = int(now * 1000)
        rcv = self.receivers[g.route.receiver]
        alerts = list(g.alerts.values())
        muted = {a.fingerprint for a in alerts if self._muted(a, sources, silences, now_ms)}
        self.muted_fingerprints = (self.muted_fingerprints - {a.fingerprint for a in alerts}) | muted
        live = [a for a in alerts if a.fingerprint not in muted]
        firing = {a.fingerprint for a in live if a.state == "firing"}
        resolved = {a.fingerprint for a in live if a.state == "resolved"}
        entry = self._nflog.get((rcv.name, g.key))
        item = None
        decided = None
        if needs_update(entry, firing, resolved, rcv.send_resolved, g.route.repeat_interval_s, now_ms):
            seq = (entry.seq + 1) if entry else 1
            send = [a for a in live if a.state == "firing" or rcv.send_resolved]
            key = idempotency_key(rcv.name, g.key, seq, sorted(firing), sorted(resolved))
            if send:
                body = notification(rcv.name, g.key, g.labels, sorted(send, key=lambda a: a.fingerprint), key, now_ms)
                item = OutboxItem(key, rcv.name, g.key, body.model_dump_json(), "pending", 0, now_ms, g.part)
            decided = (NflogEntry(rcv.name, g.key, frozenset(firing), frozenset(resolved), now_ms, seq, g.part), item)
        g.next_flush = now + g.route.group_interval_s
        # resolved alerts have been dealt with (sent, or deliberately not): they leave the group
        for a in alerts:
            if a.state == "resolved":
                g.alerts.pop(a.fingerprint, None)
        if not g.alerts:
            del self.groups[g.key]
        return decided
