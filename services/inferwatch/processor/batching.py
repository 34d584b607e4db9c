"""faust transport pieces that deliver whole fetches: one event per fetched run of a topic-partition.

Wire format: none of its own. The records are Kafka records as aiokafka's fetcher returns them (key
and value bytes, offset); a :class:`RecordBatch` carries the keys, values and offsets of the records
one fetch returned for one topic-partition of a *batch topic* (the processor's predictions and
feedback topics), in offset order.

Why: faust turns every record into a ``ConsumerMessage``, an ``Event``, a stream-queue item and an
ack (≈ 100 µs of CPU per record in this worker), although the processor's agents only ever want
the whole batch. :class:`BatchingConsumer` hands each fetched run of records of a batch topic to the
conductor as **one** :class:`BatchMessage` whose value is the :class:`RecordBatch`, so faust's
per-message machinery (conductor, channel queue, stream, acks, sensors) runs once per batch.

What stays faust's: the fetcher, flow control, rebalances (generation check, revoked partitions,
seek on resume), the read-offset/gap bookkeeping, acks and commits (``_new_offset`` /
``_commit_offsets``, which flush the producer before committing), tables and changelogs. A batch
message carries the batch's last offset, which faust acks when the agent asks for the next event
(after the batch's table writes and sends); the batch's other offsets are registered as a gap that
faust's commit fills in only up to an acked offset, so a batch becomes committable as a whole, only
once it was processed, and the commit still flushes the producer first.

Other topics (changelogs, the references topic) keep faust's per-message path.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from operator import attrgetter
from typing import Any, cast

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types.tuples import ConsumerMessage

from inferwatch.processor.core.raw_events import Raw

_OFFSET, _KEY, _VALUE = attrgetter("offset"), attrgetter("key"), attrgetter("value")
_BEGIN = attrgetter("begin")


def _size(values: list[bytes | None]) -> int:
    """Bytes of the values (a tombstone counts 0)."""
    if None in values:
        return sum(len(v) for v in values if v is not None)
    return sum(map(len, cast(list[bytes], values)))


class RecordBatch:
    """Keys, values and offsets of consecutive records of one topic-partition (offset order)."""

    __slots__ = ("topic", "partition", "offsets", "keys", "values")

    def __init__(self, topic: str, partition: int, offsets: list[int], keys: list[bytes | None],
                 values: list[bytes | None]) -> None:
        self.topic = topic
        self.partition = partition
        self.offsets = offsets
        self.keys = keys
        self.values = values

    @classmethod
    def from_records(cls, topic: str, partition: int, records: Sequence[Any]) -> RecordBatch:
        """From aiokafka ``ConsumerRecord``s (anything with ``offset``, ``key``, ``value``)."""
        # map(attrgetter) runs the loop in C: ~2x faster than list comprehensions on 20k records
        return cls(topic, partition, list(map(_OFFSET, records)), list(map(_KEY, records)),
                   list(map(_VALUE, records)))

    def __len__(self) -> int:
        return len(self.offsets)

    def bytes_values(self) -> list[bytes]:
        """The values, a tombstone's (``None``) as ``b""``: invalid input like any other, dead-lettered."""
        vals = self.values
        if None in vals:
            return [v if v is not None else b"" for v in vals]
        return cast(list[bytes], vals)

    def raws(self) -> list[Raw]:
        """The records as the core's :class:`Raw` messages (values as in :meth:`bytes_values`)."""
        t, p = self.topic, self.partition
        return [Raw(v, t, p, o, k) for o, k, v in zip(self.offsets, self.keys, self.bytes_values(), strict=True)]


