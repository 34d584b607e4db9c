"""The replay guard: drop what a crash between insert and commit makes the sink read twice.

A message at or below the highest ``kafka_offset`` already stored for its partition (read from the
store once per partition after an assignment) is skipped when the store holds the same event at
the same offset. Event ids are compared, not only offsets: a topic deleted and re-created starts
again at offset 0, below what the store holds for the old topic, and its new messages must be
stored, not skipped as replays. (The store's deduplication token is the second guard: it drops an
identical batch.) The lookups are the store's (:meth:`Store.max_kafka_offset`,
:meth:`Store.kafka_events`); this module holds no SQL.
"""

from __future__ import annotations

import logging

import pyarrow as pa

from inferwatch.sink.batch import PartitionBatch
from inferwatch.store.base import Store

log = logging.getLogger(__name__)

TP = tuple[str, int]


class ReplayGuard:
    """The stored watermark of each partition written since its assignment, and the skip of replays.

    ``skip_stored`` and ``advance`` run on the writer thread, ``forget`` on the main thread inside a
    rebalance callback, while no write of that partition is in progress.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._watermarks: dict[TP, int] = {}

    def forget(self, tp: TP) -> None:
        """Read ``tp``'s watermark from the store again when it is next written (a new assignment)."""
        self._watermarks.pop(tp, None)

    def advance(self, tp: TP, last_offset: int) -> None:
        """``tp`` is now stored up to ``last_offset``."""
        self._watermarks[tp] = max(self._watermarks.get(tp, -1), last_offset)

    def watermark(self, tp: TP, table: str) -> int:
        """The highest offset of ``tp`` already in ``table`` (-1 if none), read once per assignment."""
        wm = self._watermarks.get(tp)
        if wm is None:
            wm = self._watermarks[tp] = self.store.max_kafka_offset(table, tp[0], tp[1])
        return wm

    def skip_stored(self, b: PartitionBatch) -> None:
        """Drop the rows and dead letters of ``b`` already handled: a replay after a crash.

        Only offsets at or below the partition's stored watermark are candidates (nothing is read in
        the usual case, a batch past it). A row is skipped when the store holds the same event id at
        the same offset; the dead letters up to the highest such offset were sent before that insert.
        A candidate with another event id stored there (or none) is new: the topic was deleted and
        re-created since (its offsets start again at 0), and it is written like any other message.
        """
        wm = self.watermark((b.topic, b.partition), b.table)
        if b.first_offset > wm:
            return
        matched = -1
        if b.rows is not None and b.rows.num_rows:
            hi = min(wm, b.last_offset)
            stored = self.store.kafka_events(b.table, b.topic, b.partition, b.first_offset, hi)
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
