"""Delivery: the producer shared by a process's loggers, its delivery-report thread, the spool
hand-off and the replayer.

Wire format: each event is one Kafka message, value = the event's UTF-8 JSON (orjson), key = the
model name (the topic registry keys predictions and feedback by model), no headers.

One transport per process and settings. Every :class:`~inferwatch.sdk.logger.InferenceLogger`
of a process with the same effective producer configuration, topics and spool settings shares
one :class:`Transport` (see :mod:`inferwatch.sdk.shared`): one librdkafka producer, one
delivery thread, one spool, one replayer. Each logger holds a :class:`Lane`: its own counters
and the callbacks its hot path calls. A failed delivery report is attributed to its logger by
the event id's random per-logger prefix (``"event_id":"<16 hex>-…``, the second field of every
event), so per-logger counters stay exact without a Python callback per message.

When does an event go to the spool?
  * ``produce()`` raises ``BufferError``: librdkafka's bounded local queue is full (broker slow
    or away for a while);
  * a delivery report carries a retriable error, typically ``_MSG_TIMED_OUT`` after
    ``message.timeout.ms`` with the broker unreachable, or ``_PURGE_*`` at close. The report
    gives the message's value back, so nothing else is kept in memory.
Permanent errors (record too large, not authorised, invalid) are counted as ``failed`` and
``dropped`` and logged: replaying them would fail forever.

Who serves delivery reports? confluent-kafka hands every report (successes too, even with
``delivery.report.only.error``: the Python client filters them itself) to a C callback that takes
the GIL once per message. Served by a background thread while the caller's thread runs Python,
each of those GIL hand-offs waits for the interpreter's switch interval, reports pile up, the
local queue fills and events spill to the spool. So while all is well the logging thread serves
the reports itself, with ``poll(0)`` every 256 events of a logger (``hot_poll``; the loggers of a
transport count from staggered starts, so with events spread over many loggers it is still about
once per 256 events of the transport); the background thread only polls when the logging thread
has not done so lately (an idle or slow logger). After a failed delivery the logging thread stops
polling (spooling the failures is not the caller's job) and the background thread takes over
until no failure has been seen for ``HOT_POLL_RESUME_S``. The background thread also probes the
broker when librdkafka reports connection trouble (see :mod:`inferwatch.sdk.health`).

Guarantee: at-least-once. A message whose report timed out may still have been written, and a
replayed batch interrupted by a crash is replayed again; consumers deduplicate on
``event_id``. Spooled events arrive later than newer live ones (order is kept within the spool).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from inferwatch.sdk.counters import Counters, RateLimitedWarning
from inferwatch.sdk.health import Health, LibrdkafkaLog
from inferwatch.sdk.replay import PERMANENT, Replayer
from inferwatch.sdk.spool import Spool

log = logging.getLogger("inferwatch.sdk")

KIND_PREDICTION = 0
KIND_FEEDBACK = 1

# librdkafka errors (error_cb) that mean "cannot reach the brokers": probe before warning.
_CONNECTION_ERRORS = frozenset({
    KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE, KafkaError._TIMED_OUT,
    KafkaError._MSG_TIMED_OUT,
})
# Delivery reports of events purged at close: spooled, but not evidence that Kafka is down.
_PURGED = frozenset({KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT})
_EVENT_ID = b'"event_id":"'
_PREFIX_LEN = 17  # IdGenerator: 16 hex digits and "-"
# Each new lane's logged counter starts 151 further (odd, so 256 lanes take 256 distinct phases).
_PHASE_STEP = 151
# Lanes of closed loggers still get their late delivery failures counted, up to this many.
_RETIRED_LANES = 10_000


class Lane:
    """One logger's attachment to a shared transport: its counters and its hot path's callbacks."""

    __slots__ = ("c", "close_timeout_s", "prefix", "t")

    def __init__(self, transport: Transport, prefix: bytes, phase: int, close_timeout_s: float) -> None:
        self.t = transport
        self.prefix = prefix
        self.c = Counters(logged_start=phase)
        self.close_timeout_s = close_timeout_s

    def overflow(self, kind: int, key: bytes, value: bytes) -> None:
        """``produce()`` refused the event (queue full): spool it."""
        self.c.add("overflowed")
        self.t.c.add("overflowed")
        self.t.spool_or_drop(kind, key, value, "the local queue is full", self.c)

    def produce_error(self, exc: KafkaException, value: bytes) -> None:
        """``produce()`` raised a KafkaException (e.g. message too large): count, drop, warn."""
        self.t.produce_error(exc, value, self.c)

    def drop(self) -> None:
        """An event logged after ``close()``: counted as dropped."""
        self.c.add("dropped")
        self.t.c.add("dropped")


class Transport:
    """Hands serialised events to Kafka and never raises into the caller on transport trouble."""

    HOT_POLL_RESUME_S = 5.0
    PROBE_TIMEOUT_S = 0.5

    def __init__(
        self,
        conf: dict[str, Any],
        topics: tuple[str, str],
        spool: Spool | None,
        replay_conf: dict[str, Any],
        spool_root: Path | None = None,
    ) -> None:
        self.topics = topics
        self._kind_of = {topics[0]: KIND_PREDICTION, topics[1]: KIND_FEEDBACK}
        self.spool = spool
        self.c = Counters()  # the transport's totals: every lane's failures plus unattributed ones
        self.pid = os.getpid()
        self.key: Any = None  # set by inferwatch.sdk.shared
        # shared.release, set by inferwatch.sdk.shared: the delivery thread hands it the lanes of
        # garbage-collected loggers (see release_later).
        self.release_fn: Callable[[Lane, float], None] | None = None
        self._released: deque[tuple[Lane, float]] = deque()
        self.closed = False
        self._close_lock = threading.Lock()
        self._close_started = False
        self._close_done = threading.Event()
        self._lanes: dict[bytes, Lane] = {}
        self._retired: dict[bytes, Lane] = {}  # insertion order: the oldest are forgotten first
        self._lanes_lock = threading.Lock()
        self._attached = 0
        self._retired_logged = 0
        self._warn = RateLimitedWarning()
        self._closed = threading.Event()
        self._wake = threading.Event()
        # Read by the logger's hot path; plain attributes are enough (a stale read costs one
        # more or one fewer poll, never an event).
        self.hot_poll = True
        self._hot_polls = 0
        self._last_failure = 0.0
        self.bootstrap = str(conf.get("bootstrap.servers", ""))
        self.health = Health(self.bootstrap, int(conf.get("message.timeout.ms", 300_000)), self._facts)
        conf = dict(conf)
        conf["on_delivery"] = self._on_delivery
        conf.setdefault("error_cb", self._on_error)
        conf.setdefault("logger", LibrdkafkaLog())
        self.producer = Producer(conf)
        self.produce = self.producer.produce
        self._replay_conf = dict(replay_conf)
        self._replay_conf.setdefault("logger", conf["logger"])
        self._poller = threading.Thread(target=self._poll_loop, name="inferwatch-sdk-delivery", daemon=True)
        self._poller.start()
        self._replayer: Replayer | None = None
        if spool is not None:
            self._replayer = Replayer(self, spool, spool_root)
            self._replayer.start()

    # -- lanes ---------------------------------------------------------------------------------
    def attach(self, prefix: str, close_timeout_s: float) -> Lane:
        """A new lane for a logger whose event ids start with ``prefix``."""
        with self._lanes_lock:
            lane = Lane(self, prefix.encode(), (self._attached * _PHASE_STEP) & 255, close_timeout_s)
            self._attached += 1
            self._lanes[lane.prefix] = lane
            return lane

    def detach(self, lane: Lane) -> bool:
        """Forget ``lane`` (its logger closed); False if it was already detached."""
        with self._lanes_lock:
            if self._lanes.get(lane.prefix) is not lane:
                return False
            del self._lanes[lane.prefix]
            self._retired_logged += lane.c.logged
            # Its events may still be in the queue: keep attributing their failures to it.
            self._retired[lane.prefix] = lane
            if len(self._retired) > _RETIRED_LANES:
                del self._retired[next(iter(self._retired))]
            return True

    @property
    def loggers(self) -> int:
        """Loggers attached now."""
        return len(self._lanes)

    def close_timeout_s(self) -> float:
        """The longest ``close_timeout_s`` of the attached loggers (for a close at exit)."""
        with self._lanes_lock:
            lanes = list(self._lanes.values())
        return max((ln.close_timeout_s for ln in lanes), default=5.0)

    def release_later(self, lane: Lane, timeout_s: float) -> None:
        """Release ``lane`` from the delivery thread (within ≈ 0.1 s), not from the caller's.

        For the finalizer of a garbage-collected logger: the cyclic GC runs it inside whatever
        the thread was allocating for, possibly while that thread holds one of the SDK's locks,
        so the finalizer only appends to a deque (no lock) and the delivery thread does the rest.
        At interpreter exit the ``atexit`` hook of :mod:`inferwatch.sdk.shared` closes the
        transports instead.
        """
        self._released.append((lane, timeout_s))

    def _release_pending(self) -> None:
        while self._released and self.release_fn is not None:
            lane, timeout_s = self._released.popleft()
            try:
                self.release_fn(lane, timeout_s)
            except Exception:  # the delivery thread must survive whatever a close runs into
                log.exception("inferwatch: releasing a collected logger failed")

    def _lane_of(self, value: bytes) -> Lane | None:
        i = value.find(_EVENT_ID, 0, 96)
        if i < 0:
            return None
        i += len(_EVENT_ID)
        prefix = value[i : i + _PREFIX_LEN]
        lane = self._lanes.get(prefix)
        return lane if lane is not None else self._retired.get(prefix)

    # -- live path -----------------------------------------------------------------------------
    def produce_error(self, exc: KafkaException, value: bytes, c: Counters | None) -> None:
        """``produce()`` raised a KafkaException (e.g. message too large): count, drop, warn."""
        for cc in (c, self.c):
            if cc is not None:
                cc.add("failed")
                cc.add("dropped")
        if self._warn.due("produce"):
            log.warning("inferwatch: event of %d bytes refused by the producer and dropped: %s%s", len(value), exc,
                        _held(self._warn.suppressed("produce")))

    def spool_or_drop(self, kind: int, key: bytes, value: bytes, why: str, c: Counters | None) -> None:
        """Write one event to the spool, or count it dropped when there is no room."""
        sp = self.spool
        if sp is not None and sp.append(kind, key, value):
            if c is not None:
                c.add("spooled")
            self.c.add("spooled")
            self._wake.set()
            self.health.spooled(why)
            return
        if c is not None:
            c.add("dropped")
        self.c.add("dropped")
        where = "no spool is configured" if sp is None else f"the spool {sp.directory} is full ({sp.max_bytes} bytes)"
        self.health.dropped(why, where)

    def serve_if_hot(self) -> None:
        """Called by the logging thread every 256 events: serve reports unless the poller has taken over."""
        if self.hot_poll:
            self._hot_polls += 1
            self.producer.poll(0)

    def _on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        if err is None:
            return
        self.hot_poll = False
        self._last_failure = time.monotonic()
        value = msg.value() or b""
        lane = self._lane_of(value)
        c = lane.c if lane is not None else None
        if c is not None:
            c.add("failed")
        self.c.add("failed")
        code = err.code()
        if code in PERMANENT:
            if c is not None:
                c.add("dropped")
            self.c.add("dropped")
            if self._warn.due(f"permanent-{code}"):
                log.warning("inferwatch: event dropped, the broker refused it for good: %s%s", err.str(),
                            _held(self._warn.suppressed(f"permanent-{code}")))
            return
        if code in _PURGED:
            why = "undelivered at close"
        else:
            why = f"delivery failed ({err.name()})"
            self.health.delivery_failed(err.name())
        kind = self._kind_of.get(msg.topic(), KIND_PREDICTION)
        self.spool_or_drop(kind, msg.key() or b"", value, why, c)

    def _on_error(self, err: KafkaError) -> None:
        code = err.code()
        if err.fatal():
            if self._warn.due("fatal"):
                log.error("inferwatch: fatal producer error: %s%s", err.str(), _held(self._warn.suppressed("fatal")))
        elif code in _CONNECTION_ERRORS:
            self.health.trouble(err.str())
        elif self._warn.due(f"error-{code}"):
            log.warning("inferwatch: Kafka error at %s: %s%s", self.bootstrap, err.str(),
                        _held(self._warn.suppressed(f"error-{code}")))

    def _poll_loop(self) -> None:
        poll = self.producer.poll
        seen = -1
        while not self._closed.is_set():
            if self._released:
                self._release_pending()  # may close this transport (its last logger was collected)
                continue
            if self.health.probe_due():
                self._probe()
            if self.hot_poll and self._hot_polls != seen:
                seen = self._hot_polls  # the logging thread served reports since we last looked
                self._closed.wait(0.1)
                continue
            poll(0.1)
            if not self.hot_poll and time.monotonic() - self._last_failure > self.HOT_POLL_RESUME_S:
                self.hot_poll = True

    def _probe(self) -> None:
        """One metadata request: is the broker there? (Only while suspect or down.)"""
        try:
            self.producer.list_topics(self.topics[0], timeout=self.PROBE_TIMEOUT_S)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            self.health.probe_failed(err.str() if isinstance(err, KafkaError) else str(exc))
            return
        self.health.probe_ok()

    # -- numbers -------------------------------------------------------------------------------
    def in_queue(self) -> int:
        """Messages in librdkafka's queue or in flight."""
        return len(self.producer)

    def _facts(self) -> dict[str, Any]:
        sp = self.spool
        with self.c.lock:
            spooled, dropped = self.c.spooled, self.c.dropped
        return {
            "in_queue": self.in_queue(), "loggers": self.loggers, "spooled": spooled, "dropped": dropped,
            "spool_bytes": sp.disk_bytes if sp is not None else 0,
            "spool_max_bytes": sp.max_bytes if sp is not None else 0,
            "spool_dir": str(sp.directory) if sp is not None else "-",
        }

    def stats(self) -> dict[str, int]:
        """The transport's counters (every logger sharing it), for ``InferenceLogger.stats()``."""
        with self._lanes_lock:
            lanes = list(self._lanes.values())
            logged = self._retired_logged
        logged += sum(ln.c.logged for ln in lanes)
        t = self.c.snapshot()
        in_queue = 0 if self.closed else self.in_queue()
        sp = self.spool
        return {
            "replayed": t["replayed"],
            "corrupt_skipped": t["corrupt_skipped"],
            "in_queue": in_queue,
            "spool_bytes": sp.disk_bytes if sp is not None else 0,
            "transport_loggers": len(lanes),
            "transport_logged": logged,
            "transport_delivered": max(0, logged - t["overflowed"] - t["failed"] - in_queue),
            "transport_failed": t["failed"],
            "transport_spooled": t["spooled"],
            "transport_dropped": t["dropped"],
            "transport_outages": self.health.outages,
            "transport_warnings": self.health.warn.emitted + self._warn.emitted,
            "transport_warnings_held_back": self.health.warn.held_back + self._warn.held_back,
        }

    # -- flush / close -------------------------------------------------------------------------
    def flush(self, timeout_s: float) -> bool:
        """Wait until the queue is delivered and the spool replayed (if the broker answers)."""
        deadline = time.monotonic() + timeout_s
        self.producer.flush(max(0.0, timeout_s))
        while self.spool is not None and self.spool.has_pending() and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.05)
        return self.in_queue() == 0 and (self.spool is None or not self.spool.has_pending())

    def close(self, timeout_s: float) -> None:
        """Deliver what can be in ``timeout_s``, spool the rest, stop the threads, release the spool.

        A no-op in a forked child: the producer's threads live in the parent, which owns it.
        """
        if os.getpid() != self.pid:
            return
        with self._close_lock:
            started, self._close_started = self._close_started, True
        if started:  # another thread closes it (the delivery thread, at exit): wait for that
            self._close_done.wait(timeout_s + 5.0)
            return
        try:
            self._close(timeout_s)
        finally:
            self._close_done.set()

    def _close(self, timeout_s: float) -> None:
        self.health.closing = True
        deadline = time.monotonic() + timeout_s
        self.producer.flush(max(0.0, timeout_s))
        if len(self.producer):
            # Whatever is still queued goes to the spool via the _PURGE_* delivery reports.
            self.producer.purge(in_queue=True, in_flight=True, blocking=False)
            end = time.monotonic() + 2.0
            while len(self.producer) and time.monotonic() < end:
                self.producer.poll(0.05)
        self._closed.set()
        self.closed = True
        if self._replayer is not None:
            self._replayer.stop(max(0.5, deadline - time.monotonic()))
        if threading.current_thread() is not self._poller:
            self._poller.join(timeout=2.0)
        self.producer.poll(0)
        if self.spool is not None:
            self.spool.close()

    # -- for the replayer ----------------------------------------------------------------------
    @property
    def replay_conf(self) -> dict[str, Any]:
        """The replay producer's configuration (see ``producer_config.replay_config``)."""
        return self._replay_conf

    @property
    def wake(self) -> threading.Event:
        """Set when something was spooled (or a flush waits): the replayer looks at once."""
        return self._wake


def _held(n: int) -> str:
    return f" ({n} more held back since the last such line)" if n else ""
