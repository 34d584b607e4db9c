"""Saved investigations give the right numbers on a small, hand-checked history (embedded store)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from inferwatch.config import Settings
from inferwatch.store import open_store
from inferwatch.store.saved import list_saved, load

pytestmark = pytest.mark.integration


def _now_ms() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp() * 1000) // 3_600_000 * 3_600_000 - 3_600_000


def _preds(rows: list[tuple[str, str, str, str]], ts_ms: int) -> pa.Table:
    n = len(rows)
    return pa.table({
        "event_id": [f"e-{r[0]}-{r[1]}" for r in rows],
        "prediction_id": [r[1] for r in rows],
        "ts": pa.array([ts_ms] * n, pa.timestamp("ms", tz="UTC")),
        "model": [r[0] for r in rows],
        "model_version": ["1"] * n,
        "output_label": [r[2] for r in rows],
        "segment": pa.array([[("device", r[3])] for r in rows], pa.map_(pa.string(), pa.string())),
        "kafka_topic": ["t"] * n,
        "kafka_partition": pa.array([0] * n, pa.uint32()),
        "kafka_offset": pa.array(range(n), pa.uint64()),
    })


def _feedback(rows: list[tuple[str, str, str, int]]) -> pa.Table:
    n = len(rows)
    return pa.table({
        "event_id": [f"f-{i}" for i in range(n)],
        "prediction_id": [r[1] for r in rows],
        "ts": pa.array([r[3] for r in rows], pa.timestamp("ms", tz="UTC")),
        "model": [r[0] for r in rows],
        "label": [r[2] for r in rows],
        "kafka_topic": ["t"] * n,
        "kafka_partition": pa.array([0] * n, pa.uint32()),
        "kafka_offset": pa.array(range(n), pa.uint64()),
    })


def test_accuracy_by_segment_joins_the_latest_label_of_the_same_model(tmp_path: Path) -> None:
    t = _now_ms()
    store = open_store(Settings(data_dir=tmp_path))
    try:
        store.migrate()
        store.insert("predictions", _preds([
            ("cam", "p1", "genuine", "pixel"), ("cam", "p2", "genuine", "pixel"),
            ("cam", "p3", "fake", "nova"), ("cam", "p4", "genuine", "nova"), ("cam", "p5", "genuine", "nova"),
            ("other", "p3", "fake", "nova"),
        ], t), dedup_token="p")
        store.insert("feedback", _feedback([
            ("cam", "p1", "genuine", t + 1000),
            ("cam", "p2", "fake", t + 1000), ("cam", "p2", "genuine", t + 5000),   # the later label wins
            ("cam", "p3", "genuine", t + 1000),                                      # wrong on nova
            ("cam", "p4", "genuine", t + 1000),                                      # right on nova
            ("other", "p5", "fake", t + 1000),                                       # another model's label
        ]), dedup_token="f")
        q = load("accuracy_by_segment")
        res = store.query(q.sql, q.bind({"model": "cam", "segment_key": "device", "bucket_minutes": "60"}))
    finally:
        store.close()
    by_seg = {r[1]: r[2:] for r in res.rows}
    assert by_seg["pixel"] == (2, 2, 1.0)
    assert by_seg["nova"] == (3, 2, 0.5)  # p5's label belongs to another model: unlabeled here


def test_every_saved_query_runs_on_an_empty_store(tmp_path: Path) -> None:
    store = open_store(Settings(data_dir=tmp_path))
    try:
        store.migrate()
        for saved in list_saved():
            required = {p.name: "x" for p in saved.params if p.default is None}
            if "feature" in required:
                required["feature"] = "image_width"
            res = store.query(saved.sql, saved.bind(required))
            assert res.rows == [], saved.name
    finally:
        store.close()
