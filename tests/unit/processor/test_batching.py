"""The faust worker's batch delivery (``inferwatch.processor.batching``) against faust's per-message path.

No broker: the consumer objects are built but never started. A batch event is acked by faust like
one message (its last offset); the batch's other offsets must become committable with it — whole,
and only once it was acked (i.e. processed) — through faust's own gap and commit bookkeeping.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage
from hypothesis import given, settings
from hypothesis import strategies as st

from inferwatch.config import Settings
from inferwatch.processor.app import build_app
from inferwatch.processor.batching import BatchingConsumer, BatchMessage, RecordBatch
from inferwatch.processor.core.raw_events import Raw
from inferwatch.processor.settings import ProcessorSettings

TOPIC = "t-inferwatch.predictions"


class Rec:
    """What the batch is built from: aiokafka's records (offset, key, value, timestamp, type)."""

    def __init__(self, offset: int, key: bytes | None, value: bytes | None) -> None:
        self.offset, self.key, self.value = offset, key, value
        self.timestamp, self.timestamp_type = 1_700_000_000_000 + offset, 0


@pytest.fixture(scope="module")
def consumers(tmp_path_factory: pytest.TempPathFactory) -> tuple[BatchingConsumer, BatchingConsumer]:
    """Two unstarted worker consumers."""
    out = []
    for name in ("batch", "single"):
        s = Settings(kafka_bootstrap="127.0.0.1:9", topic_prefix="t-", data_dir=tmp_path_factory.mktemp(name))
        app = build_app(s, ProcessorSettings())
        app.topics._acking_topics.add(TOPIC)  # done by the conductor when the agents subscribe
        out.append(app.consumer)
    assert isinstance(out[0], BatchingConsumer)
    return out[0], out[1]


def _reset(c: Any, tp: TP, committed: int | None) -> None:
    c._acked.clear()
    c._acked_index.clear()
    c._gap.clear()
    c._n_acked = 0
    c._committed_offset[tp] = committed


def _batch(offsets: list[int]) -> RecordBatch:
    return RecordBatch.from_records(TOPIC, 0, [Rec(o, b"m", b"v%d" % o) for o in offsets])


def _deliver(c: Any, tp: TP, offsets: list[int]) -> BatchMessage | None:
    """What the drain loop does with one fetched batch: faust's gap rule for its first offset, then admit."""
    message = BatchMessage.of(tp, _batch(offsets), Rec(offsets[-1], b"m", b"v"), generation_id=1)
    r_offset = c._read_offset[tp]
    admitted = asyncio.run(c._admit_batch(tp, message, r_offset))
    if admitted is None:
        return None
    first = admitted.batch.offsets[0]
    if first - (r_offset or 0) > 1 and r_offset:
        asyncio.run(c._add_gap(tp, r_offset + 1, first))
    c._read_offset[tp] = admitted.offset
    return admitted


def _commit(c: Any, tp: TP) -> int | None:
    """What faust's commit does to its bookkeeping, repeated until stable (faust's per-message gap rule
    may need more than one round to pass a hole), without Kafka."""
    for _ in range(50):
        off = c._new_offset(tp)
        if off is not None and c._should_commit(tp, off):
            c._committed_offset[tp] = off
    committed: int | None = c._committed_offset[tp]
    return committed


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=1, max_size=40), st.lists(st.integers(1, 8), min_size=1, max_size=8),
       st.integers(0, 8), st.booleans())
def test_a_batch_commits_whole_and_only_once_acked(consumers: tuple[Any, Any], steps: list[int], sizes: list[int],
                                                   n_acked: int, resumed: bool) -> None:
    c, single = consumers
    tp = TP(TOPIC, 0)
    offsets = [10 + sum(steps[:i]) for i in range(len(steps))]  # holes where a step is > 1 (compaction)
    batches, i = [], 0
    for n in sizes:
        if i < len(offsets):
            batches.append(offsets[i:i + n])
            i += n
    _reset(c, tp, 10 if resumed else None)  # a resumed group starts at its committed offset
    c._read_offset[tp] = 10 if resumed else None
    delivered = [_deliver(c, tp, b) for b in batches]
    assert all(m is not None for m in delivered)
    start = 10 if resumed else None
    assert _commit(c, tp) == start  # nothing acked: nothing more committed, although every batch was read
    n_acked = min(n_acked, len(delivered))
    for m in delivered[:n_acked]:  # faust acks the message (its last offset) when the agent takes the next
        assert m is not None and c.ack(m)
    want = batches[n_acked - 1][-1] + 1 if n_acked else start
    assert _commit(c, tp) == want
    # faust's per-message path over the same records reaches the same committed offset
    _reset(single, tp, 10 if resumed else None)
    single._read_offset[tp] = 10 if resumed else None
    for b in batches:
        for o in b:
            r_offset = single._read_offset[tp]
            if o - (r_offset or 0) > 1 and r_offset:
                asyncio.run(single._add_gap(tp, r_offset + 1, o))
            single._read_offset[tp] = o
    for b in batches[:n_acked]:
        for o in b:
            single.ack(ConsumerMessage(TOPIC, 0, o, 0.0, 0, [], b"m", b"v", None, tp=tp))
    assert _commit(single, tp) == want


