"""The store suite, run against every store available: embedded chDB always, a ClickHouse server
when INFERWATCH_CLICKHOUSE_URL is set."""

from __future__ import annotations

import time

import pyarrow as pa
import pytest

from inferwatch.store import ReadOnlyViolation, Store
from inferwatch.store.migrations import discover, migrations_dir

pytestmark = pytest.mark.integration

# ``store``: a migrated store of the test's own, once per kind of store (tests/integration/conftest.py)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _predictions(n: int, offset0: int = 0, label: str = "cat") -> pa.Table:
    now = _now_ms()
    return pa.table({
        "event_id": [f"e{i}" for i in range(offset0, offset0 + n)],
        "prediction_id": [f"p{i}" for i in range(offset0, offset0 + n)],
        "ts": pa.array([now + i for i in range(n)], pa.int64()).cast(pa.timestamp("ms", "UTC")),
        "model": ["m"] * n,
        "model_version": ["v1"] * n,
        "latency_ms": [float(i % 10) for i in range(n)],
        "error": [None if i % 5 else "boom" for i in range(n)],
        "output_label": [label] * n,
        "kafka_topic": ["t"] * n,
        "kafka_partition": pa.array([0] * n, pa.uint32()),
        "kafka_offset": pa.array(list(range(offset0, offset0 + n)), pa.uint64()),
    })


def test_migrate_is_idempotent_and_recorded(store: Store) -> None:
    assert store.migrate() == []
    versions = [r[0] for r in store.query("SELECT version FROM schema_migrations ORDER BY version").rows]
    assert versions == [m.version for m in discover(migrations_dir())]
    tables = {r[0] for r in store.query("SHOW TABLES").rows}
    assert {"predictions", "feedback", "metrics", "alerts", "deadletter", "predictions_1m",
            "predictions_labeled", "detections"} <= tables


def test_detections_are_stored_typed_and_a_repeat_counts_once(store: Store) -> None:
    """The sink's rows of ``detection.v1`` fit the table; the same detection re-emitted after a replay
    (same deterministic id, another offset and token) is one row once merged (``FINAL``)."""
    import datetime as dt

    from inferwatch.contract.events import DetectionV1, Evidence, detection_id
    from inferwatch.sink.arrow_tables import Kafka, detections

    ts = _now_ms()  # within the table's TTL
    d = DetectionV1(event_id=detection_id("m", "v1", "device", "new", "input", "input.w", "cusum", "detected", ts),
                    ts=ts, model="m", model_version="v1", segment_key="device", segment_value="new", new_segment=True,
                    signal="input", metric="input.w", detector="cusum", statistic=12.0, threshold=9.0,
                    false_alarm_rate=1e-4, events=31, change_ts=ts - 30_000, value=4032.0, reference=1920.0,
                    evidence=[Evidence(name="input.w", score=8.0), Evidence(name="input.h", score=7.5)])
    whole = DetectionV1(event_id="d-whole", ts=ts, model="m", model_version="v1", signal="performance",
                        metric="performance.accuracy", detector="sprt", status="cleared", statistic=-1.0,
                        threshold=4.6, events=0, labels=12)
    store.insert("detections", detections([d, whole], Kafka("t", 0, [5, 6])), dedup_token="t-0-5-6")
    store.insert("detections", detections([d], Kafka("t", 0, [9])), dedup_token="t-0-9-9")  # the replay
    rows = store.query("SELECT segment_value, new_segment, status, labels, change_ts, evidence_names, evidence_scores "
                       "FROM detections FINAL ORDER BY segment_value NULLS FIRST").rows
    assert len(rows) == 2
    assert rows[0][:4] == (None, False, "cleared", 12)
    seg, new, status, labels, change, names, scores = rows[1]
    assert (seg, new, status, labels) == ("new", True, "detected", None)
    assert change == dt.datetime.fromtimestamp((ts - 30_000) / 1000, dt.UTC)
    assert list(names) == ["input.w", "input.h"] and list(scores) == [8.0, 7.5]


def test_insert_with_the_same_token_is_dropped(store: Store) -> None:
    batch = _predictions(1000)
    assert store.insert("predictions", batch, dedup_token="t-0-0-999") == 1000
    store.insert("predictions", batch, dedup_token="t-0-0-999")  # a retry after a crash: dropped
    assert store.scalar("SELECT count() FROM predictions") == 1000
    # The rollup fed by the materialized view is not double counted either.
    assert store.scalar("SELECT countMerge(requests) FROM predictions_1m") == 1000
    store.insert("predictions", _predictions(10, 1000), dedup_token="t-0-1000-1009")
    assert store.scalar("SELECT count() FROM predictions") == 1010


def test_identical_rows_under_another_token_are_kept(store: Store) -> None:
    # The control for the test above: identical rows under different tokens are both kept, so the
    # dedup really comes from the token and not from the data.
    store.insert("predictions", _predictions(10), dedup_token="a")
    store.insert("predictions", _predictions(10), dedup_token="b")
    assert store.scalar("SELECT count() FROM predictions") == 20


def test_rollup_counts_errors_and_latency(store: Store) -> None:
    store.insert("predictions", _predictions(100), dedup_token="x")
    req, err, q = store.query(
        "SELECT countMerge(requests), countMerge(errors), quantilesTDigestMerge(0.5, 0.9, 0.99)(latency_ms_q) "
        "FROM predictions_1m WHERE model = 'm'"
    ).rows[0]
    assert (req, err) == (100, 20)
    assert 3.0 <= q[0] <= 6.0


def test_predictions_labeled_joins_the_latest_feedback(store: Store) -> None:
    store.insert("predictions", _predictions(3), dedup_token="p")
    now = _now_ms()
    fb = pa.table({
        "event_id": ["f1", "f2", "f3"],
        "prediction_id": ["p0", "p0", "p1"],
        "ts": pa.array([now, now + 1000, now], pa.int64()).cast(pa.timestamp("ms", "UTC")),
        "model": ["m", "m", "m"],
        "label": ["dog", "cat", "dog"],  # p0: dog then cat (the latest wins) -> correct; p1 wrong
        "kafka_topic": ["f"] * 3,
        "kafka_partition": pa.array([0] * 3, pa.uint32()),
        "kafka_offset": pa.array([0, 1, 2], pa.uint64()),
    })
    store.insert("feedback", fb, dedup_token="f")
    rows = store.query(
        "SELECT prediction_id, labeled, feedback_label, correct FROM predictions_labeled ORDER BY prediction_id"
    ).rows
    assert rows == [("p0", 1, "cat", 1), ("p1", 1, "dog", 0), ("p2", 0, None, None)]


def test_read_only_queries_refuse_writes(store: Store) -> None:
    with pytest.raises(ReadOnlyViolation):
        store.query("INSERT INTO predictions (event_id) VALUES ('x')")
    with pytest.raises(ReadOnlyViolation):
        store.query("DROP TABLE predictions")
    assert store.scalar("SELECT count() FROM predictions") == 0


def test_limits_cut_rows_and_params_bind(store: Store) -> None:
    res = store.query("SELECT number FROM numbers(100000)", max_rows=7)
    assert len(res) == 7 and res.truncated
    res = store.query("SELECT number FROM numbers(5)", max_rows=7)
    assert len(res) == 5 and not res.truncated
    assert store.query("SELECT {a:String} || '!', {b:UInt32} + 1", {"a": "hi", "b": "41"}).rows == [("hi!", 42)]
    df = store.query_df("SELECT number AS n FROM numbers(3)")
    assert list(df["n"]) == [0, 1, 2]
