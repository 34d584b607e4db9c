"""The alerter's durable state in SQLite (``<data_dir>/alerter/state.sqlite``).

Tables: ``alerts`` (pending/firing/recently resolved alerts), ``history`` (anomaly rules' last
values per alert), ``seen`` (absent rules: when each model last sent a snapshot, wall clock, kept
to within :data:`inferwatch.alerter.evaluation.rule_engine.SEEN_PERSIST_S`), ``silences``, ``nflog`` (per receiver and group: which firing/resolved alerts
were last notified, and when) and ``outbox`` (every notification with its idempotency key and
delivery status). A notification is written to the outbox in the same transaction that updates
the nflog, so after a crash it is either re-sent with the same idempotency key or was never
decided, never sent twice under two keys.

WAL mode: the CLI and the HTTP API read and write silences while the alerter runs.

Partitions (several alerters, issue #13): every row but a silence belongs to one partition of the
alerter's input (column ``part``: the partition of the snapshots that made it; ``-1`` when unknown,
e.g. an engine driven without Kafka). The file is this alerter's local cache of the partitions it
holds; the source of truth is the changelog topic (:mod:`inferwatch.alerter.lifecycle.changelog`,
:mod:`inferwatch.alerter.lifecycle.state_topic`). With :meth:`AlertStore.track_changes` on, every
write remembers the keys it touched (:meth:`AlertStore.take_dirty`); the service writes those rows
to the changelog, as they are then, before it commits the input offsets. On assignment a
partition's rows are replaced by the changelog's (:meth:`AlertStore.replace_partition`); on
revocation they are dropped (:meth:`AlertStore.drop_partitions`).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from inferwatch.alerter.errors import SilenceNotFound
from inferwatch.alerter.lifecycle.changelog import (
    AlertRow,
    HistRow,
    NflogRow,
    OutboxRow,
    SeenRow,
    StateKey,
    state_key,
)
from inferwatch.alerter.lifecycle.transitions import AlertRecord
from inferwatch.alerter.route.matchers import parse_matchers
from inferwatch.alerter.silence.silences import Silence
from inferwatch.clock import now_ms

log = logging.getLogger(__name__)

NO_PART = -1
"""``part`` of a row whose input partition is unknown (an engine driven without Kafka): never changelogged."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
  fingerprint TEXT PRIMARY KEY, rule TEXT NOT NULL, state TEXT NOT NULL, record TEXT NOT NULL,
  updated_wall_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS history (
  fingerprint TEXT NOT NULL, event_ms INTEGER NOT NULL, value REAL NOT NULL,
  PRIMARY KEY (fingerprint, event_ms));
CREATE TABLE IF NOT EXISTS seen (
  rule TEXT NOT NULL, model TEXT NOT NULL, model_version TEXT NOT NULL, last_wall_ms INTEGER NOT NULL,
  PRIMARY KEY (rule, model, model_version));
