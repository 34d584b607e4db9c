"""Hostile input for the sequential detectors: huge values, empty groups, one-event segments, ten
thousand segment values (bounded memory), and state that survives a restart through the maps."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from inferwatch.processor.core.detect import VersionDetectors
from inferwatch.processor.core.raw_events import Raw
from inferwatch.processor.core.state_machine import ProcessorCore
from inferwatch.processor.settings import ProcessorSettings
from tests.unit.processor.detect_helpers import REF_END, T0, columns, detectors, feed


def test_huge_values_do_not_break_the_detectors() -> None:
    rng = np.random.default_rng(1)
    det = detectors()
    feed(det, lambda k, ts: columns(ts, num={"x": rng.normal(size=k), "y": rng.normal(size=k)}), 2000, T0)
    huge = [1e308, np.inf, 1.7e308, np.nan, 1.6e308, -np.inf]

    def make(k: int, ts: np.ndarray) -> Any:
        return columns(ts, num={"x": np.array([huge[i % len(huge)] for i in range(k)]), "y": rng.normal(size=k)})

    found = feed(det, make, 400, REF_END)
    f = next(f for f in found if f.metric in ("input.x", "input.all"))
    assert np.isfinite(f.statistic) and all(np.isfinite(s) for _, s in f.evidence)
    assert not [g for g in found if g.metric == "input.y"]


def test_empty_and_one_event_groups() -> None:
    rng = np.random.default_rng(2)
    det = detectors()
    assert det.observe(columns(np.zeros(0, np.int64))) == []
    for i in range(300):  # one event per call, each in a segment of its own half the time
        seg = f"s{i}" if i % 2 else "common"
        det.observe(columns(np.array([T0 + i]), num={"x": rng.normal(size=1)}, segments={"k": [seg]}))
    for i in range(300):
        seg = f"late{i}" if i % 2 else "common"
        out = det.observe(columns(np.array([REF_END + i]), num={"x": rng.normal(size=1)}, segments={"k": [seg]}))
        assert [f for f in out if f.status == "detected"] == []
    assert det.ref["frozen"]


def test_ten_thousand_segment_values_stay_bounded() -> None:
    rng = np.random.default_rng(3)
    det = detectors(max_values=50)

    def make(k: int, ts: np.ndarray) -> Any:
        return columns(ts, num={"x": rng.normal(size=k)},
                       segments={"user": [f"u{int(t)}" for t in ts]})  # a new value every event

    feed(det, make, 5000, T0, batch=500)
    feed(det, make, 5000, REF_END, batch=500)
    assert len(det.live["values"]["user"]) <= 50
    assert len(det.live["slots"]) <= 51
    meta: dict[str, bytes] = {}
    det.save(meta, "m", "1")
    assert sum(len(v) for v in meta.values()) < 2_000_000


def _event(i: int, ts: int, x: float, seg: str) -> bytes:
    return orjson.dumps({"schema_version": "prediction.v1", "event_id": f"e{i}", "prediction_id": f"p{i}", "ts": ts,
                         "model": "m", "model_version": "1", "inputs": {"x": x, "z": 1.0 + x / 10},
                         "outputs": {"label": "a", "score": 0.5}, "segment": {"region": seg}})


def test_state_survives_a_restart_through_the_maps_and_replays_are_skipped() -> None:
    cfg = ProcessorSettings(baseline_s=60, detect_enabled=True)
    windows: dict[str, bytes] = {}
    joins: dict[str, bytes] = {}
    meta: dict[str, bytes] = {}
    rng = np.random.default_rng(4)
    evs = []
    for i in range(3000):
        ts = T0 + i * 50
        shifted = ts > T0 + 120_000
        seg = "eu" if i % 2 else "us"
        x = rng.normal() + (2.0 if shifted and seg == "eu" else 0.0)
        evs.append(Raw(_event(i, ts, x, seg), "p", 0, i))
    core = ProcessorCore(cfg, windows, joins, meta)
    out = []
    cut = 2500
    for k in range(0, cut, 100):
        out += core.process_predictions(evs[k:k + 100], now=0).detections
    # a new worker takes the partition over from the maps (the changelogs) and re-reads a few batches
    core2 = ProcessorCore(cfg, windows, joins, meta)
    again = []
    for k in range(cut - 300, len(evs), 100):
        again += core2.process_predictions(evs[k:k + 100], now=0).detections
    ids = [d.event_id for d in out]
    assert any(d.segment_value == "eu" and d.metric == "input.x" for d in out)
    assert not set(ids) & {d.event_id for d in again if d.status == "detected"}  # nothing detected twice
    assert isinstance(VersionDetectors, type)
