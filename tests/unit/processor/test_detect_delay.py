"""Detection delay on known shifts, per signal, and what the detections say: the segment, whether it
is new, the estimated change, the evidence. Seeded; the default false-alarm budget (1e-6 per event)."""

from __future__ import annotations

from typing import Any

import numpy as np

from inferwatch.processor.core.detect import label_slots, to_event
from tests.unit.processor.detect_helpers import REF_END, T0, columns, detectors, feed

SEGS = ["eu", "us", "apac"]


def first(found: list[Any], **want: Any) -> Any:
    for f in found:
        if f.status == "detected" and all(getattr(f, k) == v for k, v in want.items()):
            return f
    return None


def events_until(found: Any, shift_ms: int, step_ms: int = 10) -> int:
    return (found.ts - shift_ms) // step_ms + 1


def run_shift(make: Any, n_ref: int = 3000, n_live: int = 3000) -> tuple[Any, list[Any]]:
    det = detectors()
    feed(det, lambda k, ts: make(k, ts, False), n_ref, T0)
    quiet = feed(det, lambda k, ts: make(k, ts, False), 1000, REF_END)
    assert [f for f in quiet if f.status == "detected"] == []
    shift = REF_END + 1000 * 10
    return det, feed(det, lambda k, ts: make(k, ts, True), n_live, shift)


def test_one_std_shift_of_one_input_in_one_segment() -> None:
    rng = np.random.default_rng(11)
    seg_of: dict[int, str] = {}

    def make(k: int, ts: np.ndarray, on: bool) -> Any:
        seg = rng.choice(SEGS, k)
        x = rng.normal(0.0, 1.0, (k, 4))
        if on:
            x[seg == "eu", 0] += 1.0
        for t, s in zip(ts.tolist(), seg.tolist(), strict=True):
            seg_of[t] = s
        return columns(ts, num={f"x{j}": x[:, j] for j in range(4)}, segments={"region": list(seg)})

    det, found = run_shift(make)
    shift = REF_END + 1000 * 10
    f = first(found, slot="region=eu", metric="input.x0")
    assert f is not None and not f.new_segment and f.signal == "input"
    eu_events = sum(1 for t, s in seg_of.items() if shift <= t <= f.ts and s == "eu")
    assert eu_events <= 80, eu_events  # ~2 x log(1/rate) / shift^2 for a 1 std shift
    assert f.value is not None and f.reference is not None and f.value > f.reference + 0.5
    assert f.evidence[0][0] == "input.x0" and f.evidence[0][1] > 0.5
    assert f.change_ts is not None and f.change_ts >= shift - 200 * 10
    # clean segments stay quiet
    assert not [g for g in found if g.status == "detected" and g.slot in ("region=us", "region=apac")]
    ev = to_event("m", "1", f)
    assert (ev.segment_key, ev.segment_value, ev.metric, ev.detector) == ("region", "eu", "input.x0", "cusum")
    assert to_event("m", "1", f).event_id == ev.event_id  # deterministic: a replay gives the same id


def test_small_shifts_of_many_inputs_are_found_together() -> None:
    rng = np.random.default_rng(5)
    cov = 0.5 * np.ones((6, 6)) + 0.5 * np.eye(6)

    def make(k: int, ts: np.ndarray, on: bool) -> Any:
        x = rng.multivariate_normal(np.zeros(6), cov, k)
        if on:
            x += np.array([0.5, -0.5, 0.5, -0.5, 0.5, -0.5])
        return columns(ts, num={f"x{j}": x[:, j] for j in range(6)})

    _, found = run_shift(make)
    f = first(found, slot="", metric="input.all")
    assert f is not None and events_until(f, REF_END + 10_000) <= 60
    assert {name for name, _ in f.evidence[:6]} == {f"input.x{j}" for j in range(6)}


