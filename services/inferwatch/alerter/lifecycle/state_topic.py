"""The alerter's state in Kafka: write changed rows to the changelog, restore a partition from it.

Wire format: :mod:`inferwatch.alerter.lifecycle.changelog` (topic ``inferwatch.alerter-state``,
compacted, as many partitions as ``inferwatch.metrics``; a record goes to the partition of the
metrics partition its row belongs to).

Writing (:class:`StateChangelog`): the store remembers which rows a write touched
(:meth:`~inferwatch.alerter.lifecycle.state.AlertStore.take_dirty`); :meth:`StateChangelog.send`
produces each of those rows *as it is now* (a tombstone when it is gone) without waiting, and
returns the number of that send, its *epoch*. :meth:`StateChangelog.durable_epoch` says up to which
epoch everything is confirmed by Kafka: the service commits the input offsets of a batch, and sends
a decided notification, only once the epoch that carried their rows is durable. Nothing waits on
the event loop (:meth:`StateChangelog.confirm` blocks, for a revocation only). A row whose record
Kafka refused is marked dirty again and produced anew, from the store, by a later send; the epochs
from the failure on are durable only once that re-send is confirmed. Since a record is the whole
row, a late retry can never bring back an older value.

Restoring (:func:`read_partitions`): read the changelog partitions from their start to their end
(high-water mark at the start of the read) and keep the last record per key; records that do not
decode are skipped and counted, never half-applied.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from inferwatch.alerter.errors import AlerterError
from inferwatch.alerter.lifecycle.changelog import ChangelogError, StateKey, decode_record, encode_value
from inferwatch.alerter.lifecycle.state import AlertStore
from inferwatch.config import Settings
from inferwatch.kafka import groups
from inferwatch.kafka.clientconf import base_config

log = logging.getLogger(__name__)

RESTORE_TIMEOUT_S = 120.0  # a partition that cannot be read to its end in this long fails the assignment


class StateRestoreError(AlerterError):
    """A changelog partition could not be read to its end (the alerter must not run on part of its state)."""


@dataclass
class ChangelogStats:
    """What the changelog writer did (health, metrics, tests)."""

    records: int = 0  # records Kafka confirmed
    failures: int = 0  # records Kafka refused or did not confirm (each attempt)
    error: str | None = None  # the last failure, while rows are unconfirmed
    restored: int = 0  # records read by restores
    skipped: int = 0  # records a restore could not decode
    restores: list[tuple[int, int, float]] = field(default_factory=list)  # (partition, records, seconds), last 20


class StateChangelog:
    """Produces the store's changed rows to the changelog topic (``acks=all``, idempotent, ordered)."""

    def __init__(self, settings: Settings, topic: str, store: AlertStore) -> None:
        self.topic = topic
        self.store = store
        self.stats = ChangelogStats()
        # acks=all + idempotence: a confirmed record is on every in-sync replica, in order per partition
        self._producer = Producer({**base_config(settings), "acks": "all", "enable.idempotence": True,
                                   "linger.ms": 1, "message.max.bytes": 16_777_216})
        self._epoch = 0  # sends so far
        self._outstanding: dict[int, int] = {}  # epoch -> its records without a delivery report
        self._failed_at: int | None = None  # the earliest epoch with a refused record, until resolved
        self._resend_epoch: int | None = None  # the send that carried the refused rows again

    def _report(self, key: StateKey, epoch: int) -> Any:
        def cb(err: KafkaError | None, _msg: Any) -> None:
            left = self._outstanding.get(epoch, 1) - 1
            if left > 0:
                self._outstanding[epoch] = left
            else:
                self._outstanding.pop(epoch, None)
            if err is None:
                self.stats.records += 1
                return
            self._fail(key, epoch, str(err))
        return cb

    def _fail(self, key: StateKey, epoch: int, error: str) -> None:
        self.stats.failures += 1
        self.stats.error = f"{self.topic}[{key.part}] {key.kind}: {error}"[:500]
        self._failed_at = epoch if self._failed_at is None else min(self._failed_at, epoch)
        self._resend_epoch = None  # a later send must carry it again, and be confirmed
        self.store.mark_dirty([key])  # produced again, from the store's current row, next time

    @property
    def epoch(self) -> int:
        """The number of the last send."""
        return self._epoch

    @property
    def failing(self) -> bool:
        """Whether a refused row waits to be confirmed (sends should back off)."""
        return self._failed_at is not None

    def send(self) -> int:
        """Produce every row written since the last send (no wait); returns this send's epoch."""
        self._epoch += 1
        epoch = self._epoch
        keys = self.store.take_dirty()
        if self._failed_at is not None and self._resend_epoch is None and keys:
            self._resend_epoch = epoch  # the refused rows are dirty again: this send carries them
        for key in keys:
            value = encode_value(self.store.row(key))
            try:
                self._producer.produce(self.topic, value, key=key.encode(), partition=key.part,
                                       on_delivery=self._report(key, epoch))
                self._outstanding[epoch] = self._outstanding.get(epoch, 0) + 1
            except (BufferError, KafkaException) as exc:  # refused locally (queue full, ...)
                self._fail(key, epoch, f"{type(exc).__name__}: {exc}")
        self._producer.poll(0)
        return epoch

    def durable_epoch(self) -> int:
        """The highest epoch up to which every row sent is confirmed by Kafka (serves delivery reports)."""
        self._producer.poll(0)
        low = min(self._outstanding, default=self._epoch + 1) - 1  # every epoch <= low fully reported
        if self._failed_at is None:
            if self.stats.error is not None and low >= self._epoch:
                self.stats.error = None  # a confirmation that timed out has come through since
            return low
        if self._resend_epoch is not None and low >= self._resend_epoch:
            self._failed_at = self._resend_epoch = None  # the refused rows are in Kafka now
            self.stats.error = None
            return low
        return min(low, self._failed_at - 1)

    @property
    def pending(self) -> bool:
        """Rows written that Kafka has not confirmed yet."""
        return self.store.has_dirty or self.durable_epoch() < self._epoch

    def confirm(self, timeout_s: float = 30.0) -> bool:
        """Produce what is dirty and wait for every delivery report (blocking: for a revocation): True
        when Kafka has every row written so far."""
        epoch = self.send()
        left = self._producer.flush(timeout_s)
        if left and self._failed_at is None:
            self.stats.failures += 1
            self.stats.error = f"{self.topic}: {left} record(s) not confirmed within {timeout_s:.0f} s"
        return self.durable_epoch() >= epoch and not self.store.has_dirty

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush and close the producer."""
        self._producer.flush(timeout_s)
        self._producer.close()

    def restore(self, settings: Settings, parts: set[int]) -> None:
        """Replace the rows of partitions ``parts`` in the store with the changelog's (one reader for all)."""
        t0 = time.monotonic()
        got = read_partitions(settings, self.topic, parts)
        took = time.monotonic() - t0
        for part, (rows, skipped) in sorted(got.items()):
            self.store.replace_partition(part, rows)
            self.stats.restored += len(rows)
            self.stats.skipped += skipped
            self.stats.restores = [*self.stats.restores[-19:], (part, len(rows), round(took, 3))]
        log.info("restored alerter state of partitions %s: %d rows (%d skipped) in %.2f s", sorted(parts),
                 sum(len(r) for r, _ in got.values()), sum(k for _, k in got.values()), took)


