"""The sink's consume loop: poll Kafka, buffer per partition, decide when a batch is due, back-pressure.

The loop polls the group's partitions and buffers the messages per topic-partition. A batch is due
at ``batch_rows`` buffered messages, at ``caught_up_rows`` once a poll came back empty (the end of a
backlog), or when the oldest buffered message waited ``batch_ms``; it is then handed to the
:class:`~inferwatch.sink.pipeline.Pipeline` (decode, dead letters, insert, commit). Reading pauses
(the assigned partitions are paused, polling goes on so the group membership stays alive) while
twice ``batch_rows`` are buffered (back-pressure) or a failed write waits for its retry. A revoked
partition's buffer is dropped after the write in progress is finished; its next owner re-reads it.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import groupby
from operator import itemgetter
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from inferwatch.config import Settings
from inferwatch.kafka.clientconf import base_config
from inferwatch.sink.health import SinkHealth
from inferwatch.sink.pipeline import Pipeline
from inferwatch.sink.settings import SinkSettings

log = logging.getLogger(__name__)

TP = tuple[str, int]
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


def consumer_config(settings: Settings, group_id: str, options: SinkSettings) -> dict[str, Any]:
    """The sink consumer's configuration: manual commits, from the earliest offset, deep prefetch."""
    return base_config(settings) | {
        "group.id": group_id,
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
        "session.timeout.ms": options.session_timeout_ms,
    }


class ConsumeLoop:
    """Read ``topics`` in the consumer group ``group_id`` and feed ``pipeline`` batch by batch."""

    def __init__(self, settings: Settings, group_id: str, options: SinkSettings, health: SinkHealth,
                 pipeline: Pipeline) -> None:
        self.settings = settings
        self.group_id = group_id
        self.options = options
        self.health = health
        self.pipeline = pipeline
        self._consumer: Consumer | None = None
        self._buf: dict[TP, list[Message]] = {}
        self._buffered = 0
        self._oldest: float | None = None
        self._paused = False
        self._caught_up = False
        self._closing = False
        self._last_lag = 0.0

    # -- Kafka callbacks (run inside consume(), on the main thread) ------------------------------
    def _on_revoke(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        if self._closing:  # close() after the drain: nothing is pending any more
            return
        revoked = {(p.topic, p.partition) for p in parts}
        self.pipeline.revoke(revoked)
        for tp in revoked:
            self._buffered -= len(self._buf.pop(tp, []))
        if not self._buffered:
            self._oldest = None
        self._paused = False  # a new assignment starts unpaused

    def _on_assign(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        self.pipeline.assigned([(p.topic, p.partition) for p in parts])
        self._paused = False
        log.info("assigned %d partitions", len(parts))

    # -- the loop -------------------------------------------------------------------------------
    def run(self, topics: list[str], stop: threading.Event | None = None, idle_exit_s: float | None = None) -> None:
        """Consume, batch, write and commit until ``stop`` is set (or after ``idle_exit_s`` of silence
        with nothing buffered, for tests and benchmarks). Flushes what is buffered before returning,
        then closes the consumer and the pipeline (writer thread, dead-letter producer)."""
        stop = stop or threading.Event()
        self._closing = False
        self._consumer = c = Consumer(consumer_config(self.settings, self.group_id, self.options))
        pipeline = self.pipeline

        def commit(offsets: list[TopicPartition]) -> None:
            c.commit(offsets=offsets, asynchronous=False)

        pipeline.open(commit)
        c.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
        last_msg = time.monotonic()
        cap = 2 * self.options.batch_rows  # buffered messages beyond which reading pauses (back-pressure)
        with _sparse_gc(_GC_YOUNG):
            try:
                while not stop.is_set():
                    pipeline.step()
                    if pipeline.accepting() and self._due():
                        pipeline.write(self._take())
                    self._set_paused(pipeline.failing or self._buffered >= cap)
                    room = cap - self._buffered
                    msgs = c.consume(num_messages=max(1, min(10_000, room)), timeout=0.05 if self._paused else 0.1)
                    # An empty poll while reading (not paused): the sink is at the end of its partitions.
                    self._caught_up = not msgs and not self._paused
                    if msgs:
                        last_msg = time.monotonic()
                        self._buffer(msgs)
                    elif (idle_exit_s is not None and not self._buffered and pipeline.idle()
                          and time.monotonic() - last_msg > idle_exit_s):
                        break
                    self._update_lag()
                pipeline.drain(self._take())
            finally:
                self._closing = True
                try:
                    c.close()
                finally:
                    pipeline.close()

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

    def _take(self) -> dict[TP, list[Message]]:
        """Empty the buffer and return what it held."""
        buf, self._buf = self._buf, {}
        self._buffered = 0
        self._oldest = None
        return buf

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
