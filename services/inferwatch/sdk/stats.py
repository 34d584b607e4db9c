"""The SDK's counters, as returned by ``InferenceLogger.stats()``."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass


def count_value(counter: itertools.count[int]) -> int:
    """The next value an ``itertools.count`` would return, without consuming it."""
    return int(counter.__reduce__()[1][0])  # type: ignore[index]


@dataclass
class Counters:
    """Mutable counters shared by the hot path, the delivery thread and the replayer.

    The hot path only calls ``next()`` on ``itertools.count`` objects (atomic under the GIL); the
    rarer counters are updated under ``lock``.
    """

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.logged_c = itertools.count()
        self.sampled_out_c = itertools.count()
        self.overflowed = 0  # produce() refused (local queue full): went to the spool instead
        self.failed = 0
        self.spooled = 0
        self.replayed = 0
        self.dropped = 0
        self.corrupt_skipped = 0

    def add(self, name: str, n: int = 1) -> None:
        """Add ``n`` to one of the lock-protected counters."""
        with self.lock:
            setattr(self, name, getattr(self, name) + n)


class RateLimitedWarning:
    """Lets one message per key through every ``interval_s`` (so an outage does not flood logs)."""

    def __init__(self, interval_s: float = 60.0) -> None:
        self.interval_s = interval_s
        self._last: dict[str, float] = {}

    def due(self, key: str) -> bool:
        """Whether a warning for ``key`` may be logged now (and remember that it was)."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            return False
        self._last[key] = now
        return True