def test_category_mix_and_embedding_and_llm_confidence() -> None:
    rng = np.random.default_rng(9)
    direction = rng.normal(size=16)
    direction /= np.linalg.norm(direction)

    def make(k: int, ts: np.ndarray, on: bool) -> Any:
        p = [0.2, 0.3, 0.5] if on else [0.6, 0.3, 0.1]
        emb = rng.normal(size=(k, 16)) + (1.0 * direction if on else 0.0)
        lp_mean = rng.normal(-0.35 - (0.4 if on else 0.0), 0.07, k)
        cols = columns(ts, cat={"instrument": list(rng.choice(["a", "b", "c"], k, p=p))}, embedding=emb)
        cols.num = {"@score": rng.uniform(0, 1, k)}
        from inferwatch.processor.core.event_arrays import LLMCols

        nan = np.full(k, np.nan)
        cols.llm = LLMCols(np.ones(k, np.bool_), lp_mean * 40, np.full(k, 40.0), nan, nan, nan, nan, nan,
                           np.zeros(k, np.bool_), np.zeros(k, np.bool_), [None] * k, [None] * k)
        return cols

    _, found = run_shift(make)
    shift = REF_END + 10_000
    cat = first(found, metric="input.instrument")
    emb = first(found, metric="embedding.mean_shift")
    llm = first(found, metric="llm.logprob_mean")
    assert cat is not None and events_until(cat, shift) <= 60
    assert cat.evidence[0][0] in ("input.instrument=a", "input.instrument=c")
    assert emb is not None and emb.signal == "embedding" and events_until(emb, shift) <= 100
    assert llm is not None and llm.signal == "llm" and events_until(llm, shift) <= 15
    assert not first(found, metric="output.score")  # the score did not move


def test_new_segment_is_compared_with_the_whole_version() -> None:
    rng = np.random.default_rng(2)

    def make(k: int, ts: np.ndarray, on: bool) -> Any:
        seg = rng.choice(SEGS[1:] + (["new-cam"] if on else []), k)
        x = rng.normal(0.0, 1.0, (k, 2))
        x[seg == "new-cam"] += 1.0
        return columns(ts, num={"a": x[:, 0], "b": x[:, 1]}, segments={"device": list(seg)})

    _, found = run_shift(make)
    f = first(found, slot="device=new-cam")
    assert f is not None and f.new_segment
    assert to_event("m", "1", f).new_segment


def test_error_rate_from_delayed_labels() -> None:
    det = detectors()
    rng = np.random.default_rng(4)
    feed(det, lambda k, ts: columns(ts, num={"x": rng.normal(size=k)}), 3000, T0)

    def labels(n: int, t0: int, p_err: float, delay_ms: int) -> list[Any]:
        pairs = []
        for i in range(n):
            pts = t0 + 10 * i
            pred = "a"
            true = "b" if rng.random() < p_err else "a"
            pairs.append(([" 1", 0, {"region": str(rng.choice(SEGS))}, pred, None, None, None, pts],
                          [true, None, pts + delay_ms]))
        return pairs

    for pairs in (labels(2000, T0, 0.03, 60_000),):
        assert det.observe_labels(*label_slots(pairs)) == []  # reference labels
    det.observe(columns(np.array([REF_END]), num={"x": np.zeros(1)}))  # the freeze
    found = det.observe_labels(*label_slots(labels(600, REF_END, 0.03, 60_000)))
    assert not [f for f in found if f.status == "detected"]
    found = det.observe_labels(*label_slots(labels(600, REF_END + 6000, 0.3, 60_000)))
    f = first(found, slot="", metric="perf.error_rate")
    assert f is not None and f.signal == "performance" and f.labels is not None and f.labels <= 60
    assert f.value is not None and f.value > 0.15 and f.reference is not None and f.reference < 0.06


def test_cleared_after_clear_events_back_within_the_reference() -> None:
    rng = np.random.default_rng(8)
    det = detectors(clear_events=300)

    def make(shift: float) -> Any:
        return lambda k, ts: columns(ts, num={"x": rng.normal(shift, 1.0, k), "y": rng.normal(size=k)})

    feed(det, make(0.0), 3000, T0)
    found = feed(det, make(2.0), 300, REF_END)
    f = first(found, slot="", metric="input.x")
    assert f is not None
    back = REF_END + 300 * 10
    after = feed(det, make(0.0), 1500, back)
    cleared = [g for g in after if g.status == "cleared" and g.metric == "input.x"]
    assert len(cleared) == 1
    # clear_events events after the last crossing (the drifted stream kept crossing until it ended)
    quiet = (cleared[0].ts - back) // 10 + 1
    assert 250 <= quiet <= 320, quiet
    assert cleared[0].value is None and cleared[0].evidence == []
    assert to_event("m", "1", cleared[0]).status == "cleared"