def read_partitions(settings: Settings, topic: str, parts: set[int],
                    timeout_s: float = RESTORE_TIMEOUT_S) -> dict[int, tuple[dict[StateKey, Any], int]]:
    """Per changelog partition of ``parts``: the last row per key (``None`` for a deleted row) and how
    many records did not decode. Each is read from its start to its end (the high-water mark when the
    read starts). Raises :class:`StateRestoreError` when an end is not reached in time."""
    out: dict[int, tuple[dict[StateKey, Any], int]] = {p: ({}, 0) for p in parts}
    if not parts:
        return out
    c = Consumer({**base_config(settings), "group.id": groups.group_id(settings, groups.ALERTER_STATE_RESTORE),
                  "enable.auto.commit": False, "enable.partition.eof": True, "auto.offset.reset": "earliest",
                  "fetch.wait.max.ms": 10})
    deadline = time.monotonic() + timeout_s
    try:
        ends: dict[int, int] = {}  # partition -> offset of its last record, for those with records
        for part in sorted(parts):
            while True:
                try:
                    lo, hi = c.get_watermark_offsets(TopicPartition(topic, part), timeout=min(timeout_s, 10.0),
                                                     cached=False)
                    break
                except KafkaException as exc:
                    # a leader moving (a broker restarting, a topic just created) answers NOT_LEADER a while
                    if time.monotonic() > deadline:
                        raise StateRestoreError(f"{topic}[{part}]: cannot read its offsets: {exc}") from None
                    log.info("%s[%d]: offsets not readable yet (%s); retrying", topic, part, exc)
                    time.sleep(0.5)
            if hi > lo:
                ends[part] = hi - 1
        if not ends:
            return out
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(ends)])
        left = set(ends)
        while left:
            if time.monotonic() > deadline:
                raise StateRestoreError(f"{topic}{sorted(left)}: not read to their ends within {timeout_s:.0f} s")
            for m in c.consume(1000, 0.5):
                part = m.partition() or 0
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        left.discard(part)
                        continue
                    raise StateRestoreError(f"{topic}[{part}]: {err}")
                if part not in left:
                    continue  # past the end this read set itself
                rows, skipped = out[part]
                try:
                    key, row = decode_record(m.key(), m.value())
                except ChangelogError as exc:
                    key, row = None, None
                    log.warning("%s[%d]@%d skipped: %s", topic, part, m.offset(), exc)
                if key is not None and key.part != part:  # a record in the wrong partition is not its state
                    log.warning("%s[%d]@%d skipped: its key names partition %d", topic, part, m.offset(), key.part)
                    key = None
                if key is None:
                    out[part] = (rows, skipped + 1)
                else:
                    rows[key] = row
                if (m.offset() or 0) >= ends[part]:
                    left.discard(part)
        return out
    finally:
        c.close()
