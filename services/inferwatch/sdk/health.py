"""What a transport tells the operator about Kafka: one warning per change of state, not per event.

States of one transport (all the loggers sharing it): **up**, **suspect** (librdkafka reported a
connection error; the delivery thread probes the broker with a metadata request before saying
anything, since idle disconnects and a broker's rolling restart report the same errors), **down**
(a probe or a delivery failed), and, within an outage or a burst, **spooling** and **spool full**.

Lines (logger ``inferwatch.sdk``, level WARNING), each at most once per ``interval_s`` per kind and
transport; a line that was held back is counted into the next one of its kind:

* down      -- "Kafka at B unreachable (reason): N events in the local queue, L loggers share this transport, …"
* spooling  -- "spooling events to DIR (why): N spooled so far, the spool holds X of Y bytes"
* spool full -- "dropping events (why): N dropped so far"
* recovered -- "Kafka at B reachable again after S s: N spooled and M dropped during the outage, …"

librdkafka's own connection chatter goes to ``inferwatch.sdk.rdkafka`` at DEBUG (see
:class:`LibrdkafkaLog`): the lines above say the same once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from inferwatch.sdk.counters import RateLimitedWarning

log = logging.getLogger("inferwatch.sdk")
rdkafka_log = logging.getLogger("inferwatch.sdk.rdkafka")
# librdkafka's own log lines reach the application's handlers if it configured logging, but never
# fall through to stderr by default.
rdkafka_log.addHandler(logging.NullHandler())

# librdkafka facilities that report a broker connection failing or being retried: the transport's
# down/recovered lines say the same once per outage, so these stay at DEBUG.
_CONNECTION_FACILITIES = frozenset({
    "FAIL", "BROKERFAIL", "ERROR", "REQTMOUT", "TIMEOUT", "CONNECT", "DISCONNECT", "RECV", "SEND",
    # the idempotent producer retrying for its producer id while a restarted broker loads
    "GETPID",
})


class LibrdkafkaLog:
    """The ``logger`` handed to librdkafka: its lines go to ``inferwatch.sdk.rdkafka``.

    Connection chatter goes at DEBUG; any other facility keeps its level at most once per
    ``interval_s`` (then DEBUG), so a misconfiguration still shows once without repeating.
    confluent-kafka calls ``log(level, "%s [%s] %s", facility, client_name, message)``.
    """

    def __init__(self, interval_s: float = 60.0) -> None:
        self._limit = RateLimitedWarning(interval_s)

    def log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> None:
        """Forward one librdkafka line (see the class docstring for its level)."""
        fac = str(args[0]) if args else ""
        if level > logging.DEBUG and (fac in _CONNECTION_FACILITIES or not self._limit.due(fac)):
            level = logging.DEBUG
        rdkafka_log.log(level, msg, *args)


class Health:
    """The state machine and the warnings of one transport (see the module docstring).

    ``facts()`` returns the transport's numbers for the lines: ``in_queue``, ``loggers``,
    ``spooled``, ``dropped``, ``spool_bytes``, ``spool_max_bytes``, ``spool_dir``.
    Callbacks come from librdkafka's callbacks (the logging thread or the delivery thread) and
    the replayer, hence the lock.
    """

    PROBE_FIRST_S = 0.0
    PROBE_MAX_BACKOFF_S = 5.0

    def __init__(self, bootstrap: str, timeout_ms: int, facts: Callable[[], dict[str, Any]],
                 interval_s: float = 60.0) -> None:
        self.bootstrap = bootstrap
        self.timeout_ms = timeout_ms
        self._facts = facts
        self.warn = RateLimitedWarning(interval_s)
        self._lock = threading.Lock()
        self.down = False
        self.suspect = False
        self.spooling = False
        self.full = False
        self.outages = 0
        self.reason = ""
        # Set when the transport closes: its last probes say nothing (the spooling line, if any,
        # tells what happened to the events).
        self.closing = False
        self._down_at = 0.0
        self._at_down: dict[str, Any] = {}
        self._next_probe = 0.0
        self._backoff = 0.5

    # -- evidence ------------------------------------------------------------------------------
    def trouble(self, reason: str) -> None:
        """librdkafka reported a connection error: probe before saying anything."""
        with self._lock:
            self.reason = reason
            if not self.down and not self.suspect:
                self.suspect = True
                self._next_probe = time.monotonic() + self.PROBE_FIRST_S
                self._backoff = 0.5

    def delivery_failed(self, reason: str) -> None:
        """A delivery failed after librdkafka's retries: Kafka is down for this transport."""
        if not self.down:  # every queued event fails in an outage: no lock once it is known
            self._went_down(reason)

    def probe_due(self) -> bool:
        """Whether the delivery thread should send a probe now."""
        return (self.suspect or self.down) and not self.closing and time.monotonic() >= self._next_probe

    def probe_failed(self, reason: str) -> None:
        """A metadata request found no broker."""
        with self._lock:
            self._next_probe = time.monotonic() + self._backoff
            self._backoff = min(self.PROBE_MAX_BACKOFF_S, self._backoff * 2)
        self._went_down(self.reason or reason)  # librdkafka's own words (e.g. "Connection refused") first

    def probe_ok(self) -> None:
        """A metadata request was answered: up again (a recovered line if it was down)."""
        with self._lock:
            self.suspect = False
            self.reason = ""
            if not self.down:
                return
            self.down = False
            f = self._facts()
            at = self._at_down
            spooled, dropped = f["spooled"] - at["spooled"], f["dropped"] - at["dropped"]
            took = time.monotonic() - self._down_at
            self.spooling = self.full = False
            if self.warn.due("recovered"):
                more = self.warn.suppressed("recovered")
                log.warning(
                    "inferwatch: Kafka at %s reachable again after %.1f s: %d events spooled and %d dropped during "
                    "the outage; %d bytes in the spool are replayed in the background%s",
                    self.bootstrap, took, spooled, dropped, f["spool_bytes"], _more(more, "recovery"),
                )

    def _went_down(self, reason: str) -> None:
        with self._lock:
            self.suspect = False
            if self.down or self.closing:
                return
            self.down = True
            self.outages += 1
            self._down_at = time.monotonic()
            self._next_probe = self._down_at + self._backoff
            f = self._facts()
            self._at_down = f
            if self.warn.due("down"):
                more = self.warn.suppressed("down")
                log.warning(
                    "inferwatch: Kafka at %s unreachable (%s): %d events in the local queue; events are spooled "
                    "once their delivery times out (message.timeout.ms=%d); %d loggers share this transport%s",
                    self.bootstrap, reason, f["in_queue"], self.timeout_ms, f["loggers"], _more(more, "outage"),
                )

    # -- consequences --------------------------------------------------------------------------
    def spooled(self, why: str) -> None:
        """An event went to the spool (a warning the first time in an outage or a burst)."""
        if self.spooling:
            return
        with self._lock:
            if self.spooling:
                return
            self.spooling = True
            if self.warn.due("spooling"):
                f = self._facts()
                more = self.warn.suppressed("spooling")
                log.warning(
                    "inferwatch: spooling events to %s (%s): %d spooled so far, the spool holds %d of %d bytes; "
                    "they are replayed when Kafka takes them again%s",
                    f["spool_dir"], why, f["spooled"], f["spool_bytes"], f["spool_max_bytes"], _more(more, "episode"),
                )

    def dropped(self, why: str, where: str) -> None:
        """An event was dropped for lack of room (spool full or absent)."""
        if self.full:
            return
        with self._lock:
            if self.full:
                return
            self.full = True
            if self.warn.due("spool_full"):
                f = self._facts()
                more = self.warn.suppressed("spool_full")
                log.warning(
                    "inferwatch: dropping events (%s and %s): %d dropped so far; see InferenceLogger.stats()%s",
                    why, where, f["dropped"], _more(more, "episode"),
                )

    def spool_drained(self, replayed: int) -> None:
        """The replayer emptied the spool: the next spooling or drop is a new episode."""
        with self._lock:
            if self.down or not (self.spooling or self.full):
                return
            self.spooling = self.full = False
        log.info("inferwatch: spool drained (%d events replayed so far)", replayed)


def _more(n: int, what: str) -> str:
    return f" ({n} more such {what} line(s) held back since the last one)" if n else ""
