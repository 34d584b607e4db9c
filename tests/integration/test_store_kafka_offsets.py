"""The store's lookups for the sink's replay guard (``max_kafka_offset``, ``kafka_events``), on every
store available: embedded chDB always, a ClickHouse server when INFERWATCH_CLICKHOUSE_URL is set."""

from __future__ import annotations

import time

import pyarrow as pa
import pytest

from inferwatch.store import Store

pytestmark = pytest.mark.integration

# ``store``: a migrated store of the test's own, once per kind of store (tests/integration/conftest.py)


def _feedback(topic: str, partition: int, offsets: list[int], prefix: str) -> pa.Table:
    n = len(offsets)
    now = int(time.time() * 1000)  # within the table's TTL: older rows may be dropped on insert
    return pa.table({
        "event_id": [f"{prefix}{o}" for o in offsets],
        "prediction_id": [f"p-{prefix}{o}" for o in offsets],  # unique: the table replaces by it
        "ts": pa.array([now + o for o in offsets], pa.int64()).cast(pa.timestamp("ms", "UTC")),
        "label": ["cat"] * n,
        "kafka_topic": [topic] * n,
        "kafka_partition": pa.array([partition] * n, pa.uint32()),
        "kafka_offset": pa.array(offsets, pa.uint64()),
    })


def test_max_kafka_offset_is_per_topic_partition_and_minus_one_when_empty(store: Store) -> None:
    assert store.max_kafka_offset("feedback", "t", 0) == -1
    store.insert("feedback", _feedback("t", 0, [0, 1, 2, 7], "a"), dedup_token="t-0-0-7")
    store.insert("feedback", _feedback("t", 1, [0, 40], "b"), dedup_token="t-1-0-40")
    store.insert("feedback", _feedback("u", 0, [99], "c"), dedup_token="u-0-99-99")
    assert store.max_kafka_offset("feedback", "t", 0) == 7
    assert store.max_kafka_offset("feedback", "t", 1) == 40
    assert store.max_kafka_offset("feedback", "u", 0) == 99
    assert store.max_kafka_offset("feedback", "t", 2) == -1
    # A row stored at offset 0 is a watermark of 0, not "nothing stored".
    store.insert("feedback", _feedback("z", 0, [0], "d"), dedup_token="z-0-0-0")
    assert store.max_kafka_offset("feedback", "z", 0) == 0


def test_kafka_events_returns_offset_and_event_id_in_the_closed_range(store: Store) -> None:
    store.insert("feedback", _feedback("t", 0, list(range(10)), "old"), dedup_token="t-0-0-9")
    # The topic deleted and re-created: offsets 0-2 again, other events.
    store.insert("feedback", _feedback("t", 0, [0, 1, 2], "new"), dedup_token="t-0-0-2")
    store.insert("feedback", _feedback("t", 1, [3], "other"), dedup_token="t-1-3-3")
    got = store.kafka_events("feedback", "t", 0, 2, 4)
    assert got == {(2, "old2"), (3, "old3"), (4, "old4"), (2, "new2")}
    assert store.kafka_events("feedback", "t", 0, 5, 4) == set()  # an empty range reads nothing
    assert store.kafka_events("feedback", "t", 1, 0, 100) == {(3, "other3")}
    assert store.kafka_events("feedback", "nope", 0, 0, 100) == set()


@pytest.mark.parametrize("table", ["feedback; DROP TABLE feedback", "feedback WHERE 1=1 --", "", "1x", "a.b"])
def test_a_table_name_that_is_not_an_identifier_is_refused(store: Store, table: str) -> None:
    with pytest.raises(ValueError, match="not a plain table name"):
        store.max_kafka_offset(table, "t", 0)
    with pytest.raises(ValueError, match="not a plain table name"):
        store.kafka_events(table, "t", 0, 0, 1)
    assert store.max_kafka_offset("feedback", "t", 0) == -1  # the table is still there