def test_batch_message_stands_for_its_last_record() -> None:
    tp = TP(TOPIC, 3)
    b = RecordBatch.from_records(TOPIC, 3, [Rec(10, b"a", b"x"), Rec(11, None, None), Rec(12, b"b", b"yz")])
    m = BatchMessage.of(tp, b, Rec(12, b"b", b"yz"), generation_id=7)
    assert (m.topic, m.partition, m.offset, m.tp, m.generation_id) == (TOPIC, 3, 12, tp, 7)
    assert m.batch is b and m.value is b and m.key is None
    assert m.timestamp == (1_700_000_000_000 + 12) / 1000.0
    assert m.serialized_value_size == 3


@given(st.lists(st.tuples(st.one_of(st.none(), st.binary(max_size=8)), st.one_of(st.none(), st.binary(max_size=30))),
                min_size=1, max_size=30))
def test_raws_equal_per_message_raws(kv: list[tuple[bytes | None, bytes | None]]) -> None:
    recs = [Rec(100 + i, k, v) for i, (k, v) in enumerate(kv)]
    b = RecordBatch.from_records(TOPIC, 2, recs)
    # what the per-message path built for each event; a tombstone becomes b"" (dead-lettered as invalid)
    assert b.raws() == [Raw(r.value if r.value is not None else b"", TOPIC, 2, r.offset, r.key) for r in recs]
    assert b.bytes_values() == [r.value if r.value is not None else b"" for r in recs]
    assert len(b) == len(recs) and b.offsets == [r.offset for r in recs] and b.keys == [r.key for r in recs]


def test_admit_drops_records_already_read_and_covers_the_batch_by_a_gap(consumers: tuple[Any, Any]) -> None:
    c, _ = consumers
    tp = TP(TOPIC, 0)
    _reset(c, tp, None)
    b = _batch([3, 4, 5, 6, 9, 10])
    m = BatchMessage.of(tp, b, Rec(10, b"m", b"v"), generation_id=1)
    admitted = asyncio.run(c._admit_batch(tp, m, 5))  # read offset 5: 3 and 4 were delivered before
    assert admitted is m and b.offsets == [5, 6, 9, 10] and b.values == [b"v5", b"v6", b"v9", b"v10"]
    assert sorted((i.begin, i.end) for i in c._gap[tp]) == [(5, 10)]  # all but the last; it is acked
    assert c._new_offset(tp) is None  # not acked yet: nothing to commit
    c.ack(m)
    assert c._new_offset(tp) == 11
    assert asyncio.run(c._admit_batch(tp, BatchMessage.of(tp, _batch([1, 2]), Rec(2, b"m", b"v"), 1), 5)) is None


def test_the_app_delivers_its_input_topics_in_batches(consumers: tuple[Any, Any], tmp_path: Path) -> None:
    s = Settings(kafka_bootstrap="127.0.0.1:9", topic_prefix="t-", data_dir=tmp_path)
    app = build_app(s, ProcessorSettings(fetch_max_wait_ms=50))
    assert app.batch_topics == {s.predictions_topic, s.feedback_topic}
    assert app.fetch_max_wait_ms == 50


def _partition_records(topic: str, values: list[bytes | None]) -> Any:
    """aiokafka's PartitionRecords over one real v2 record batch holding ``values`` (key b"m")."""
    from aiokafka.consumer.fetcher import PartitionRecords
    from aiokafka.record.default_records import DefaultRecordBatchBuilder
    from aiokafka.record.memory_records import MemoryRecords
    from aiokafka.structs import TopicPartition

    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0, producer_id=-1,
                                  producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    for i, v in enumerate(values):
        b.append(i, timestamp=1_700_000_000_000 + i, key=b"m", value=v, headers=[])
    return PartitionRecords(TopicPartition(topic, 0), MemoryRecords(bytes(b.build())), [], 0, None, None, True,
                            0)


