"""The sink: every topic -> ClickHouse tables, at-least-once made exactly-once at the store.

Commit order (DESIGN.md), per flush:

1. decode the buffered messages of each topic-partition into rows and dead letters;
2. produce the dead letters and wait until Kafka has them;
3. insert each topic-partition's rows with the token ``topic-partition-first_offset-last_offset``;
4. only then commit the offsets (``last_offset + 1``).

A crash between 3 and 4 replays the messages. Two guards make the replay harmless: messages at or
below the highest ``kafka_offset`` already stored for their partition are skipped (read from the
table when a partition is first flushed), and an identical batch is dropped by the store's
deduplication token. A failing store is retried with back-off while the partitions are paused;
nothing is committed until the insert succeeds, and the process does not exit.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from inferwatch.config import Settings
from inferwatch.contract.topics import load_registry
from inferwatch.kafka.clientconf import base_config
from inferwatch.sink.batch import PartitionBatch, RawMessage, process
from inferwatch.sink.columns import BUILDERS
from inferwatch.sink.errors import DeadletterDeliveryError
from inferwatch.sink.health import SinkHealth
from inferwatch.sink.options import SinkOptions
from inferwatch.store.base import Store
from inferwatch.store.errors import StoreError

log = logging.getLogger(__name__)

TP = tuple[str, int]


class Sink:
    """Consume every topic of the registry and write it to ``store``."""

    def __init__(self, settings: Settings, store: Store, options: SinkOptions | None = None) -> None:
        self.settings = settings
        self.store = store
        self.options = options or SinkOptions()
        self.health = SinkHealth(store_kind=store.kind)
        self.schemas: dict[str, str] = {
            spec.full_name(settings.topic_prefix): spec.schema_ for spec in load_registry().values()
        }
        self._buf: dict[TP, list[RawMessage]] = {}
        self._buffered = 0
        self._oldest: float | None = None
        self._watermarks: dict[TP, int] = {}
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._last_lag = 0.0

    # -- Kafka callbacks ----------------------------------------------------------------------
    def _on_revoke(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        # Uncommitted messages of a revoked partition are re-read by its next owner; drop ours.
        for p in parts:
            tp = (p.topic, p.partition)
            self._buffered -= len(self._buf.pop(tp, []))
            self._watermarks.pop(tp, None)

    def _on_assign(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        for p in parts:
            self._watermarks.pop((p.topic, p.partition), None)
        log.info("assigned %d partitions", len(parts))

    # -- the loop -------------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None, idle_exit_s: float | None = None) -> None:
        """Consume, batch, write and commit until ``stop`` is set (or after ``idle_exit_s`` of silence
        with nothing buffered, for tests and benchmarks). Flushes what is buffered before returning."""
        stop = stop or threading.Event()
        conf = base_config(self.settings) | {
            "group.id": self.options.group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 100,
            "max.poll.interval.ms": 600_000,
            "session.timeout.ms": self.options.session_timeout_ms,
        }
        self._consumer = c = Consumer(conf)
        self._producer = Producer(base_config(self.settings) | {"linger.ms": 20, "enable.idempotence": True})
        c.subscribe(list(self.schemas), on_assign=self._on_assign, on_revoke=self._on_revoke)
        last_msg = time.monotonic()
        try:
            while not stop.is_set():
                want = max(1, min(10_000, self.options.batch_rows - self._buffered))
                msgs = c.consume(num_messages=want, timeout=0.1)
                if msgs:
                    last_msg = time.monotonic()
                self._buffer(msgs)
                if self._due():
                    self._flush_with_retry(stop)
                elif idle_exit_s is not None and not self._buffered and time.monotonic() - last_msg > idle_exit_s:
                    break
                self._update_lag()
            if self._buffered:
                self._flush_with_retry(stop, attempts=3)
        finally:
            c.close()
            self._producer.flush(10)

    def _buffer(self, msgs: list) -> None:  # type: ignore[type-arg]
        buf = self._buf
        n = 0
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", err)
                continue
            tp = (m.topic(), m.partition())
            lst = buf.get(tp)
            if lst is None:
                lst = buf[tp] = []
            lst.append(RawMessage(m.offset(), m.key(), m.value()))
            n += 1
        if n:
            self._buffered += n
            self.health.messages_consumed += n
            if self._oldest is None:
                self._oldest = time.monotonic()

    def _due(self) -> bool:
        if not self._buffered:
            return False
        if self._buffered >= self.options.batch_rows:
            return True
        return self._oldest is not None and (time.monotonic() - self._oldest) * 1000 >= self.options.batch_ms

    # -- flushing -------------------------------------------------------------------------------
    def _flush_with_retry(self, stop: threading.Event, attempts: int | None = None) -> None:
        """Flush until it succeeds; while the store fails, back off with the partitions paused."""
        delay = self.options.retry_initial_s
        n = 0
        while True:
            try:
                self.flush()
                if self.health.consecutive_failures:
                    log.info("store is back; flushed after %d failed attempts", self.health.consecutive_failures)
                    self.health.store_recovered()
                return
            except (StoreError, DeadletterDeliveryError) as exc:
                n += 1
                self.health.store_failed(str(exc))
                log.error("flush failed (attempt %d), retrying in %.1fs, nothing committed: %s", n, delay, exc)
                if stop.is_set() and attempts is None:
                    attempts = n + 2  # shutting down: a couple more tries, then give up (nothing committed)
                if attempts is not None and n >= attempts:
                    return
                self._wait_paused(delay, stop)
                delay = min(delay * 2, self.options.retry_max_s)

    def _wait_paused(self, seconds: float, stop: threading.Event) -> None:
        """Sleep ``seconds`` while keeping the group membership alive and reading nothing new."""
        c = self._consumer
        assert c is not None
        parts = c.assignment()
        if parts:
            c.pause(parts)
        end = time.monotonic() + seconds
        try:
            while time.monotonic() < end and not stop.is_set():
                for m in c.consume(num_messages=100, timeout=min(0.2, max(0.0, end - time.monotonic()))):
                    # Paused: only messages fetched before the pause can arrive; keep them in order.
                    self._buffer([m])
        finally:
            parts = c.assignment()
            if parts:
                c.resume(parts)

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

    def flush(self) -> None:
        """Write what is buffered, then commit its offsets (see the module docstring for the order)."""
        if not self._buffered:
            return
        assert self._consumer is not None and self._producer is not None
        batches: list[PartitionBatch] = []
        commits: list[TopicPartition] = []
        for tp, msgs in self._buf.items():
            if not msgs:
                continue
            schema = self.schemas[tp[0]]
            wm = self._watermark(tp, BUILDERS[schema][0])
            fresh = msgs if msgs[0].offset > wm else [m for m in msgs if m.offset > wm]
            if len(fresh) < len(msgs):
                log.info("%s[%d]: skipping %d messages already stored (replay after a crash)",
                         tp[0], tp[1], len(msgs) - len(fresh))
            if fresh:
                batches.append(process(schema, tp[0], tp[1], fresh))
            commits.append(TopicPartition(tp[0], tp[1], msgs[-1].offset + 1))

        self._send_dead_letters(batches)
        for b in batches:
            if b.rows is not None and b.rows.num_rows:
                self.store.insert(b.table, b.rows, dedup_token=b.dedup_token)
                self.health.wrote(b.table, b.rows.num_rows)
            self._watermarks[(b.topic, b.partition)] = b.last_offset
        if self.options.crash_after_insert:
            log.warning("crash_after_insert is set: SIGKILL before the offset commit")
            os.kill(os.getpid(), signal.SIGKILL)
        if commits:
            self._consumer.commit(offsets=commits, asynchronous=False)
            self.health.committed()
        self._buf.clear()
        self._buffered = 0
        self._oldest = None

    def _send_dead_letters(self, batches: list[PartitionBatch]) -> None:
        dls = [(b.topic, dl) for b in batches for dl in b.dead_letters]
        if not dls:
            return
        p = self._producer
        assert p is not None
        failures: list[str] = []

        def on_delivery(err: KafkaError | None, _msg: object) -> None:
            if err is not None:
                failures.append(str(err))

        topic = self.settings.deadletter_topic
        for src, dl in dls:
            log.debug("dead letter from %s[%s]@%s: %s", src, dl.source_partition, dl.source_offset, dl.reason)
            p.produce(topic, key=src.encode(), value=dl.model_dump_json(exclude_none=True).encode(),
                      on_delivery=on_delivery)
        remaining = p.flush(30)
        if remaining or failures:
            raise DeadletterDeliveryError(f"{remaining} dead letters undelivered; errors: {failures[:3]}")
        self.health.dead_letters += len(dls)

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
