"""The sink: every topic -> ClickHouse tables, at-least-once made exactly-once at the store.

Commit order (see docs/architecture.md), per write job (one topic-partition's messages buffered when a batch
became due):

1. decode the messages into rows and dead letters;
2. produce the dead letters and wait for each one's delivery report (``flush()`` returning says
   nothing about a record the broker refused); a dead letter not confirmed fails the write: it is
   retried with back-off, nothing is committed meanwhile, and ``/healthz`` (``deadletters``) and
   ``inferwatch_sink_deadletter_failures_total`` show it;
3. insert the rows with the token ``topic-partition-first_offset-last_offset``;
4. only then commit the offsets (``last_offset + 1``).

Steps 2-3 run on one writer thread (the store's insert releases the GIL), so the main thread
consumes and decodes while the writer inserts; at most one job is being written at a time and jobs
are written and committed in order. When a batch becomes due its partitions are decoded one by one
and each is handed to the writer as soon as it is ready, so the first insert starts after one
partition's decode, not the whole batch's. Step 4 runs on the main thread once the job's write has
succeeded.

A crash between 3 and 4 replays the messages. Two guards make the replay harmless: a message at or
below the highest ``kafka_offset`` already stored for its partition (read from the table when a
partition is first written after an assignment) is skipped when the store holds the same event at
the same offset, and an identical batch is dropped by the store's deduplication token. Both compare
event ids, not only offsets: a topic deleted and re-created starts again at offset 0, below what the
store holds for the old topic, and its new messages must be stored, not skipped as replays. A failing store is retried with exponential back-off while the
partitions are paused (the consumer keeps polling, so the group membership stays alive); nothing
is committed until the write succeeds, the process does not exit, and the health reports it.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter

import pyarrow as pa
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from inferwatch.config import Settings
from inferwatch.contract.topics import load_registry
from inferwatch.kafka.clientconf import base_config
from inferwatch.sink.batch import PartitionBatch, process
from inferwatch.sink.errors import DeadletterDeliveryError
from inferwatch.sink.health import SinkHealth
from inferwatch.sink.options import SinkOptions, sink_group_id
from inferwatch.store.base import Store
from inferwatch.store.errors import StoreError

log = logging.getLogger(__name__)

TP = tuple[str, int]
_RETRYABLE = (StoreError, DeadletterDeliveryError)
_GC_YOUNG = 50_000  # allocations between young-generation collections while the loop runs


@contextmanager
def _sparse_gc(young: int) -> Iterator[None]:
    """Run the cyclic GC's young generation every ``young`` allocations instead of every 700.

    Every consumed ``confluent_kafka.Message`` is a GC-tracked object and the loop keeps up to two
    batches of them alive; they form no cycles. With the default thresholds the collector ran ~400
    times per 300k messages, the older generations walking every buffered message (15-25% of the
    loop's time). One young collection per ``young`` allocations does the same work in a few large
    passes, and promotes far fewer survivors. The thresholds are process-wide: they are restored on exit.
    """
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], young), old[1], old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)


@dataclass
class _Job:
    """One write: the decoded batches of the buffered partitions and the offsets to commit after it."""

    batches: list[PartitionBatch]
    commits: dict[TP, int]
    dead_letters_sent: bool = False
    dead_letters_delivered: set[str] = field(default_factory=set)  # event ids Kafka confirmed (not re-sent)
    inserted: set[TP] = field(default_factory=set)
    future: Future[None] | None = None
    failures: int = 0
    retry_at: float = 0.0


class Sink:
    """Consume every topic of the registry and write it to ``store``."""

    def __init__(self, settings: Settings, store: Store, options: SinkOptions | None = None, *,
                 crash_after_insert: bool = False) -> None:
        """``crash_after_insert`` is for TESTS ONLY: SIGKILL the process right after the first insert,
        before its offset commit, to prove a replay leaves no duplicates. It is deliberately not an
        option or environment variable, so a normal run cannot be told to kill itself."""
        self.settings = settings
        self._crash_after_insert = crash_after_insert
        self.store = store
        self.options = options or SinkOptions()
        self.group_id = sink_group_id(settings, self.options)
        """The consumer group: the option when set, else the deployment's (inferwatch.kafka.groups)."""
        self.health = SinkHealth(store_kind=store.kind)
        self.schemas: dict[str, str] = {
            spec.full_name(settings.topic_prefix): spec.schema_ for spec in load_registry().values()
        }
        self._buf: dict[TP, list[Message]] = {}
        self._buffered = 0
        self._oldest: float | None = None
        self._watermarks: dict[TP, int] = {}
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._inflight: _Job | None = None  # being written by the writer thread
        self._retry: _Job | None = None  # its write failed; resubmitted at retry_at
        self._pending: deque[_Job] = deque()  # decoded, waiting for the writer (in order)
        self._paused = False
        self._caught_up = False
        self._closing = False
        self._last_lag = 0.0

    # -- Kafka callbacks (run inside consume(), on the main thread) ------------------------------
    def _on_revoke(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        # Finish (and commit) the write in progress while the partitions are still ours; everything
        # not yet written for a revoked partition is dropped: its next owner re-reads it.
        if self._closing:  # close() after the drain: nothing is pending any more
            return
        self._finish_inflight(wait_s=60.0)
        revoked = {(p.topic, p.partition) for p in parts}

        def keep(job: _Job) -> bool:
            job.batches = [b for b in job.batches if (b.topic, b.partition) not in revoked]
            job.commits = {tp: o for tp, o in job.commits.items() if tp not in revoked}
            return bool(job.commits)

        if self._retry is not None and not keep(self._retry):
            self._retry = None
        self._pending = deque(j for j in self._pending if keep(j))
        for tp in revoked:
            self._buffered -= len(self._buf.pop(tp, []))
            self._watermarks.pop(tp, None)
        if not self._buffered:
            self._oldest = None
        self._paused = False  # a new assignment starts unpaused

    def _on_assign(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        for p in parts:
            self._watermarks.pop((p.topic, p.partition), None)
        self._paused = False
        log.info("assigned %d partitions", len(parts))

    # -- the loop -------------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None, idle_exit_s: float | None = None) -> None:
        """Consume, batch, write and commit until ``stop`` is set (or after ``idle_exit_s`` of silence
        with nothing buffered, for tests and benchmarks). Flushes what is buffered before returning,
        then closes the consumer and the dead-letter producer."""
        stop = stop or threading.Event()
        conf = base_config(self.settings) | {
            "group.id": self.group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 100,
            # Large fetches and a deep prefetch queue, so the librdkafka threads keep fetching (and
            # decompressing) while the main thread decodes a batch. queued.min.messages matters most:
            # at its default (100k per partition) a full queue made librdkafka back off for
            # fetch.queue.backoff.ms (1 s) before fetching again, and the sink stalled on an empty
            # queue — raw consume here went from ~130-170k to ~300-400k msgs/s. Memory stays bounded
            # by queued.max.messages.kbytes.
            "max.partition.fetch.bytes": 16 << 20,
            "fetch.max.bytes": 64 << 20,
            "queued.max.messages.kbytes": 128 << 10,
            "queued.min.messages": 1_000_000,
            "fetch.queue.backoff.ms": 50,
            "max.poll.interval.ms": 600_000,
            "session.timeout.ms": self.options.session_timeout_ms,
        }
        self._consumer = c = Consumer(conf)
        self._producer = Producer(base_config(self.settings) | {"linger.ms": 20, "enable.idempotence": True})
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sink-writer")
        c.subscribe(list(self.schemas), on_assign=self._on_assign, on_revoke=self._on_revoke)
        last_msg = time.monotonic()
        cap = 2 * self.options.batch_rows  # buffered messages beyond which reading pauses (back-pressure)
        with _sparse_gc(_GC_YOUNG):
            try:
                while not stop.is_set():
                    self._step()
                    self._set_paused(self._retry is not None or self._buffered >= cap)
                    room = cap - self._buffered
                    msgs = c.consume(num_messages=max(1, min(10_000, room)), timeout=0.05 if self._paused else 0.1)
                    # An empty poll while reading (not paused): the sink is at the end of its partitions.
                    self._caught_up = not msgs and not self._paused
                    if msgs:
                        last_msg = time.monotonic()
                        self._buffer(msgs)
                    elif (idle_exit_s is not None and not self._buffered and self._idle()
                          and time.monotonic() - last_msg > idle_exit_s):
                        break
                    self._update_lag()
                self._drain()
            finally:
                self._closing = True
                try:
                    c.close()
                finally:
                    self._writer.shutdown(wait=True)
                    self._close_producer()

    def _idle(self) -> bool:
        return self._inflight is None and self._retry is None and not self._pending

    def _buffer(self, msgs: list[Message]) -> None:
        if any(map(Message.error, msgs)):  # rare: keep the good ones, log the errors
            for m in msgs:
                err = m.error()
                if err is not None and err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", err)
            msgs = [m for m in msgs if m.error() is None]
            if not msgs:
                return
        buf = self._buf
        # consume() returns runs of one partition: group runs in C (map + groupby), not message by message.
        tps = zip(map(Message.topic, msgs), map(Message.partition, msgs), strict=True)
        for tp, run in groupby(zip(tps, msgs, strict=True), key=itemgetter(0)):
            lst = buf.get(tp)
            if lst is None:
                lst = buf[tp] = []
            lst.extend(map(itemgetter(1), run))
        n = len(msgs)
        self._buffered += n
        self.health.messages_consumed += n
        if self._oldest is None:
            self._oldest = time.monotonic()

    def _due(self) -> bool:
        if not self._buffered:
            return False
        if self._buffered >= self.options.batch_rows:
            return True
        if self._caught_up and self._buffered >= self.options.caught_up_rows:
            return True  # the end of a backlog: nothing more is coming to fill the batch
        return self._oldest is not None and (time.monotonic() - self._oldest) * 1000 >= self.options.batch_ms

    def _set_paused(self, paused: bool) -> None:
        if paused == self._paused or self._consumer is None:
            return
        parts = self._consumer.assignment()
        if parts:
            (self._consumer.pause if paused else self._consumer.resume)(parts)
        self._paused = paused

    # -- jobs -----------------------------------------------------------------------------------
    def _step(self) -> None:
        """Advance the pipeline: collect a finished write, retry a failed one, decode, submit."""
        self._finish_inflight(wait_s=0.0)
        now = time.monotonic()
        if self._inflight is None and self._retry is not None and now >= self._retry.retry_at:
            job, self._retry = self._retry, None
            self._submit(job)
        if not self._pending and self._retry is None and self._due():
            for job in self._prepare():
                self._pending.append(job)
                self._submit_next()  # the writer starts on this partition while the next one decodes
        self._submit_next()

    def _submit_next(self) -> None:
        """Hand the oldest decoded job to the writer if it is free (after committing the one it finished)."""
        self._finish_inflight(wait_s=0.0)
        if self._inflight is None and self._retry is None and self._pending:
            self._submit(self._pending.popleft())

    def _prepare(self) -> Iterator[_Job]:
        """Empty the buffer and decode it (step 1), one job per topic-partition, yielded as each is ready."""
        buf, self._buf = self._buf, {}
        self._buffered = 0
        self._oldest = None
        for (topic, partition), msgs in buf.items():
            if msgs:
                batch = process(self.schemas[topic], topic, partition, msgs)  # type: ignore[arg-type]
                yield _Job([batch], {(topic, partition): msgs[-1].offset() + 1})  # type: ignore[operator]

    def _submit(self, job: _Job) -> None:
        assert self._writer is not None
        job.future = self._writer.submit(self._write, job)
        self._inflight = job

    def _finish_inflight(self, wait_s: float) -> None:
        """If the write in progress has ended (waiting up to ``wait_s``): commit it, or schedule its retry."""
        job = self._inflight
        if job is None or job.future is None:
            return
        try:
            exc = job.future.exception(timeout=wait_s)
        except FutureTimeout:
            return
        self._inflight = None
        if exc is None:
            self._committed(job)
            return
        if not isinstance(exc, _RETRYABLE):
            raise exc
        job.failures += 1
        if isinstance(exc, DeadletterDeliveryError):
            self.health.deadletter_failed(str(exc), exc.undelivered)
        else:
            self.health.store_failed(str(exc))
        delay = min(self.options.retry_initial_s * 2 ** (job.failures - 1), self.options.retry_max_s)
        job.retry_at = time.monotonic() + delay
        self._retry = job
        log.error("write failed (attempt %d), retrying in %.1fs with the partitions paused, nothing committed: %s",
                  job.failures, delay, exc)

    def _committed(self, job: _Job) -> None:
        """Step 4: the write succeeded; commit its offsets."""
        if self.health.consecutive_failures:
            log.info("store is back; written after %d failed attempts", self.health.consecutive_failures)
            self.health.store_recovered()
        if not self.health.deadletter_ok:
            log.info("dead letters written after %d failed attempts", job.failures)
            self.health.deadletter_recovered()
        if self._crash_after_insert:
            log.warning("crash_after_insert is set: SIGKILL before the offset commit")
            os.kill(os.getpid(), signal.SIGKILL)
        if not job.commits:
            return
        assert self._consumer is not None
        try:
            self._consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in job.commits.items()],
                                  asynchronous=False)
            self.health.committed()
        except KafkaException as exc:
            # The rows are stored; a replay of these offsets is skipped by the watermark guard.
            log.warning("offset commit failed (the next owner re-reads and skips stored rows): %s", exc)

    def _drain(self, attempts: int = 3) -> None:
        """On shutdown: finish the jobs and write what is buffered, a few tries at most (nothing is
        committed for a write that keeps failing; the next start re-reads it)."""
        self._finish_inflight(wait_s=120.0)
        limit = (self._retry.failures if self._retry is not None else 0) + attempts
        if self._buffered:
            self._pending.extend(self._prepare())
        # Every turn ends a write (committed, or failed and counted) or returns: it terminates.
        while True:
            self._finish_inflight(wait_s=120.0)
            if self._inflight is not None:
                log.error("a write did not finish within 120 s of shutdown; its offsets are not committed")
                return
            if self._retry is not None:
                if self._retry.failures >= limit:
                    log.error("giving up on shutdown after %d failed writes; offsets not committed",
                              self._retry.failures)
                    return
                time.sleep(max(0.0, min(self._retry.retry_at - time.monotonic(), self.options.retry_max_s)))
                job, self._retry = self._retry, None
                self._submit(job)
                continue
            if not self._pending:
                return
            self._submit(self._pending.popleft())

    # -- the writer thread ----------------------------------------------------------------------
    def _write(self, job: _Job) -> None:
        """Steps 2 and 3 for ``job`` (on the writer thread); a retry skips what already succeeded."""
        for b in job.batches:
            self._skip_stored(b)
        if not job.dead_letters_sent:
            self._send_dead_letters(job.batches, job.dead_letters_delivered)
            job.dead_letters_sent = True
        for b in job.batches:
            tp = (b.topic, b.partition)
            if tp in job.inserted:
                continue
            if b.rows is not None and b.rows.num_rows:
                self.store.insert(b.table, b.rows, dedup_token=b.dedup_token)
                self.health.wrote(b.table, b.rows.num_rows)
            job.inserted.add(tp)
            self._watermarks[tp] = max(self._watermarks.get(tp, -1), b.last_offset)

    def _watermark(self, tp: TP, table: str) -> int:
        """The highest offset of ``tp`` already in ``table`` (-1 if none), read once per assignment."""
        wm = self._watermarks.get(tp)
        if wm is None:
            res = self.store.query(
                f"SELECT count(), max(kafka_offset) FROM {table} "
                "WHERE kafka_topic = {t:String} AND kafka_partition = {p:UInt32}",
                {"t": tp[0], "p": tp[1]},
            )
            count, mx = res.rows[0]
            wm = int(mx) if count else -1
            self._watermarks[tp] = wm
        return wm

    def _skip_stored(self, b: PartitionBatch) -> None:
        """Drop the rows and dead letters of ``b`` already handled: a replay after a crash.

        Only offsets at or below the partition's stored watermark are candidates (nothing is read in
        the usual case, a batch past it). A row is skipped when the store holds the same event id at
        the same offset; the dead letters up to the highest such offset were sent before that insert.
        A candidate with another event id stored there (or none) is new: the topic was deleted and
        re-created since (its offsets start again at 0), and it is written like any other message.
        """
        wm = self._watermark((b.topic, b.partition), b.table)
        if b.first_offset > wm:
            return
        matched = -1
        if b.rows is not None and b.rows.num_rows:
            hi = min(wm, b.last_offset)
            stored = self._stored_events(b.table, b.topic, b.partition, b.first_offset, hi)
            offsets = b.rows.column("kafka_offset").to_pylist()
            ids = b.rows.column("event_id").to_pylist()
            keep = [(o, e) not in stored for o, e in zip(offsets, ids, strict=True)]
            skipped = [o for o, k in zip(offsets, keep, strict=True) if not k]
            matched = max(skipped, default=-1)
            if skipped:
                log.info("%s[%d]: skipping %d messages up to offset %d, already stored (replay after a crash)",
                         b.topic, b.partition, len(skipped), matched)
                b.rows = b.rows.filter(pa.array(keep))
            elif any(o <= hi for o in offsets):
                log.warning("%s[%d]: the store holds offsets up to %d from other messages (the topic was "
                            "deleted and re-created?): these are new and are written", b.topic, b.partition, wm)
        if matched >= 0:
            b.dead_letters = [d for d in b.dead_letters if (d.source_offset or 0) > matched]
            b.first_offset = min(matched + 1, b.last_offset)

    def _stored_events(self, table: str, topic: str, partition: int, lo: int, hi: int) -> set[tuple[int, str]]:
        """``(kafka_offset, event_id)`` of the rows stored for ``topic[partition]`` between ``lo`` and ``hi``."""
        if hi < lo:
            return set()
        # Up to two topics of the same name may have written these offsets (and a replay may repeat one).
        limit = 4 * (hi - lo + 1) + 1000
        res = self.store.query_arrow(
            f"SELECT kafka_offset, event_id FROM {table} WHERE kafka_topic = {{t:String}} "
            "AND kafka_partition = {p:UInt32} AND kafka_offset BETWEEN {lo:UInt64} AND {hi:UInt64}",
            {"t": topic, "p": partition, "lo": lo, "hi": hi}, max_rows=limit,
        )
        return set(zip(res.column("kafka_offset").to_pylist(), res.column("event_id").to_pylist(), strict=True))

    def _send_dead_letters(self, batches: list[PartitionBatch], delivered: set[str]) -> None:
        """Produce the dead letters of ``batches`` not yet in ``delivered`` (event ids) and wait for
        each one's delivery report. Raises :class:`DeadletterDeliveryError` unless Kafka confirmed
        every one; those it did confirm are added to ``delivered`` so a retry does not send them again."""
        dls = [(b.topic, dl) for b in batches for dl in b.dead_letters if dl.event_id not in delivered]
        if not dls:
            return
        p = self._producer
        assert p is not None
        reports: dict[str, str | None] = {}  # event id -> None (confirmed) or the error

        def report(event_id: str) -> Callable[[KafkaError | None, object], None]:
            def on_delivery(err: KafkaError | None, _msg: object) -> None:
                reports[event_id] = None if err is None else str(err)
            return on_delivery

        topic = self.settings.deadletter_topic
        for src, dl in dls:
            log.debug("dead letter from %s[%s]@%s: %s", src, dl.source_partition, dl.source_offset, dl.reason)
            value = dl.model_dump_json(exclude_none=True).encode()
            for _ in range(100):
                try:
                    p.produce(topic, key=src.encode(), value=value, on_delivery=report(dl.event_id))
                    break
                except BufferError:  # the local queue is full: let it drain, then retry this one
                    p.poll(0.1)
                except KafkaException as exc:  # refused locally (too large, unknown topic, ...)
                    reports[dl.event_id] = str(exc)
                    break
            else:
                reports[dl.event_id] = "the producer's queue stayed full for 10 s"
        p.flush(30)
        errors: list[str] = []
        for src, dl in dls:
            err = reports.get(dl.event_id, "no delivery report within 30 s")
            if err is None:
                delivered.add(dl.event_id)
                self.health.dead_letters += 1
            else:
                errors.append(f"{src}[{dl.source_partition}]@{dl.source_offset}: {err}")
        if errors:
            raise DeadletterDeliveryError(
                f"{len(errors)} of {len(dls)} dead letters not written to {topic}: {'; '.join(errors[:3])}",
                undelivered=len(errors))

    def _close_producer(self) -> None:
        """Deliver what is queued, then close the producer so librdkafka stops (no reconnect noise)."""
        p, self._producer = self._producer, None
        if p is None:
            return
        left = p.flush(10)
        if left:
            log.warning("%d dead letters still queued at shutdown", left)
        p.close()

    def _update_lag(self) -> None:
        now = time.monotonic()
        if now - self._last_lag < 2.0 or self._consumer is None:
            return
        self._last_lag = now
        c = self._consumer
        try:
            parts = c.assignment()
            if not parts:
                return
            lag = 0
            for p in c.position(parts):
                lo, hi = c.get_watermark_offsets(p, cached=True)
                if hi >= 0:
                    pos = p.offset if p.offset >= 0 else lo
                    lag += max(0, hi - pos)
            self.health.lag = lag + self._buffered
        except Exception as exc:  # lag is informative only
            log.debug("lag unavailable: %s", exc)


def run_sink(settings: Settings, store: Store, options: SinkOptions | None = None,
             stop: threading.Event | None = None, on_ready: Callable[[Sink], None] | None = None) -> Sink:
    """Build a :class:`Sink`, call ``on_ready`` (e.g. to serve its health), and run it until ``stop``."""
    sink = Sink(settings, store, options)
    if on_ready is not None:
        on_ready(sink)
    sink.run(stop)
    return sink