class BatchMessage(ConsumerMessage):  # type: ignore[misc]
    """A faust message standing for a :class:`RecordBatch`: ``offset`` is the batch's last offset."""

    __slots__ = ()

    @classmethod
    def of(cls, tp: Any, batch: RecordBatch, last_record: Any, generation_id: int | None) -> BatchMessage:
        """The message of ``batch``; timestamp and type are those of its last record."""
        ts = last_record.timestamp
        return cls(batch.topic, batch.partition, batch.offsets[-1], ts / 1000.0 if ts is not None else 0.0,
                   last_record.timestamp_type, [], None, cast(bytes, batch), None, 0,
                   _size(batch.values), tp, generation_id=generation_id)

    @property
    def batch(self) -> RecordBatch:
        """The records this message stands for (its ``value``)."""
        return cast(RecordBatch, self.value)


def _bare_record(tp: Any, record: Any) -> Any:
    """aiokafka's parsed record as is (``offset``, ``key``, ``value``, ``timestamp``, ``timestamp_type``)."""
    return record


def _mark_bare(res: Any) -> None:
    """Make one fetch result (aiokafka ``FetchResult``) yield its parsed records without a copy."""
    pr = getattr(res, "_partition_records", None)
    if (pr is not None and pr.__dict__.get("_consumer_record") is not _bare_record
            and pr._key_deserializer is None and pr._value_deserializer is None):
        pr._consumer_record = _bare_record  # read per record by PartitionRecords._unpack_records


class _BareRecordsBuffer(OrderedDict[Any, Any]):
    """The fetcher's buffer of fetch results (``Fetcher._records``, an ``OrderedDict`` there too) that
    marks each result of a batch topic for bare records as the fetcher stores it.

    Marking at store time covers every fetch, also those that arrive while ``fetched_records`` waits
    (a mark made only before the call missed those: ~3 % of the worker's time went to their copies).
    """

    def __init__(self, topics: frozenset[str], items: Any = ()) -> None:
        super().__init__()
        self.topics = topics
        for tp, res in dict(items).items():
            self[tp] = res

    def __setitem__(self, tp: Any, res: Any) -> None:
        if tp.topic in self.topics:
            _mark_bare(res)
        super().__setitem__(tp, res)


def use_bare_records(fetcher: Any, topics: frozenset[str]) -> None:
    """Let ``fetcher``'s fetches of ``topics`` yield aiokafka's parsed records without a
    ``ConsumerRecord`` copy each (a Python dataclass of 11 fields, ~1 µs per record here).

    Only fetches without key/value deserializers (faust's consumer has none) and only batch topics,
    whose records are read for ``offset``/``key``/``value``/``timestamp``/``timestamp_type`` alone —
    attributes the parsed record has too. The fetcher's buffer is replaced once by a
    :class:`_BareRecordsBuffer` holding the same results (aiokafka reads it as ``self._records`` on
    every use and never rebinds it), which marks the buffered results and every later one.
    """
    records = fetcher._records
    if not (type(records) is _BareRecordsBuffer and records.topics == topics):
        fetcher._records = _BareRecordsBuffer(topics, records)


class ShortWaitConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):  # type: ignore[misc]
    """faust's aiokafka consumer thread with a configurable fetch wait (faust hard-codes 1500 ms), and
    batch topics' records without a ``ConsumerRecord`` each (:func:`use_bare_records`).

    aiokafka sends one fetch request per broker at a time, for every partition with nothing
    buffered. While a busy partition's fetched records are being processed, the next request holds
    only idle partitions (feedback, changelogs, references), and the broker keeps it up to
    ``fetch_max_wait_ms`` when none has data; the busy partition, drained meanwhile, cannot be
    fetched again before that request returns. With 1500 ms the worker sat idle ~1 s after every
    fetch under load. ``app.fetch_max_wait_ms`` sets the wait (an idle worker then polls a little
    more often: ~1000 / wait requests per second).
    """

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        wait_ms = getattr(self.app, "fetch_max_wait_ms", None)
        if wait_ms is not None:
            # read by AIOKafkaConsumer.start() when it builds its Fetcher (there is no public setter)
            consumer._fetch_max_wait_ms = int(wait_ms)
        return consumer

    async def _fetch_records(self, consumer: Any, active_partitions: Any, timeout: float | None = None,
                             max_records: int | None = None) -> Any:
        topics = frozenset(getattr(self.app, "batch_topics", ()))
        fetcher = getattr(consumer, "_fetcher", None)
        if topics and fetcher is not None:
            use_bare_records(fetcher, topics)
        return await super()._fetch_records(consumer, active_partitions, timeout=timeout, max_records=max_records)


