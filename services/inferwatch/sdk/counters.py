"""The SDK's counters, as returned by ``InferenceLogger.stats()``, and the rate limiter of its warnings."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass


def count_value(counter: itertools.count[int]) -> int:
    """The next value an ``itertools.count`` would return, without consuming it."""
    return int(counter.__reduce__()[1][0])  # type: ignore[index]


# The counters a lane (one logger) and its transport both keep under ``lock``.
LOCKED = ("overflowed", "failed", "spooled", "replayed", "dropped", "corrupt_skipped")


@dataclass
class Counters:
    """Mutable counters shared by the hot path, the delivery thread and the replayer.

    The hot path only calls ``next()`` on ``itertools.count`` objects (atomic under the GIL); the
    rarer counters are updated under ``lock``.

    ``logged_start`` is where ``logged_c`` starts: the logging thread serves delivery reports when
    ``logged_c``'s value is a multiple of 256, and loggers sharing one producer start at staggered
    values so that, with events spread over many loggers, those polls stay spread too (about one
    per 256 events of the whole transport) instead of all loggers reaching 256 in the same round.
    """

    logged_start: int = 0

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.logged_c = itertools.count(self.logged_start)
        self.sampled_out_c = itertools.count()
        self.overflowed = 0  # produce() refused (local queue full): went to the spool instead
        self.failed = 0
        self.spooled = 0
        self.replayed = 0
        self.dropped = 0
        self.corrupt_skipped = 0

    @property
    def logged(self) -> int:
        """Events accepted for delivery so far."""
        return count_value(self.logged_c) - self.logged_start

    def add(self, name: str, n: int = 1) -> None:
        """Add ``n`` to one of the lock-protected counters."""
        with self.lock:
            setattr(self, name, getattr(self, name) + n)

    def snapshot(self) -> dict[str, int]:
        """The lock-protected counters and ``logged``, read together."""
        logged = self.logged
        with self.lock:
            out = {name: getattr(self, name) for name in LOCKED}
        out["logged"] = logged
        return out


class RateLimitedWarning:
    """Lets one message per key through every ``interval_s`` (so an outage does not flood logs).

    The messages held back are counted per key; :meth:`suppressed` hands that count to the next
    message that gets through, so no line hides how much happened since the previous one.
    """

    def __init__(self, interval_s: float = 60.0) -> None:
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()
        self.emitted = 0
        self.held_back = 0

    def due(self, key: str) -> bool:
        """Whether a warning for ``key`` may be logged now (and remember that it was)."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                self._held[key] = self._held.get(key, 0) + 1
                self.held_back += 1
                return False
            self._last[key] = now
            self.emitted += 1
            return True

    def suppressed(self, key: str) -> int:
        """How many ``key`` messages were held back since the last one let through (and reset it)."""
        with self._lock:
            return self._held.pop(key, 0)
