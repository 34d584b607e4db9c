"""The columnar fast path against the exact (msgspec, event by event) path: on mixed traffic — fast
rows, rows only the exact path takes (llm, embedding, lineage), invalid rows, labels before and after
their predictions, a crash and a replay — both give the same snapshots, the same dead letters and
byte-identical state (windows, joins, meta)."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import inferwatch.processor.core.snapshot as snapshot_mod
from inferwatch.native.prediction_columns import decode_predictions_py
from inferwatch.processor.core import fastpath
from inferwatch.processor.core.raw_events import Raw
from inferwatch.processor.core.state_machine import Output, ProcessorCore
from inferwatch.processor.settings import ProcessorSettings
from tests.unit.processor.mixed_traffic import T0, mixed_batches


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    # snapshots carry the wall-clock time they were built at: pin it so two runs compare equal
    monkeypatch.setattr(snapshot_mod.time, "time", lambda: 1_800_000_000.0)


def _dump(out: Output) -> tuple[list[Any], list[Any]]:
    snaps = sorted((s.model_dump(mode="json") for s in out.snapshots),
                   key=lambda s: (s["model"], s["model_version"], s["window_start"], s["segment_key"] or "",
                                  s["segment_value"] or ""))
    return snaps, [(r.raw.offset, r.reason, r.schema) for r in out.rejected]


def _run(fast: bool, batches: list[tuple[str, list[Raw]]], cfg: ProcessorSettings,
         replay_from: int | None = None) -> tuple[list[Any], dict[str, bytes], dict[str, bytes], dict[str, bytes]]:
    windows: dict[str, bytes] = {}
    joins: dict[str, bytes] = {}
    meta: dict[str, bytes] = {}
    core = ProcessorCore(cfg, windows, joins, meta, fast=fast)
    res = []
    for i, (kind, raws) in enumerate(batches):
        if replay_from is not None and i == replay_from:
            # a crash: a new core restores from the stores, and the source is read again from the start
            core = ProcessorCore(cfg, windows, joins, meta, fast=fast)
            for k2, r2 in batches[:i]:
                f2 = core.process_predictions if k2 == "p" else core.process_feedback
                res.append(_dump(f2(r2, now=0.0)))
        f = core.process_predictions if kind == "p" else core.process_feedback
        res.append(_dump(f(raws, now=0.0)))
    res.append(_dump(core.flush_all()))
    return res, windows, joins, meta


CFGS = [
    ProcessorSettings(window_s=60, lateness_s=5, label_wait_s=5, baseline_s=120),
    ProcessorSettings(window_s=30, lateness_s=0, baseline_s=30, top_k=3, max_tracked_values=4, max_categories=3,
                    max_features=5),
]


@pytest.mark.parametrize(("seed", "cfg", "batch", "replay"), [(0, CFGS[0], 700, None), (1, CFGS[1], 97, None),
                                                              (2, CFGS[0], 400, 9)])
def test_mixed_traffic_same_outputs_and_state(seed: int, cfg: ProcessorSettings, batch: int, replay: int | None) -> None:
    batches = list(mixed_batches(seed, n=2500, batch=batch, bad_share=0.05))
    fast = _run(True, batches, cfg, replay)
    exact = _run(False, batches, cfg, replay)
    assert sum(len(s) for s, _ in exact[0]) > 20 and sum(len(r) for _, r in exact[0]) > 20
    assert fast[0] == exact[0]
    assert fast[1:] == exact[1:]


def test_fast_path_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mixed traffic exercises both paths: most groups fast, some falling back on the quirks."""
    seen: list[bool] = []
    real = fastpath.group_columns

    def spy(*a: Any) -> Any:
        r = real(*a)
        seen.append(r is not None)
        return r

    monkeypatch.setattr("inferwatch.processor.core.state_machine.group_columns", spy)
    _run(True, list(mixed_batches(0, n=4000, batch=700)), CFGS[0])
    assert seen.count(True) >= 8 and seen.count(False) >= 1


def test_values_api_equals_raw_api() -> None:
    batches = [b for b in mixed_batches(4, n=1500, batch=300) if b[0] == "p"]
    cfg = CFGS[0]
    a = ProcessorCore(cfg, fast=True)
    b = ProcessorCore(cfg, fast=True)
    for _, raws in batches:
        want = a.process_predictions(raws, now=0.0)
        got = b.process_prediction_values([r.value for r in raws], "pred", 0, [r.offset for r in raws],
                                          keys=[r.key for r in raws], now=0.0)
        assert _dump(got) == _dump(want)
        assert [r.raw for r in got.rejected] == [r.raw for r in want.rejected]
    assert a.windows == b.windows and a.joins == b.joins and a.meta == b.meta


