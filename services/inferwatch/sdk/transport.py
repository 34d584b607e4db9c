"""Delivery: the main producer, its delivery-report thread, the spool hand-off and the replayer.

Wire format: each event is one Kafka message, value = the event's UTF-8 JSON (orjson), key = the
model name (the topic registry keys predictions and feedback by model), no headers.

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
the reports itself, with ``poll(0)`` every 256 events (``hot_poll``); the background thread only
polls when the logging thread has not done so lately (an idle or slow logger). After a failed
delivery the logging thread stops polling (spooling the failures is not the caller's job) and the
background thread takes over until no failure has been seen for ``HOT_POLL_RESUME_S``.

The replayer thread owns a second producer with full delivery reports. It reads the spool from
its cursor in order, produces a batch, waits for every report, and moves the cursor past the
longest delivered prefix. A failure means the broker is still away: it backs off and probes
again with a single record, growing the batch as deliveries succeed. At start-up it first
adopts spools that a dead process left in the same directory.

Guarantee: at-least-once. A message whose report timed out may still have been written, and a
replayed batch interrupted by a crash is replayed again; consumers deduplicate on
``event_id``. Spooled events arrive later than newer live ones (order is kept within the spool).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from inferwatch.sdk.spool import Batch, Spool, adoptable_spools
from inferwatch.sdk.stats import Counters, RateLimitedWarning

log = logging.getLogger("inferwatch.sdk")
rdkafka_log = logging.getLogger("inferwatch.sdk.rdkafka")
# librdkafka's own log lines (connect failures during an outage, ...) reach the application's
# handlers if it configured logging, but never fall through to stderr by default.
rdkafka_log.addHandler(logging.NullHandler())

KIND_PREDICTION = 0
KIND_FEEDBACK = 1

_PERMANENT = frozenset({
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.INVALID_RECORD,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    KafkaError.TOPIC_EXCEPTION,
    KafkaError._INVALID_ARG,
})


class Transport:
    """Hands serialised events to Kafka and never raises into the caller on transport trouble."""

    HOT_POLL_RESUME_S = 5.0

    def __init__(
        self,
        conf: dict[str, Any],
        topics: tuple[str, str],
        spool: Spool | None,
        counters: Counters,
        replay_conf: dict[str, Any],
        spool_root: Path | None = None,
    ) -> None:
        self.topics = topics
        self._kind_of = {topics[0]: KIND_PREDICTION, topics[1]: KIND_FEEDBACK}
        self.spool = spool
        self.c = counters
        self._warn = RateLimitedWarning()
        self._closed = threading.Event()
        self._wake = threading.Event()
        # Read by the logger's hot path; plain attributes are enough (a stale read costs one
        # more or one fewer poll, never an event).
        self.hot_poll = True
        self._hot_polls = 0
        self._last_failure = 0.0
        conf = dict(conf)
        conf["on_delivery"] = self._on_delivery
        conf.setdefault("error_cb", self._on_error)
        conf.setdefault("logger", rdkafka_log)
        self.producer = Producer(conf)
        self._replay_conf = replay_conf
        self._poller = threading.Thread(target=self._poll_loop, name="inferwatch-sdk-delivery", daemon=True)
        self._poller.start()
        self._replayer: Replayer | None = None
        if spool is not None:
            self._replayer = Replayer(self, spool, spool_root)
            self._replayer.start()

    # -- live path ----------------------------------------------------------------------------
    def overflow(self, kind: int, key: bytes, value: bytes) -> None:
        """``produce()`` refused the event (queue full): spool it."""
        self.c.add("overflowed")
        self.spool_or_drop(kind, key, value, "the local queue is full")

    def produce_error(self, exc: KafkaException, value: bytes) -> None:
        """``produce()`` raised a KafkaException (e.g. message too large): count, drop, warn."""
        self.c.add("failed")
        self.c.add("dropped")
        if self._warn.due("produce"):
            log.warning("inferwatch: event of %d bytes refused by the producer and dropped: %s", len(value), exc)

    def spool_or_drop(self, kind: int, key: bytes, value: bytes, why: str) -> None:
        """Write one event to the spool, or count it dropped when there is no room (warn ≤ 1/min)."""
        sp = self.spool
        if sp is not None and sp.append(kind, key, value):
            self.c.add("spooled")
            self._wake.set()
            return
        self.c.add("dropped")
        if self._warn.due("dropped"):
            where = "no spool is configured" if sp is None else f"the spool {sp.directory} is full ({sp.max_bytes} bytes)"
            log.warning("inferwatch: dropping events (%s and %s); see InferenceLogger.stats()", why, where)

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
        self.c.add("failed")
        code = err.code()
        if code in _PERMANENT:
            self.c.add("dropped")
            if self._warn.due(f"permanent-{code}"):
                log.warning("inferwatch: event dropped, the broker refused it for good: %s", err.str())
            return
        kind = self._kind_of.get(msg.topic(), KIND_PREDICTION)
        self.spool_or_drop(kind, msg.key() or b"", msg.value() or b"", f"delivery failed ({err.name()})")

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            log.error("inferwatch: fatal producer error: %s", err.str())
        elif self._warn.due(f"error-{err.code()}"):
            log.warning("inferwatch: Kafka transport trouble (events will be spooled if it lasts): %s", err.str())

    def _poll_loop(self) -> None:
        poll = self.producer.poll
        seen = -1
        while not self._closed.is_set():
            if self.hot_poll and self._hot_polls != seen:
                seen = self._hot_polls  # the logging thread served reports since we last looked
                self._closed.wait(0.1)
                continue
            poll(0.1)
            if not self.hot_poll and time.monotonic() - self._last_failure > self.HOT_POLL_RESUME_S:
                self.hot_poll = True

    def in_queue(self) -> int:
        """Messages in librdkafka's queue or in flight."""
        return len(self.producer)

    # -- flush / close ------------------------------------------------------------------------
    def flush(self, timeout_s: float) -> bool:
        """Wait until the queue is delivered and the spool replayed (if the broker answers)."""
        deadline = time.monotonic() + timeout_s
        self.producer.flush(max(0.0, timeout_s))
        while self.spool is not None and self.spool.has_pending() and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.05)
        return self.in_queue() == 0 and (self.spool is None or not self.spool.has_pending())

    def close(self, timeout_s: float) -> None:
        """Deliver what can be in ``timeout_s``, spool the rest, stop the threads, release the spool."""
        if self._closed.is_set():
            return
        deadline = time.monotonic() + timeout_s
        self.producer.flush(max(0.0, timeout_s))
        if len(self.producer):
            # Whatever is still queued goes to the spool via the _PURGE_* delivery reports.
            self.producer.purge(in_queue=True, in_flight=True, blocking=False)
            end = time.monotonic() + 2.0
            while len(self.producer) and time.monotonic() < end:
                self.producer.poll(0.05)
        self._closed.set()
        if self._replayer is not None:
            self._replayer.stop(max(0.5, deadline - time.monotonic()))
        self._poller.join(timeout=2.0)
        self.producer.poll(0)
        if self.spool is not None:
            self.spool.close()