@given(st.lists(st.one_of(st.none(), st.binary(max_size=40)), min_size=1, max_size=20))
def test_bare_records_make_the_same_batch(values: list[bytes | None]) -> None:
    from types import SimpleNamespace

    from inferwatch.processor.batching import use_bare_records

    other = "t-inferwatch.metrics"
    bare, usual, untouched = (_partition_records(TOPIC, values), _partition_records(TOPIC, values),
                              _partition_records(other, values))
    fetcher = SimpleNamespace(_records={TP(TOPIC, 0): SimpleNamespace(_partition_records=bare),
                                        TP(other, 0): SimpleNamespace(_partition_records=untouched)})
    use_bare_records(fetcher, frozenset({TOPIC}))
    got, want = list(bare), list(usual)
    assert type(got[0]).__name__ != "ConsumerRecord" and type(list(untouched)[0]).__name__ == "ConsumerRecord"
    a, b = RecordBatch.from_records(TOPIC, 0, got), RecordBatch.from_records(TOPIC, 0, want)
    assert (a.offsets, a.keys, a.values) == (b.offsets, b.keys, b.values)
    ma, mb = (BatchMessage.of(TP(TOPIC, 0), a, got[-1], 1), BatchMessage.of(TP(TOPIC, 0), b, want[-1], 1))
    assert (ma.offset, ma.timestamp, ma.timestamp_type) == (mb.offset, mb.timestamp, mb.timestamp_type)


def test_bare_records_also_for_fetches_stored_later() -> None:
    """A fetch result the fetcher stores after the hook (e.g. while ``fetched_records`` waits) is marked too."""
    from collections import OrderedDict
    from types import SimpleNamespace

    from inferwatch.processor.batching import use_bare_records

    values: list[bytes | None] = [b"a", None, b"c"]
    other = "t-inferwatch.metrics"
    fetcher = SimpleNamespace(_records=OrderedDict())
    use_bare_records(fetcher, frozenset({TOPIC}))
    buffer = fetcher._records
    use_bare_records(fetcher, frozenset({TOPIC}))  # idempotent: the same buffer stays
    assert fetcher._records is buffer and isinstance(buffer, OrderedDict)
    later, untouched = _partition_records(TOPIC, values), _partition_records(other, values)
    fetcher._records[TP(TOPIC, 0)] = SimpleNamespace(_partition_records=later)
    fetcher._records[TP(other, 0)] = SimpleNamespace(_partition_records=untouched)
    got, want = list(later), list(_partition_records(TOPIC, values))
    assert all(type(r).__name__ != "ConsumerRecord" for r in got)
    assert type(list(untouched)[0]).__name__ == "ConsumerRecord"
    assert [(r.offset, r.key, r.value) for r in got] == [(r.offset, r.key, r.value) for r in want]
    assert list(fetcher._records) == [TP(TOPIC, 0), TP(other, 0)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 40), max_size=8), st.lists(st.tuples(st.integers(0, 40), st.integers(1, 12)), max_size=5),
       st.one_of(st.none(), st.integers(0, 40)), st.lists(st.integers(0, 40), max_size=4))
def test_new_offset_equals_fausts(consumers: tuple[Any, Any], acked: list[int], gaps: list[tuple[int, int]],
                                  committed: int | None, extra_index: list[int]) -> None:
    """The interval shortcut of ``_new_offset`` leaves the same bookkeeping and returns the same offset
    as faust's own method, for any acked offsets (unsorted, duplicated) and gaps (merged as faust merges)."""
    from faust.transport.drivers import aiokafka as faust_aiokafka

    mine, ref = consumers
    tp = TP(TOPIC, 0)
    for c in (mine, ref):
        _reset(c, tp, committed)
        c._acked[tp].extend(acked)
        c._acked_index[tp].update(acked + extra_index)
        for begin, n in gaps:
            c._gap[tp].addi(begin, begin + n)
        c._gap[tp].merge_overlaps()
    for _ in range(3):  # repeated, as commits follow each other
        got = mine._new_offset(tp)
        want = faust_aiokafka.Consumer._new_offset(ref, tp)
        assert got == want
        assert mine._acked[tp] == ref._acked[tp]
        assert mine._acked_index[tp] == ref._acked_index[tp]
        assert sorted(mine._gap[tp]) == sorted(ref._gap[tp])
        if got is not None:
            for c in (mine, ref):
                c._committed_offset[tp] = got


def test_new_offset_shortcut_on_whole_batches(consumers: tuple[Any, Any]) -> None:
    """The common case (acked batch ends, each batch's other offsets a gap) takes the shortcut: no
    per-offset list, same result as faust."""
    from faust.transport.drivers import aiokafka as faust_aiokafka

    mine, ref = consumers
    tp = TP(TOPIC, 0)
    for c in (mine, ref):
        _reset(c, tp, 99)
        for first, last in ((100, 19_999), (20_000, 39_999)):
            c._gap[tp].addi(first, last)
            c._gap[tp].merge_overlaps()
            c._acked[tp].append(last)
            c._acked_index[tp].add(last)
    assert mine._new_offset(tp) == faust_aiokafka.Consumer._new_offset(ref, tp) == 40_000
    assert mine._acked[tp] == ref._acked[tp] == [] and not mine._acked_index[tp] and not ref._acked_index[tp]
    assert sorted(mine._gap[tp]) == sorted(ref._gap[tp])