CREATE TABLE IF NOT EXISTS silences (
  id TEXT PRIMARY KEY, matchers TEXT NOT NULL, starts_at_ms INTEGER NOT NULL, ends_at_ms INTEGER NOT NULL,
  created_by TEXT NOT NULL, comment TEXT NOT NULL, created_at_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS nflog (
  receiver TEXT NOT NULL, group_key TEXT NOT NULL, firing TEXT NOT NULL, resolved TEXT NOT NULL,
  notified_wall_ms INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (receiver, group_key));
CREATE TABLE IF NOT EXISTS outbox (
  idempotency_key TEXT PRIMARY KEY, receiver TEXT NOT NULL, group_key TEXT NOT NULL, body TEXT NOT NULL,
  status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,
  created_wall_ms INTEGER NOT NULL, updated_wall_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_status ON outbox(status);
"""
# the input partition of each row (added in place to a file made before issue #13)
_PARTITIONED = ("alerts", "history", "seen", "nflog", "outbox")


@dataclass(frozen=True)
class NflogEntry:
    """What a receiver was last told about a group."""

    receiver: str
    group_key: str
    firing: frozenset[str]
    resolved: frozenset[str]
    notified_wall_ms: int
    seq: int
    part: int = NO_PART  # the input partition of the group (its state moves with it)


@dataclass(frozen=True)
class OutboxItem:
    """A decided notification and how its delivery went so far."""

    idempotency_key: str
    receiver: str
    group_key: str
    body: str
    status: str
    attempts: int
    created_wall_ms: int
    part: int = NO_PART  # the input partition of the group (its state moves with it)


def state_path(data_dir: Path | str) -> Path:
    """Where the state database of a deployment lives."""
    return Path(data_dir) / "alerter" / "state.sqlite"


class AlertStore:
    """Thread-safe access to the state database (one connection, one lock)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash (what restarts are about); only an OS crash can
        # lose the last transactions, and then the un-committed Kafka offsets re-deliver them.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        for table in _PARTITIONED:
            cols = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
            if "part" not in cols:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN part INTEGER NOT NULL DEFAULT {NO_PART}")
        self._ckpt: sqlite3.Connection | None = None
        self._scope: int | None = None  # the input partition being evaluated (partition_scope)
        self._model_part: dict[str, int] = {}  # model -> the input partition its snapshots come from
        self._tracking = False
        self._dirty: dict[StateKey, None] = {}  # rows written since take_dirty (an ordered set)

    def disable_autocheckpoint(self) -> None:
        """Leave WAL checkpoints (the only fsyncs in NORMAL mode) to :meth:`checkpoint`.

        The alerter calls this and runs :meth:`checkpoint` in a worker thread, so a slow fsync never
        holds the event loop (and every webhook with it) inside a commit.
        """
        with self._lock:
            self._db.execute("PRAGMA wal_autocheckpoint=0")

    def checkpoint(self) -> None:
        """A PASSIVE WAL checkpoint on a second connection (writers on the first are not blocked)."""
        if self._ckpt is None:
            self._ckpt = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None,
                                         timeout=30.0)
        self._ckpt.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._ckpt is not None:
                self._ckpt.close()
                self._ckpt = None
            self._db.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- partitions ---------------------------------------------------------------------------

    def track_changes(self, on: bool = True) -> None:
        """Remember the key of every row written from now on (the service's changelog reads them)."""
        self._tracking = on

    @contextmanager
    def partition_scope(self, part: int) -> Iterator[None]:
        """Rows written inside belong to input partition ``part`` (the models evaluated there are noted)."""
        with self._lock:
            prev, self._scope = self._scope, part
            try:
                yield
            finally:
                self._scope = prev

    def note_model(self, model: str, part: int) -> None:
        """``model``'s snapshots come from input partition ``part``."""
        self._model_part[model] = part

    def partition_of(self, rec: AlertRecord) -> int:
        """The input partition an alert belongs to (its model's), :data:`NO_PART` when unknown."""
        if self._scope is not None:
            return self._scope
        if rec.model is not None and rec.model in self._model_part:
            return self._model_part[rec.model]
        rows = self._q("SELECT part FROM alerts WHERE fingerprint=?", (rec.fingerprint,))
        return int(rows[0][0]) if rows else NO_PART

    def _part(self, model: str | None, fallback_sql: str | None = None, args: Iterable[Any] = ()) -> int:
        if self._scope is not None:
            return self._scope
        if model is not None and model in self._model_part:
            return self._model_part[model]
        if fallback_sql is not None:
            rows = self._db.execute(fallback_sql, tuple(args)).fetchall()
            if rows:
                return int(rows[0][0])
        return NO_PART

    def _touch(self, part: int, kind: Any, *ids: str) -> None:
        if self._tracking and part != NO_PART:
            self._dirty[state_key(part, kind, *ids)] = None

    def mark_dirty(self, keys: Iterable[StateKey]) -> None:
        """Write these rows to the changelog again (their last write was not confirmed)."""
        with self._lock:
            for k in keys:
                self._dirty[k] = None

    def take_dirty(self) -> list[StateKey]:
        """The keys of the rows written since the last call (each once, in write order)."""
        with self._lock:
            keys, self._dirty = list(self._dirty), {}
        return keys

    @property
    def has_dirty(self) -> bool:
        """Whether rows were written that the changelog does not have yet."""
        return bool(self._dirty)

    def row(self, key: StateKey) -> AlertRow | HistRow | SeenRow | NflogRow | OutboxRow | None:
        """The current row of ``key`` as a changelog record carries it (``None``: no such row)."""
        k, ids = key.kind, key.ids
        if k == "alert":
            rows = self._q("SELECT record, updated_wall_ms FROM alerts WHERE fingerprint=? AND part=?",
                           (ids[0], key.part))
            return AlertRow(record=AlertRecord(**json.loads(rows[0][0])), updated_wall_ms=rows[0][1]) if rows else None
        if k == "hist":
            rows = self._q("SELECT event_ms, value FROM history WHERE fingerprint=? AND part=? ORDER BY event_ms",
                           (ids[0], key.part))
            return HistRow(points=[(int(a), float(b)) for a, b in rows]) if rows else None
        if k == "seen":
            rows = self._q("SELECT last_wall_ms FROM seen WHERE rule=? AND model=? AND model_version=? AND part=?",
                           (*ids, key.part))
            return SeenRow(last_wall_ms=rows[0][0]) if rows else None
        if k == "nflog":
            rows = self._q("SELECT firing, resolved, notified_wall_ms, seq FROM nflog "
                           "WHERE receiver=? AND group_key=? AND part=?", (*ids, key.part))
            if not rows:
                return None
            r = rows[0]
            return NflogRow(firing=json.loads(r[0]), resolved=json.loads(r[1]), notified_wall_ms=r[2], seq=r[3])
        rows = self._q("SELECT receiver, group_key, body, status, attempts, last_error, created_wall_ms, "
                       "updated_wall_ms FROM outbox WHERE idempotency_key=? AND part=?", (ids[0], key.part))
        if not rows:
            return None
        r = rows[0]
        return OutboxRow(receiver=r[0], group_key=r[1], body=r[2], status=r[3], attempts=r[4], last_error=r[5],
                         created_wall_ms=r[6], updated_wall_ms=r[7])

    def _delete_parts(self, db: sqlite3.Connection, parts: Iterable[int] | None) -> None:
        for table in _PARTITIONED:
            if parts is None:
                db.execute(f"DELETE FROM {table}")
            else:
                db.executemany(f"DELETE FROM {table} WHERE part=?", [(p,) for p in parts])

    def drop_partitions(self, parts: Iterable[int] | None = None) -> None:
        """Forget the rows of input partitions ``parts`` (``None``: of every partition, legacy rows included)."""
        parts = None if parts is None else list(parts)
        with self.tx() as db:
            self._delete_parts(db, parts)
            if parts is None:
                self._model_part.clear()
            else:
                self._model_part = {m: p for m, p in self._model_part.items() if p not in parts}
        with self._lock:
            self._dirty = {k: None for k in self._dirty if parts is not None and k.part not in parts}

    def replace_partition(self, part: int, rows: Mapping[StateKey, Any]) -> None:
        """Make partition ``part``'s rows exactly ``rows`` (the changelog's last record per key; ``None``
        values are tombstones), in one transaction. Nothing of it is marked dirty: it is what Kafka has."""
        with self.tx() as db:
            self._delete_parts(db, [part])
            for key, row in rows.items():
                if row is None or key.part != part:
                    continue
                ids = key.ids
                if isinstance(row, AlertRow):
                    rec = row.record
                    db.execute("INSERT OR REPLACE INTO alerts (fingerprint, rule, state, record, updated_wall_ms, part) "
                               "VALUES (?,?,?,?,?,?)",
                               (rec.fingerprint, rec.rule, rec.state, json.dumps(asdict(rec)), row.updated_wall_ms, part))
                    if rec.model is not None:
                        self._model_part[rec.model] = part
                elif isinstance(row, HistRow):
                    db.executemany("INSERT OR REPLACE INTO history (fingerprint, event_ms, value, part) VALUES (?,?,?,?)",
                                   [(ids[0], t, v, part) for t, v in row.points])
                elif isinstance(row, SeenRow):
                    db.execute("INSERT OR REPLACE INTO seen (rule, model, model_version, last_wall_ms, part) "
                               "VALUES (?,?,?,?,?)", (*ids, row.last_wall_ms, part))
                    self._model_part[ids[1]] = part
                elif isinstance(row, NflogRow):
                    db.execute("INSERT OR REPLACE INTO nflog (receiver, group_key, firing, resolved, notified_wall_ms, "
                               "seq, part) VALUES (?,?,?,?,?,?,?)",
                               (*ids, json.dumps(sorted(row.firing)), json.dumps(sorted(row.resolved)),
                                row.notified_wall_ms, row.seq, part))
                elif isinstance(row, OutboxRow):
                    db.execute("INSERT OR REPLACE INTO outbox (idempotency_key, receiver, group_key, body, status, "
                               "attempts, last_error, created_wall_ms, updated_wall_ms, part) VALUES (?,?,?,?,?,?,?,?,?,?)",
                               (ids[0], row.receiver, row.group_key, row.body, row.status, row.attempts,
                                row.last_error, row.created_wall_ms, row.updated_wall_ms, part))
        with self._lock:
            self._dirty = {k: None for k in self._dirty if k.part != part}

    def _q(self, sql: str, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    def data_version(self) -> int:
        """Changes when another connection commits (cheap cache invalidation for silences)."""
        return int(self._q("PRAGMA data_version")[0][0])

    # --- alerts and history -------------------------------------------------------------------

    def load_alerts(self) -> dict[str, AlertRecord]:
        """Every stored alert by fingerprint."""
        return {fp: AlertRecord(**json.loads(rec)) for fp, rec in self._q("SELECT fingerprint, record FROM alerts")}

    def list_alerts(self, states: Iterable[str] = ("pending", "firing", "resolved")) -> list[AlertRecord]:
        """Stored alerts in ``states``, newest first."""
        states = list(states)
        rows = self._q(
            f"SELECT record FROM alerts WHERE state IN ({','.join('?' * len(states))}) ORDER BY updated_wall_ms DESC",
            states,
        )
        return [AlertRecord(**json.loads(r[0])) for r in rows]

    def save_evaluations(
        self,
        upserts: Iterable[AlertRecord],
        deletes: Iterable[str],
        history: Iterable[tuple[str, int, float]],
        history_keep: dict[str, int],
        seen: Iterable[tuple[str, str, str, int]] = (),
    ) -> None:
        """Persist one batch of evaluations atomically (before the Kafka offsets are committed).

        ``seen``: ``(rule, model, model_version, last_wall_ms)`` of absent rules (version ``""``
        for a rule that watches whole models)."""
        wall = now_ms()
        upserts = list(upserts)
        with self.tx() as db:
            seen_rows = [(rule, model, ver, ms, self._part(model)) for rule, model, ver, ms in seen]
            db.executemany("INSERT OR REPLACE INTO seen (rule, model, model_version, last_wall_ms, part) "
                           "VALUES (?,?,?,?,?)", seen_rows)
            alert_rows = [
                (r.fingerprint, r.rule, r.state, json.dumps(asdict(r)), wall,
                 self._part(r.model, "SELECT part FROM alerts WHERE fingerprint=?", (r.fingerprint,)))
                for r in upserts
            ]
            db.executemany("INSERT OR REPLACE INTO alerts (fingerprint, rule, state, record, updated_wall_ms, part) "
                           "VALUES (?,?,?,?,?,?)", alert_rows)
            gone = [(fp, self._part(None, "SELECT part FROM alerts WHERE fingerprint=?", (fp,))) for fp in deletes]
            db.executemany("DELETE FROM alerts WHERE fingerprint=?", [(fp,) for fp, _ in gone])
            hist_part: dict[str, int] = {}
            for fp, _, _ in history:
                if fp not in hist_part:
                    hist_part[fp] = self._part(None, "SELECT part FROM alerts WHERE fingerprint=?", (fp,))
            db.executemany("INSERT OR IGNORE INTO history (fingerprint, event_ms, value, part) VALUES (?,?,?,?)",
                           [(fp, t, v, hist_part[fp]) for fp, t, v in history])
            for fp, keep in history_keep.items():
                db.execute(
                    "DELETE FROM history WHERE fingerprint=? AND event_ms NOT IN "
                    "(SELECT event_ms FROM history WHERE fingerprint=? ORDER BY event_ms DESC LIMIT ?)",
                    (fp, fp, keep),
                )
            if self._scope is not None:  # later writes outside a scope (ticks, reloads) find the partition
                self._model_part.update({r.model: self._scope for r in upserts if r.model is not None})
                self._model_part.update({row[1]: self._scope for row in seen_rows})
            for rule, model, ver, _, part in seen_rows:
                self._touch(part, "seen", rule, model, ver)
            for row in alert_rows:
                self._touch(row[5], "alert", row[0])
            for fp, part in gone:
                self._touch(part, "alert", fp)
            for fp, part in hist_part.items():
                self._touch(part, "hist", fp)

    def load_seen(self) -> dict[tuple[str, str, str], int]:
        """Absent rules' last sightings: ``(rule, model, model_version)`` → wall-clock ms."""
        return {(r[0], r[1], r[2]): int(r[3]) for r in self._q("SELECT * FROM seen")}

    def history(self, fingerprint: str, limit: int) -> list[float]:
        """The last ``limit`` values of an alert's series, oldest first."""
        rows = self._q(
            "SELECT value FROM history WHERE fingerprint=? ORDER BY event_ms DESC LIMIT ?", (fingerprint, limit)
        )
        return [r[0] for r in reversed(rows)]

    def gc_resolved(self, older_than_wall_ms: int) -> list[str]:
        """Forget resolved alerts last touched before ``older_than_wall_ms``; returns their fingerprints."""
        with self.tx() as db:
            rows = db.execute("SELECT fingerprint, part FROM alerts WHERE state='resolved' AND updated_wall_ms<?",
                              (older_than_wall_ms,)).fetchall()
            db.executemany("DELETE FROM alerts WHERE fingerprint=?", [(r[0],) for r in rows])
            for fp, part in rows:
                self._touch(part, "alert", fp)
        return [r[0] for r in rows]

    # --- silences -----------------------------------------------------------------------------

    def add_silence(self, s: Silence) -> Silence:
        """Store a new silence."""
        with self.tx() as db:
            db.execute(
                "INSERT INTO silences VALUES (?,?,?,?,?,?,?)",
                (s.id, json.dumps([m.as_dict() for m in s.matchers]), s.starts_at_ms, s.ends_at_ms,
                 s.created_by, s.comment, s.created_at_ms),
            )
        return s

    def merge_silence(self, s: Silence) -> bool:
        """Take a silence from the silences topic: new ids are added; a known one keeps the earlier
        start and the earlier end (a silence is only ever shortened, so every copy converges on the
        same value whatever the order). Returns whether anything changed."""
        with self.tx() as db:
            n = db.execute(
                "INSERT OR IGNORE INTO silences VALUES (?,?,?,?,?,?,?)",
                (s.id, json.dumps([m.as_dict() for m in s.matchers]), s.starts_at_ms, s.ends_at_ms,
                 s.created_by, s.comment, s.created_at_ms)).rowcount
            if n == 0:
                n = db.execute(
                    "UPDATE silences SET starts_at_ms=MIN(starts_at_ms, ?), ends_at_ms=MIN(ends_at_ms, ?) "
                    "WHERE id=? AND (starts_at_ms>? OR ends_at_ms>?)",
                    (s.starts_at_ms, s.ends_at_ms, s.id, s.starts_at_ms, s.ends_at_ms)).rowcount
        return n > 0

    def silences(self, include_expired: bool = False) -> list[Silence]:
        """Silences, newest first (expired ones only when asked)."""
        now = now_ms()
        sql = "SELECT * FROM silences" + ("" if include_expired else " WHERE ends_at_ms>?")
        rows = self._q(sql + " ORDER BY created_at_ms DESC", () if include_expired else (now,))
        return [Silence(r[0], parse_matchers(json.loads(r[1])), r[2], r[3], r[4], r[5], r[6]) for r in rows]

    def expire_silence(self, silence_id: str) -> Silence:
        """End a silence now; raises :class:`SilenceNotFound`."""
        now = now_ms()
        with self.tx() as db:
            n = db.execute(
                "UPDATE silences SET ends_at_ms=MIN(ends_at_ms, ?), starts_at_ms=MIN(starts_at_ms, ?) WHERE id=?",
                (now, now, silence_id)).rowcount
        if n == 0:
            raise SilenceNotFound(silence_id)
        return next(s for s in self.silences(include_expired=True) if s.id == silence_id)

    # --- notification log and outbox ----------------------------------------------------------

    def nflog(self, receiver: str, group_key: str) -> NflogEntry | None:
        """The last notification decided for (receiver, group), if any."""
        rows = self._q("SELECT receiver, group_key, firing, resolved, notified_wall_ms, seq, part FROM nflog "
                       "WHERE receiver=? AND group_key=?", (receiver, group_key))
        if not rows:
            return None
        r = rows[0]
        return NflogEntry(r[0], r[1], frozenset(json.loads(r[2])), frozenset(json.loads(r[3])), r[4], r[5], r[6])

    def all_nflog(self) -> dict[tuple[str, str], NflogEntry]:
        """Every nflog entry by (receiver, group_key) (the dispatcher caches them at start)."""
        return {
            (r[0], r[1]): NflogEntry(r[0], r[1], frozenset(json.loads(r[2])), frozenset(json.loads(r[3])), r[4], r[5],
                                     r[6])
            for r in self._q("SELECT receiver, group_key, firing, resolved, notified_wall_ms, seq, part FROM nflog")
        }

    def record_notification(self, entry: NflogEntry, item: OutboxItem | None) -> None:
        """Update the nflog and (when something is to be sent) add the outbox item, atomically."""
        self.record_notifications([(entry, item)])

    def record_notifications(self, decided: Iterable[tuple[NflogEntry, OutboxItem | None]]) -> None:
        """Several nflog updates and their outbox items in ONE transaction (one commit per flush)."""
        decided = list(decided)
        if not decided:
            return
        with self.tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO nflog (receiver, group_key, firing, resolved, notified_wall_ms, seq, part) "
                "VALUES (?,?,?,?,?,?,?)",
                [(e.receiver, e.group_key, json.dumps(sorted(e.firing)), json.dumps(sorted(e.resolved)),
                  e.notified_wall_ms, e.seq, e.part) for e, _ in decided],
            )
            db.executemany(
                "INSERT OR IGNORE INTO outbox (idempotency_key, receiver, group_key, body, status, attempts, "
                "last_error, created_wall_ms, updated_wall_ms, part) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(i.idempotency_key, i.receiver, i.group_key, i.body, i.status, i.attempts, None,
                  i.created_wall_ms, i.created_wall_ms, i.part) for _, i in decided if i is not None],
            )
            for e, i in decided:
                self._touch(e.part, "nflog", e.receiver, e.group_key)
                if i is not None:
                    self._touch(i.part, "outbox", i.idempotency_key)

    def pending_outbox(self, parts: Iterable[int] | None = None) -> list[OutboxItem]:
        """Notifications not yet delivered or given up, oldest first (re-sent after a restart, or by the
        alerter that took their partition over); only those of input partitions ``parts`` when given."""
        rows = self._q(
            "SELECT idempotency_key, receiver, group_key, body, status, attempts, created_wall_ms, part FROM outbox "
            "WHERE status='pending' ORDER BY created_wall_ms")
        wanted = None if parts is None else set(parts)
        return [OutboxItem(*r) for r in rows if wanted is None or r[7] in wanted]

    def mark_outbox(self, key: str, status: str, attempts: int, error: str | None = None) -> None:
        """Record a delivery's progress: ``pending`` (attempts so far), ``delivered``, ``failed``."""
        self.mark_outbox_many([(key, status, attempts, error)])

    def mark_outbox_many(self, marks: Iterable[tuple[str, str, int, str | None]]) -> None:
        """Several :meth:`mark_outbox` updates ``(key, status, attempts, error)`` in ONE transaction."""
        now = now_ms()
        rows = [(status, attempts, error, now, key) for key, status, attempts, error in marks]
        if not rows:
            return
        with self.tx() as db:
            db.executemany(
                "UPDATE outbox SET status=?, attempts=?, last_error=?, updated_wall_ms=? WHERE idempotency_key=?", rows)
            if self._tracking:
                for _, _, _, _, key in rows:
                    for (part,) in db.execute("SELECT part FROM outbox WHERE idempotency_key=?", (key,)):
                        self._touch(part, "outbox", key)

    def outbox_counts(self) -> dict[str, int]:
        """Outbox items by status."""
        return dict(self._q("SELECT status, count(*) FROM outbox GROUP BY status"))  # type: ignore[arg-type]

    def gc_outbox(self, older_than_wall_ms: int) -> None:
        """Drop finished outbox rows older than ``older_than_wall_ms``."""
        with self.tx() as db:
            rows = db.execute("SELECT idempotency_key, part FROM outbox WHERE status!='pending' AND updated_wall_ms<?",
                              (older_than_wall_ms,)).fetchall()
            db.executemany("DELETE FROM outbox WHERE idempotency_key=?", [(r[0],) for r in rows])
            for key, part in rows:
                self._touch(part, "outbox", key)
