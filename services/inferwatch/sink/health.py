"""The sink's health: store state, dead-letter state, consumer lag, rows written — shown by ``GET /healthz``."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SinkHealth:
    """Counters the sink updates and the API reads (from another thread, hence the lock)."""

    store_kind: str = "?"
    store_ok: bool = True
    store_error: str | None = None
    consecutive_failures: int = 0
    lag: int | None = None
    rows_written: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    deadletter_ok: bool = True
    deadletter_error: str | None = None
    deadletter_failures: int = 0  # dead letters Kafka refused or did not confirm, every attempt counted
    messages_consumed: int = 0
    last_commit_ms: int | None = None
    started_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def store_failed(self, error: str) -> None:
        with self._lock:
            self.store_ok = False
            self.store_error = error[:500]
            self.consecutive_failures += 1

    def store_recovered(self) -> None:
        with self._lock:
            self.store_ok = True
            self.store_error = None
            self.consecutive_failures = 0

    def deadletter_failed(self, error: str, n: int) -> None:
        """``n`` dead letters were not confirmed by Kafka: their range is not committed (retried)."""
        with self._lock:
            self.deadletter_ok = False
            self.deadletter_error = error[:500]
            self.deadletter_failures += n

    def deadletter_recovered(self) -> None:
        with self._lock:
            self.deadletter_ok = True
            self.deadletter_error = None

    def wrote(self, table: str, n: int) -> None:
        with self._lock:
            self.rows_written[table] = self.rows_written.get(table, 0) + n

    def committed(self) -> None:
        with self._lock:
            self.last_commit_ms = int(time.time() * 1000)

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able view; ``ok`` is False while the store is failing or a dead letter is unwritten."""
        with self._lock:
            return {
                "ok": self.store_ok and self.deadletter_ok,
                "store": {
                    "kind": self.store_kind,
                    "ok": self.store_ok,
                    "error": self.store_error,
                    "consecutive_failures": self.consecutive_failures,
                },
                "lag": self.lag,
                "rows_written": dict(self.rows_written),
                "dead_letters": self.dead_letters,
                "deadletters": {
                    "ok": self.deadletter_ok,
                    "error": self.deadletter_error,
                    "failures_total": self.deadletter_failures,
                },
                "messages_consumed": self.messages_consumed,
                "last_commit_ms": self.last_commit_ms,
                "started_ms": self.started_ms,
            }