def test_ranges() -> None:
    off = np.array([0, 2, 2, 5, 6], dtype=np.int64)
    ent, pos = fastpath._ranges(off, np.array([0, 2, 3], dtype=np.int64))
    assert ent.tolist() == [0, 1, 2, 3, 4, 5] and pos.tolist() == [0, 0, 1, 1, 1, 2]
    ent, pos = fastpath._ranges(off, np.array([1], dtype=np.int64))
    assert ent.tolist() == [] and pos.tolist() == []


_feature = st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False), st.integers(-5, 5), st.booleans(),
                     st.sampled_from(["a", "b", "1", "2.5"]))


@st.composite
def _events(draw: st.DrawFn) -> list[bytes]:
    n = draw(st.integers(1, 30))
    keys = draw(st.lists(st.sampled_from(["f1", "f2", "f3", "Z", "0k"]), min_size=0, max_size=4, unique=True))
    out = []
    for i in range(n):
        ev: dict[str, Any] = {"schema_version": "prediction.v1", "event_id": f"e{i}", "prediction_id": f"p{i % 25}",
                              "ts": T0 + draw(st.integers(0, 20_000)), "model": draw(st.sampled_from(["m", "n"])),
                              "model_version": "1",
                              "inputs": {k: draw(_feature) for k in keys if draw(st.booleans()) or i % 2},
                              "segment": {k: draw(st.sampled_from(["x", "y", "z"])) for k in ("dev", "reg")
                                          if draw(st.booleans())}}
        outs: dict[str, Any] = {}
        if draw(st.booleans()):
            outs["label"] = draw(st.sampled_from(["yes", "no"]))
        if draw(st.booleans()):
            outs["score"] = draw(st.floats(0, 1))
        if draw(st.booleans()):
            outs["value"] = draw(st.floats(-10, 10))
        probs = draw(st.sampled_from([None, {}, {"yes": 0.3, "no": 0.7}, {"a": 0.5}, {"b": 0.2, "a": 0.8}]))
        if probs is not None:
            outs["probabilities"] = probs
        if outs:
            ev["outputs"] = outs
        if not outs or draw(st.integers(0, 9)) == 0:
            ev["error"] = "boom"
        if draw(st.integers(0, 9)) == 0:
            ev["latency_ms"] = draw(st.floats(0, 1e4))
        out.append(orjson.dumps(ev))
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_events(), st.integers(1, 3))
def test_generated_events_same_outputs(values: list[bytes], parts: int) -> None:
    cfg = ProcessorSettings(window_s=5, lateness_s=0, baseline_s=5, min_count=1, min_reference_count=1)
    raws = [Raw(v, "t", 0, i) for i, v in enumerate(values)]
    step = -(-len(raws) // parts)
    labels = [Raw(orjson.dumps({"schema_version": "feedback.v1", "event_id": f"f{i}", "prediction_id": f"p{i}",
                                "ts": T0 + 30_000, "model": "m", "label": "yes", "value": 1.0}), "fb", 0, i)
              for i in range(0, 25, 3)]
    batches = [("f", labels[:3])] + [("p", raws[i:i + step]) for i in range(0, len(raws), step)] + [("f", labels[3:])]
    assert _run(True, batches, cfg) == _run(False, batches, cfg)


def test_python_twin_columns_feed_the_same_groups() -> None:
    """The group builder reads only what both decoders give (the twin is the C decoder's reference)."""
    values = [orjson.dumps({"schema_version": "prediction.v1", "event_id": "e", "prediction_id": "p", "ts": T0,
                            "model": "m", "model_version": "1", "inputs": {"b": 1, "a": "u", "c": None},
                            "outputs": {"label": "x"}, "segment": {"k": "v"}})]
    b = fastpath.Batch(decode_predictions_py(values))
    cols = fastpath.group_columns(b, np.array([0], dtype=np.int64), 256)
    assert cols is not None
    assert list(cols.num) == ["b", "c"] and list(cols.cat) == ["a", "@class"]
    assert cols.num["b"].tolist() == [1.0] and np.isnan(cols.num["c"][0])
    assert list(cols.segments) == ["k"]
