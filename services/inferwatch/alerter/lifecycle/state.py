"""The alerter's durable state in SQLite (``<data_dir>/alerter/state.sqlite``).

Tables: ``alerts`` (pending/firing/recently resolved alerts), ``history`` (anomaly rules' last
values per alert), ``seen`` (absent rules: when each model last sent a snapshot, wall clock, kept
to within :data:`inferwatch.alerter.evaluation.rule_engine.SEEN_PERSIST_S`), ``silences``, ``nflog`` (per receiver and group: which firing/resolved alerts
were last notified, and when) and ``outbox`` (every notification with its idempotency key and
delivery status). A notification is written to the outbox in the same transaction that updates
the nflog, so after a crash it is either re-sent with the same idempotency key or was never
decided, never sent twice under two keys.

WAL mode: the CLI and the HTTP API read and write silences while the alerter runs.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from inferwatch.alerter.errors import SilenceNotFound
from inferwatch.alerter.lifecycle.transitions import AlertRecord
from inferwatch.alerter.route.matchers import parse_matchers
from inferwatch.alerter.silence.silences import Silence
from inferwatch.clock import now_ms

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


@dataclass(frozen=True)
class NflogEntry:
    """What a receiver was last told about a group."""

    receiver: str
    group_key: str
    firing: frozenset[str]
    resolved: frozenset[str]
    notified_wall_ms: int
    seq: int


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
        self._ckpt: sqlite3.Connection | None = None

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
        with self.tx() as db:
            db.executemany("INSERT OR REPLACE INTO seen VALUES (?,?,?,?)", list(seen))
            db.executemany(
                "INSERT OR REPLACE INTO alerts VALUES (?,?,?,?,?)",
                [(r.fingerprint, r.rule, r.state, json.dumps(asdict(r)), wall) for r in upserts],
            )
            db.executemany("DELETE FROM alerts WHERE fingerprint=?", [(fp,) for fp in deletes])
            db.executemany("INSERT OR IGNORE INTO history VALUES (?,?,?)", list(history))
            for fp, keep in history_keep.items():
                db.execute(
                    "DELETE FROM history WHERE fingerprint=? AND event_ms NOT IN "
                    "(SELECT event_ms FROM history WHERE fingerprint=? ORDER BY event_ms DESC LIMIT ?)",
                    (fp, fp, keep),
                )

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
            fps = [r[0] for r in db.execute(
                "SELECT fingerprint FROM alerts WHERE state='resolved' AND updated_wall_ms<?", (older_than_wall_ms,))]
            db.executemany("DELETE FROM alerts WHERE fingerprint=?", [(f,) for f in fps])
        return fps

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
        rows = self._q("SELECT * FROM nflog WHERE receiver=? AND group_key=?", (receiver, group_key))
        if not rows:
            return None
        r = rows[0]
        return NflogEntry(r[0], r[1], frozenset(json.loads(r[2])), frozenset(json.loads(r[3])), r[4], r[5])

    def all_nflog(self) -> dict[tuple[str, str], NflogEntry]:
        """Every nflog entry by (receiver, group_key) (the dispatcher caches them at start)."""
        return {
            (r[0], r[1]): NflogEntry(r[0], r[1], frozenset(json.loads(r[2])), frozenset(json.loads(r[3])), r[4], r[5])
            for r in self._q("SELECT * FROM nflog")
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
                "INSERT OR REPLACE INTO nflog VALUES (?,?,?,?,?,?)",
                [(e.receiver, e.group_key, json.dumps(sorted(e.firing)), json.dumps(sorted(e.resolved)),
                  e.notified_wall_ms, e.seq) for e, _ in decided],
            )
            db.executemany(
                "INSERT OR IGNORE INTO outbox VALUES (?,?,?,?,?,?,?,?,?)",
                [(i.idempotency_key, i.receiver, i.group_key, i.body, i.status, i.attempts, None,
                  i.created_wall_ms, i.created_wall_ms) for _, i in decided if i is not None],
            )

    def pending_outbox(self) -> list[OutboxItem]:
        """Notifications not yet delivered or given up, oldest first (re-sent after a restart)."""
        rows = self._q(
            "SELECT idempotency_key, receiver, group_key, body, status, attempts, created_wall_ms FROM outbox "
            "WHERE status='pending' ORDER BY created_wall_ms")
        return [OutboxItem(*r) for r in rows]

    def mark_outbox(self, key: str, status: str, attempts: int, error: str | None = None) -> None:
        """Record a delivery's progress: ``pending`` (attempts so far), ``delivered``, ``failed``."""
        with self.tx() as db:
            db.execute(
                "UPDATE outbox SET status=?, attempts=?, last_error=?, updated_wall_ms=? WHERE idempotency_key=?",
                (status, attempts, error, now_ms(), key),
            )

    def mark_outbox_many(self, marks: Iterable[tuple[str, str, int, str | None]]) -> None:
        """Several :meth:`mark_outbox` updates ``(key, status, attempts, error)`` in ONE transaction."""
        now = now_ms()
        rows = [(status, attempts, error, now, key) for key, status, attempts, error in marks]
        if not rows:
            return
        with self.tx() as db:
            db.executemany(
                "UPDATE outbox SET status=?, attempts=?, last_error=?, updated_wall_ms=? WHERE idempotency_key=?", rows)

    def outbox_counts(self) -> dict[str, int]:
        """Outbox items by status."""
        return dict(self._q("SELECT status, count(*) FROM outbox GROUP BY status"))  # type: ignore[arg-type]

    def gc_outbox(self, older_than_wall_ms: int) -> None:
        """Drop finished outbox rows older than ``older_than_wall_ms``."""
        with self.tx() as db:
            db.execute("DELETE FROM outbox WHERE status!='pending' AND updated_wall_ms<?", (older_than_wall_ms,))