class BatchingConsumer(faust_aiokafka.Consumer):  # type: ignore[misc]
    """faust's aiokafka consumer delivering batch topics as :class:`BatchMessage`s, others per message.

    ``app.batch_topics`` (a set of topic names) selects the batch topics. The fetch loop is faust
    0.15.3's ``Consumer._drain_messages`` + ``getmany`` with two changes: a batch topic's records of
    one fetch become one message, and a delivery is awaited directly (without ``wait_first``'s four
    tasks per message) when nothing can block it — flow not suspended, flow control active, no
    destination queue full; otherwise faust's interruptible path is taken. Read offsets, gaps and the
    commit-every check are faust's, applied to the batch's first and last offsets.
    """

    def _new_consumer_thread(self) -> ShortWaitConsumerThread:
        return ShortWaitConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _batch_topics(self) -> frozenset[str]:
        return frozenset(getattr(self.app, "batch_topics", ()))

    def _items(self, records: dict[Any, list[Any]], batch_topics: frozenset[str]) -> Iterator[tuple[Any, Any]]:
        """``(tp, message)``: one batch message per batch-topic tp, then faust's round robin of the rest."""
        rest: dict[Any, list[Any]] = {}
        generation_id = self.app.consumer_generation_id
        for tp, recs in records.items():
            if tp.topic in batch_topics:
                if recs:
                    batch = RecordBatch.from_records(tp.topic, tp.partition, recs)
                    yield tp, BatchMessage.of(tp, batch, recs[-1], generation_id)
            else:
                rest[tp] = recs
        if rest:
            to_message = self._to_message
            for tp, record in self.scheduler.iterate(rest):
                yield tp, to_message(tp, record)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - run by faust's Fetcher
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        suspended = self.suspend_flow.is_set
        flow_active = self.app.flow_control.is_active
        tp_index = self.app.topics._tp_index  # type: ignore[attr-defined]
        batch_topics = self._batch_topics()
        yield_every, num_since_yield = 100, 0
        sleep = asyncio.sleep
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag("FETCHING")
                records, active_partitions = await self._wait_next_records(1.0)
                await self.sleep(0)
                if records is None or self.should_stop:
                    continue
                if not self.flow_active:
                    # as faust's getmany: records fetched while flow stopped are dropped, seek back
                    try:
                        await self.perform_seek()
                    except Exception as ex:
                        self.log.warning(f"exception performing seek when flow not active {ex}")
                    continue
                generation_id = self.app.consumer_generation_id
                for tp, message in self._items(dict(records), batch_topics):
                    if not self.flow_active or self.app.consumer_generation_id != generation_id:
                        break
                    if not (active_partitions is None or tp in active_partitions
                            or tp in self._buffered_partitions):
                        continue
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await sleep(0)
                        num_since_yield = 0
                    r_offset = get_read_offset(tp)
                    if type(message) is BatchMessage:
                        message = await self._admit_batch(tp, message, r_offset)
                        if message is None:
                            continue
                        first = message.batch.offsets[0]
                    else:
                        first = message.offset
                        if not (r_offset is None or first >= r_offset):
                            continue
                    gap = first - (r_offset or 0)
                    if gap > 1 and r_offset and acks_enabled_for(message.topic):
                        await self._add_gap(tp, r_offset + 1, first)
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
                    # (a full producer buffer is flushed inside the callback: that ends by itself)
                    if not suspended() and flow_active() and not any(ch.queue.full() for ch in tp_index.get(tp, ())):
                        await callback(message)  # cannot block: no task needed
                    else:
                        await self.wait_first(callback(message), self.suspend_flow.wait())
                    set_read_offset(tp, message.offset)
                unset_flag("FETCHING")
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        finally:
            unset_flag("FETCHING")

    def _new_offset(self, tp: Any) -> int | None:
        """faust's ``_new_offset`` (the offset to commit next), without a Python step per offset when
        the acked offsets and the gaps up to them form one run of consecutive offsets.

        faust expands every gap (a whole batch but its last offset, here) into a list of ints, sorts
        it and walks it with ``groupby`` — ~0.3 µs per event at each commit. When the acked offsets
        (no duplicates) and the gap intervals below the highest of them are disjoint and together
        cover ``lo … hi`` without a hole, and ``lo`` follows the committed offset, faust's result is
        ``hi + 1`` with the acked list emptied, those offsets dropped from the acked index and the
        gaps chopped as faust chops them; that is computed from the intervals. Anything else (holes,
        overlaps, a hole after the committed offset) runs faust's code unchanged.
        """
        acked = self._acked[tp]
        if not acked:
            return None
        gap = self._gap[tp]
        max_offset = max(acked)
        cands = sorted(gap.overlap(0, max_offset), key=_BEGIN) if gap else []
        ints = sorted(acked)
        lo, hi = ints[0], ints[-1]
        total = len(ints)
        if cands:
            lo, hi = min(lo, cands[0].begin), max(hi, cands[-1].end - 1)
            starts = [iv.begin for iv in cands]
            for a, b in zip(cands, cands[1:], strict=False):
                if b.begin < a.end:  # overlapping intervals: faust's list would hold duplicates
                    return cast(int | None, super()._new_offset(tp))
            for o in ints:
                i = bisect_right(starts, o) - 1
                if i >= 0 and o < cands[i].end:  # an acked offset inside a gap: a duplicate in faust's list
                    return cast(int | None, super()._new_offset(tp))
            total += sum(iv.end - iv.begin for iv in cands)
        committed = self._committed_offset[tp]
        if (hi - lo + 1 != total or len(set(ints)) != len(ints)
                or (committed and lo - committed > 1)):
            return cast(int | None, super()._new_offset(tp))
        if cands:
            gap.chop(0, max(cands[-1].end - 1, max_offset + 1))
        acked.clear()
        index = self._acked_index[tp]
        index.difference_update([o for o in index if lo <= o <= hi])
        return hi + 1

    async def _admit_batch(self, tp: Any, message: BatchMessage, r_offset: int | None) -> BatchMessage | None:
        """Drop records already read (offset < read offset, as faust does per message); register the batch.

        The message's offset is the batch's last offset, and that is the offset faust acks — in
        ``Consumer.ack`` or inlined in its compiled stream iterator, which cannot be overridden. The
        batch's other offsets (first … last - 1, with any holes from compaction or transaction markers)
        are registered as a gap with faust's ``_add_gap``: ``_new_offset`` fills a gap in only up to
        the highest acked offset, so they become committable exactly when the last one is acked, i.e.
        after the agent finished the whole batch, and never before.
        """
        batch = message.batch
        offs = batch.offsets
        if r_offset is not None and offs[0] < r_offset:
            keep = [i for i, o in enumerate(offs) if o >= r_offset]
            if not keep:
                return None
            batch.offsets = [offs[i] for i in keep]
            batch.keys = [batch.keys[i] for i in keep]
            batch.values = [batch.values[i] for i in keep]
            offs = batch.offsets
        if len(offs) > 1 and self.app.topics.acks_enabled_for(message.topic):
            await self._add_gap(tp, offs[0], offs[-1] - 1)
        return message


class BatchingTransport(faust_aiokafka.Transport):  # type: ignore[misc]
    """faust's aiokafka transport with :class:`BatchingConsumer`."""

    Consumer = BatchingConsumer
