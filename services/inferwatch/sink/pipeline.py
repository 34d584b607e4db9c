"""The sink's write-and-commit pipeline: at-least-once made exactly-once at the store.

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

The consume loop (:mod:`inferwatch.sink.consume`) hands over the buffered messages when a batch is due
and pauses reading while a write waits for its retry; the replay guard is :mod:`inferwatch.sink.replay_guard`.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException, Message, Producer, TopicPartition

from inferwatch.config import Settings
from inferwatch.kafka.clientconf import base_config
from inferwatch.sink.batch import PartitionBatch, process
from inferwatch.sink.errors import DeadletterDeliveryError
from inferwatch.sink.health import SinkHealth
from inferwatch.sink.replay_guard import ReplayGuard
from inferwatch.sink.settings import SinkSettings
from inferwatch.store.base import Store
from inferwatch.store.errors import StoreError

log = logging.getLogger(__name__)

TP = tuple[str, int]
Commit = Callable[[list[TopicPartition]], None]
"""Commits offsets synchronously (the consumer's ``commit(offsets=..., asynchronous=False)``)."""

_RETRYABLE = (StoreError, DeadletterDeliveryError)


@dataclass
class WriteJob:
    """One write: the decoded batches of the buffered partitions and the offsets to commit after it."""

    batches: list[PartitionBatch]
    commits: dict[TP, int]
    dead_letters_sent: bool = False
    dead_letters_delivered: set[str] = field(default_factory=set)  # event ids Kafka confirmed (not re-sent)
    inserted: set[TP] = field(default_factory=set)
    future: Future[None] | None = None
    failures: int = 0
    retry_at: float = 0.0


class Pipeline:
    """Decode, write and commit the batches the consume loop hands over, in order (see the module doc).

    Everything but :meth:`_write` runs on the consume loop's thread; ``open`` starts the writer
    thread and the dead-letter producer, ``close`` stops them.
    """

    def __init__(self, settings: Settings, store: Store, options: SinkSettings, health: SinkHealth,
                 schemas: dict[str, str], *, crash_after_insert: bool = False) -> None:
        """``schemas``: topic -> event schema. ``crash_after_insert`` is for TESTS ONLY (see
        :class:`inferwatch.sink.Sink`): SIGKILL right after the first insert, before its commit."""
        self.settings = settings
        self.store = store
        self.options = options
        self.health = health
        self.schemas = schemas
        self.guard = ReplayGuard(store)
        self._crash_after_insert = crash_after_insert
        self._commit: Commit | None = None
        self._producer: Producer | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._inflight: WriteJob | None = None  # being written by the writer thread
        self._retry: WriteJob | None = None  # its write failed; resubmitted at retry_at
        self._pending: deque[WriteJob] = deque()  # decoded, waiting for the writer (in order)

    # -- lifecycle ------------------------------------------------------------------------------
    def open(self, commit: Commit) -> None:
        """Start the writer thread and the dead-letter producer; ``commit`` commits a job's offsets."""
        self._commit = commit
        self._producer = Producer(base_config(self.settings) | {"linger.ms": 20, "enable.idempotence": True})
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sink-writer")

    def close(self) -> None:
        """Wait for the writer thread, then deliver the queued dead letters and close the producer."""
        try:
            if self._writer is not None:
                self._writer.shutdown(wait=True)
        finally:
            self._close_producer()

    # -- what the consume loop asks ---------------------------------------------------------------
    @property
    def failing(self) -> bool:
        """A write failed and waits for its retry: reading pauses meanwhile."""
        return self._retry is not None

    def accepting(self) -> bool:
        """Whether a new batch may be handed over now (nothing decoded is waiting, no retry pending)."""
        return not self._pending and self._retry is None

    def idle(self) -> bool:
        """Nothing being written, waiting for a retry, or waiting for the writer."""
        return self._inflight is None and self._retry is None and not self._pending

    def step(self) -> None:
        """Advance: collect a finished write (commit it or schedule its retry), resubmit a failed one
        whose back-off has passed, hand the next decoded job to the writer."""
        self._finish_inflight(wait_s=0.0)
        if self._inflight is None and self._retry is not None and time.monotonic() >= self._retry.retry_at:
            job, self._retry = self._retry, None
            self._submit(job)
        self._submit_next()

    def write(self, buf: dict[TP, list[Message]]) -> None:
        """Decode the buffered messages (step 1) partition by partition and queue each job for the
        writer as soon as it is ready: the writer starts on one partition while the next decodes."""
        for job in self._prepare(buf):
            self._pending.append(job)
            self._submit_next()
        self._submit_next()

    def assigned(self, tps: list[TP]) -> None:
        """Partitions (re)assigned: their stored watermark is read again before they are next written."""
        for tp in tps:
            self.guard.forget(tp)

    def revoke(self, revoked: set[TP]) -> None:
        """Finish (and commit) the write in progress while the partitions are still ours; drop every
        job's part of a revoked partition not yet written: its next owner re-reads it."""
        self._finish_inflight(wait_s=60.0)

        def keep(job: WriteJob) -> bool:
            job.batches = [b for b in job.batches if (b.topic, b.partition) not in revoked]
            job.commits = {tp: o for tp, o in job.commits.items() if tp not in revoked}
            return bool(job.commits)

        if self._retry is not None and not keep(self._retry):
            self._retry = None
        self._pending = deque(j for j in self._pending if keep(j))
        for tp in revoked:
            self.guard.forget(tp)

    def drain(self, buf: dict[TP, list[Message]], attempts: int = 3) -> None:
        """On shutdown: finish the jobs and write ``buf`` (what is still buffered), a few tries at most
        (nothing is committed for a write that keeps failing; the next start re-reads it)."""
        self._finish_inflight(wait_s=120.0)
        limit = (self._retry.failures if self._retry is not None else 0) + attempts
        self._pending.extend(self._prepare(buf))
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

    # -- jobs -----------------------------------------------------------------------------------
    def _submit_next(self) -> None:
        """Hand the oldest decoded job to the writer if it is free (after committing the one it finished)."""
        self._finish_inflight(wait_s=0.0)
        if self._inflight is None and self._retry is None and self._pending:
            self._submit(self._pending.popleft())

    def _prepare(self, buf: dict[TP, list[Message]]) -> Iterator[WriteJob]:
        """Decode ``buf`` (step 1), one job per topic-partition, yielded as each is ready."""
        for (topic, partition), msgs in buf.items():
            if msgs:
                batch = process(self.schemas[topic], topic, partition, msgs)  # type: ignore[arg-type]
                yield WriteJob([batch], {(topic, partition): msgs[-1].offset() + 1})  # type: ignore[operator]

    def _submit(self, job: WriteJob) -> None:
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

    def _committed(self, job: WriteJob) -> None:
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
        assert self._commit is not None
        try:
            self._commit([TopicPartition(t, p, o) for (t, p), o in job.commits.items()])
            self.health.committed()
        except KafkaException as exc:
            # The rows are stored; a replay of these offsets is skipped by the replay guard.
            log.warning("offset commit failed (the next owner re-reads and skips stored rows): %s", exc)

    # -- the writer thread ----------------------------------------------------------------------
    def _write(self, job: WriteJob) -> None:
        """Steps 2 and 3 for ``job`` (on the writer thread); a retry skips what already succeeded."""
        for b in job.batches:
            self.guard.skip_stored(b)
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
            self.guard.advance(tp, b.last_offset)

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