class Replayer(threading.Thread):
    """Replays spooled records in order once the broker takes them again (see the module docstring)."""

    MAX_BATCH = 5000
    MAX_BACKOFF_S = 5.0

    def __init__(self, transport: Transport, spool: Spool, root: Path | None) -> None:
        super().__init__(name="inferwatch-sdk-replay", daemon=True)
        self.t = transport
        self.own = spool
        self.root = root
        self._stop_ev = threading.Event()
        self._producer: Producer | None = None
        self._batch = 1
        self._backoff = 0.5

    def stop(self, timeout_s: float) -> None:
        """Stop after the current wait; undelivered records stay in the spool."""
        self._stop_ev.set()
        self.t._wake.set()
        self.join(timeout_s)

    def run(self) -> None:
        try:
            orphans = adoptable_spools(self.root, self.own) if self.root is not None else []
        except OSError as exc:
            log.warning("inferwatch: cannot scan %s for orphaned spools: %s", self.root, exc)
            orphans = []
        try:
            while not self._stop_ev.is_set():
                for sp in list(orphans):
                    if self._drain(sp):
                        orphans.remove(sp)
                        self._retire(sp)
                ok = self._drain(self.own)
                if self._stop_ev.is_set():
                    break
                if ok and not orphans:
                    self.t._wake.wait(1.0)
                    self.t._wake.clear()
                else:
                    self._stop_ev.wait(self._backoff)
                    self._backoff = min(self.MAX_BACKOFF_S, self._backoff * 2)
        except Exception:  # never let the thread die silently: the spool would stop draining
            log.exception("inferwatch: spool replayer crashed; spooled events stay on disk for the next start")
        finally:
            for sp in orphans:
                sp.close()
            if self._producer is not None:
                self._producer.purge(in_queue=True, in_flight=True, blocking=False)
                self._producer.poll(0)

    def _retire(self, sp: Spool) -> None:
        sp.close()
        if sp.directory.name.startswith("w-"):
            for p in sp.directory.iterdir():
                p.unlink(missing_ok=True)
            sp.directory.rmdir()

    def _get_producer(self) -> Producer:
        if self._producer is None:
            conf = dict(self._replay_conf_with_hooks())
            self._producer = Producer(conf)
        return self._producer

    def _replay_conf_with_hooks(self) -> dict[str, Any]:
        conf = dict(self.t._replay_conf)
        conf["logger"] = rdkafka_log
        conf["error_cb"] = lambda err: None  # the main producer already reports transport trouble
        return conf

    def _drain(self, sp: Spool) -> bool:
        """Replay ``sp`` until it is empty (True) or a delivery fails / we are stopped (False)."""
        while not self._stop_ev.is_set():
            batch = sp.read_batch(max_records=self._batch)
            if batch.corrupt:
                self.t.c.add("corrupt_skipped", batch.corrupt)
            if not batch.records:
                sp.commit(batch.segment, batch.end)
                if not sp.has_pending():
                    return True
                continue
            delivered = self._replay(batch)
            n = len(batch.records)
            self.t.c.add("replayed", delivered)
            if delivered == n:
                sp.commit(batch.segment, batch.end)
                self._batch = min(self.MAX_BATCH, self._batch * 4)
                self._backoff = 0.5
            else:
                if delivered:
                    sp.commit(batch.segment, batch.ends[delivered - 1])
                self._batch = 1
                return False
        return False

    def _replay(self, batch: Batch) -> int:
        """Produce the batch and wait for its reports; return the length of the delivered prefix."""
        prod = self._get_producer()
        results: list[bool | None] = [None] * len(batch.records)
        topics = self.t.topics
        for i, rec in enumerate(batch.records):
            if rec.kind not in (KIND_PREDICTION, KIND_FEEDBACK):
                self.t.c.add("corrupt_skipped")
                results[i] = True
                continue
            cb = functools.partial(self._report, results, i)
            while True:
                try:
                    prod.produce(topics[rec.kind], rec.value, rec.key, on_delivery=cb)
                    break
                except BufferError:
                    prod.poll(0.1)
                    if self._stop_ev.is_set():
                        return 0
                except KafkaException:
                    results[i] = True  # refused for good: counted as dropped in _report's stead
                    self.t.c.add("dropped")
                    break
        timeout = self.t._replay_conf.get("message.timeout.ms", 10_000) / 1000 + 5
        deadline = time.monotonic() + timeout
        while len(prod) and time.monotonic() < deadline and not self._stop_ev.is_set():
            prod.poll(0.1)
        prefix = 0
        for r in results:
            if r is not True:
                break
            prefix += 1
        return prefix

    def _report(self, results: list[bool | None], i: int, err: KafkaError | None, msg: Any) -> None:
        if err is None:
            results[i] = True
        elif err.code() in _PERMANENT:
            results[i] = True  # skip a poison record rather than block the spool forever
            self.t.c.add("dropped")
        else:
            results[i] = False
