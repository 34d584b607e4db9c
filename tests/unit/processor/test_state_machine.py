"""The pure core end to end: the new camera, joins in both orders, replay idempotency, LLM signals,
lineage, uploaded references, dead letters."""

from __future__ import annotations

import orjson
import pandas as pd
import pytest

from inferwatch.processor import ProcessorSettings, ReferenceProfile, build_reference_profile
from inferwatch.processor.core.accumulator import Kind, WindowAcc, parse_wire_name, wire_name
from inferwatch.processor.core.raw_events import Raw
from inferwatch.processor.core.state_machine import ProcessorCore
from inferwatch.testing.scenarios import NEW_DEVICE, new_camera

CFG = ProcessorSettings(window_s=60, lateness_s=5, label_wait_s=5, baseline_s=300)


def run(core: ProcessorCore, events, chunk: int = 500, offset0: int = 0):  # type: ignore[no-untyped-def]
    snaps = []
    evs = list(events)
    for i in range(0, len(evs), chunk):
        part = evs[i:i + chunk]
        p = [Raw(e.value, "pred", 0, offset0 + i + j) for j, e in enumerate(part) if e.kind == "prediction"]
        f = [Raw(e.value, "fb", 0, offset0 + i + j) for j, e in enumerate(part) if e.kind == "feedback"]
        snaps += core.process_predictions(p).snapshots
        snaps += core.process_feedback(f).snapshots
    return snaps


def test_new_camera_named_first_and_other_devices_clean() -> None:
    core = ProcessorCore(CFG)
    snaps = run(core, new_camera()) + core.flush_all().snapshots
    incident = [s for s in snaps if s.window_start >= 1_764_140_040_000 + 300_000]
    assert incident
    for s in incident:
        if s.segment_key is None:
            names = {f.metric: f for f in s.findings}
            assert "perf.accuracy" in names and "input.image_width.psi" in names
            for metric in ("perf.accuracy", "input.image_width.psi"):
                top = names[metric].top_segments[0]
                assert (top.key, top.value) == ("device", NEW_DEVICE)
        elif s.segment_key == "device":
            metrics = {f.metric for f in s.findings}
            if s.segment_value == NEW_DEVICE:
                assert {"perf.accuracy", "input.image_width.psi"} <= metrics
                assert s.metrics["perf.accuracy"] < s.reference["perf.accuracy"] - 0.2
            else:
                assert "perf.accuracy" not in metrics and "input.image_width.psi" not in metrics
                assert s.metrics["input.image_width.psi"] < 0.2
    baseline = [s for s in snaps if s.window_start < 1_764_140_040_000 + 300_000]
    assert all(not s.findings and "input.image_width.psi" not in s.metrics for s in baseline)
    assert sum(s.count for s in snaps if s.segment_key is None) == 600 * 20


def test_feedback_before_prediction_waits() -> None:
    evs = list(new_camera(baseline_s=60, incident_s=0))
    fb_first = [e for e in evs if e.kind == "feedback"] + [e for e in evs if e.kind == "prediction"]
    core = ProcessorCore(CFG)
    snaps = run(core, fb_first, chunk=10_000) + core.flush_all().snapshots
    whole = [s for s in snaps if s.segment_key is None]
    assert whole[0].metrics["perf.label_coverage"] == pytest.approx(1.0)


def test_replay_after_crash_counts_each_event_once() -> None:
    evs = list(new_camera(baseline_s=120, incident_s=0))
    windows: dict[str, bytes] = {}
    joins: dict[str, bytes] = {}
    meta: dict[str, bytes] = {}
    core = ProcessorCore(CFG, windows, joins, meta)
    run(core, evs[:1000])
    # "crash": a new core restores from the stores and the source is replayed from an older offset
    core2 = ProcessorCore(CFG, windows, joins, meta)
    snaps = run(core2, evs) + core2.flush_all().snapshots
    ref = ProcessorCore(CFG)
    want = run(ref, evs) + ref.flush_all().snapshots
    got_counts = {(s.window_start, s.segment_key, s.segment_value): s.count for s in snaps}
    want_counts = {(s.window_start, s.segment_key, s.segment_value): s.count for s in want}
    for k, v in got_counts.items():
        assert want_counts[k] == v
    assert sum(s.count for s in snaps if s.segment_key is None) == 120 * 20
    assert got_counts == want_counts
    assert {s.event_id for s in snaps} <= {s.event_id for s in want}


def test_window_acc_round_trip() -> None:
    core = ProcessorCore(CFG)
    run(core, list(new_camera(baseline_s=60, incident_s=0))[:600])
    for acc in core._live.values():
        back = WindowAcc.from_bytes(acc.to_bytes())
        assert back.slots == acc.slots and back.hw == acc.hw
        assert back.order == acc.order
        for kind, name, v in acc.arrays():
            assert (back.parts[kind][name] == v).all()
        assert back.to_bytes() == acc.to_bytes()  # the stored form is stable across a restore


def test_window_acc_wire_names() -> None:
    """Each kind of array keeps its stored name; a feature's name may hold ':'; unknown kinds are refused."""
    cases = [(Kind.TOTAL, "count"), (Kind.CONF, ""), (Kind.COUNT, "a:b"), (Kind.HIST, "x"), (Kind.CAT, "@class"),
             (Kind.MIN, "lp"), (Kind.LINEAGE, "up"), (Kind.MISSING, "x"), (Kind.SUM, "x")]
    assert [wire_name(k, n) for k, n in cases] == ["count", "conf", "n:a:b", "h:x", "c:@class", "min:lp", "lin:up",
                                                   "miss:x", "sum:x"]
    assert [parse_wire_name(wire_name(k, n)) for k, n in cases] == cases
    with pytest.raises(ValueError, match="unknown array kind"):
        parse_wire_name("zz:x")


def _llm(i: int, ts: int, completion: str, lps: list[float], prompt_hash: str, refusal: bool | None = None) -> bytes:
    return orjson.dumps({
        "event_id": f"l{i}", "prediction_id": f"l{i}", "ts": ts, "model": "grader", "model_version": "1",
        "outputs": {"label": "A"}, "segment": {"template": "v7"},
        "llm": {"completion": completion, "prompt_hash": prompt_hash, "completion_hash": str(hash(completion)),
                "token_logprobs": lps, "top_logprobs": [[lp, -3.0] for lp in lps], "refusal": refusal},
    })


def test_llm_signals() -> None:
    core = ProcessorCore(ProcessorSettings(window_s=60, lateness_s=0, baseline_s=0))
    raws = [
        Raw(_llm(0, 1000, "Grade: A", [-0.1, -0.3], "h1"), "p", 0, 0),
        Raw(_llm(1, 2000, "Grade: B", [-0.2, -0.4], "h1"), "p", 0, 1),  # same prompt, other answer
        Raw(_llm(2, 3000, "I'm sorry, I can't help", [-1.0], "h2"), "p", 0, 2),
        Raw(_llm(3, 4000, "", [-0.5], "h3", refusal=True), "p", 0, 3),
        Raw(_llm(4, 5000, "Grade: C", [-0.1], "h4"), "p", 0, 4),
        Raw(_llm(5, 6000, "Grade: C", [-0.1], "h4"), "p", 0, 5),  # same prompt, same answer
    ]
    core.process_predictions(raws)
    m = next(s for s in core.flush_all().snapshots if s.segment_key is None).metrics
    assert m["llm.logprob_min"] == pytest.approx(-1.0)
    assert m["llm.logprob_mean"] == pytest.approx((-0.1 - 0.3 - 0.2 - 0.4 - 1.0 - 0.5 - 0.1 - 0.1) / 8)
    assert m["llm.refusal_rate"] == pytest.approx(2 / 6)
    assert m["llm.empty_rate"] == pytest.approx(1 / 6)
    assert m["llm.inconsistency_rate"] == pytest.approx(1 / 2)
    assert m["llm.entropy_mean"] > 0


def test_lineage_shares_and_feedback_loop_anomaly() -> None:
    evs = []
    for i in range(200):
        lin = [{"kind": "embedding", "model": "rec", "model_version": "14", "share": 0.8},
               {"kind": "items", "model": "pop", "model_version": "1", "share": 0.2}]
        evs.append(Raw(orjson.dumps({"event_id": f"e{i}", "prediction_id": f"p{i}", "ts": 1000 + i, "model": "rec",
                                     "model_version": "14", "outputs": {"score": 0.5}, "lineage": lin}), "p", 0, i))
    core = ProcessorCore(ProcessorSettings(window_s=60, lateness_s=0, baseline_s=0))
    core.set_uploaded_reference("rec", "14", build_reference_profile(
        pd.DataFrame({"score": [0.5] * 10}), "rec", "14", features=[], score_column="score").to_bytes())
    core.process_predictions(evs)
    s = next(s for s in core.flush_all().snapshots if s.segment_key is None)
    assert s.metrics["lineage.self_share"] == pytest.approx(0.8)
    assert s.metrics["lineage.share.pop@1"] == pytest.approx(0.2)
    assert any(f.metric == "lineage.self_share" and f.kind == "anomaly" for f in s.findings)


def test_uploaded_reference_detects_drift_from_first_window() -> None:
    df = pd.DataFrame({"image_width": [4000.0 + (i % 50) * 10 for i in range(1000)],
                       "device": ["pixel-8"] * 1000, "pred": ["genuine"] * 900 + ["fake"] * 100,
                       "truth": ["genuine"] * 1000})
    prof = build_reference_profile(df, "photo-verifier", "3.2.0", features=["image_width"], segment_columns=["device"],
                                   prediction_column="pred", label_column="truth")
    prof = ReferenceProfile.from_bytes(prof.to_bytes())
    assert prof.acc.get("count", 0) == 1000
    core = ProcessorCore(ProcessorSettings(window_s=60, lateness_s=0, baseline_s=300))
    core.set_uploaded_reference("photo-verifier", "3.2.0", prof.to_bytes())
    raws = [Raw(orjson.dumps({"event_id": f"e{i}", "prediction_id": f"p{i}", "ts": 60_000 + i, "model": "photo-verifier",
                              "model_version": "3.2.0", "inputs": {"image_width": 9000 + i}, "outputs": {"label": "genuine"},
                              "segment": {"device": "pixel-8"}}), "p", 0, i) for i in range(300)]
    core.process_predictions(raws)
    s = next(s for s in core.flush_all().snapshots if s.segment_key is None)
    assert s.metrics["input.image_width.psi"] > 1.0
    assert s.reference["perf.accuracy"] == pytest.approx(0.9)


def test_invalid_events_become_dead_letters_and_the_stream_goes_on() -> None:
    core = ProcessorCore(CFG)
    good = next(e for e in new_camera() if e.kind == "prediction")
    out = core.process_predictions([Raw(b"{not json", "t", 2, 7), Raw(good.value, "t", 2, 8),
                                    Raw(b'{"model": "x"}', "t", 2, 9)])
    assert [r.raw.offset for r in out.rejected] == [7, 9]
    dl = out.rejected[0].to_deadletter()
    assert dl.stage == "processor" and dl.source_offset == 7 and dl.reason
    assert sum(int(a.get("count", 0)) for a in core._live.values()) == 1


def test_late_events_counted() -> None:
    cfg = ProcessorSettings(window_s=60, lateness_s=0, baseline_s=0)
    core = ProcessorCore(cfg)
    mk = lambda i, ts: Raw(orjson.dumps({"event_id": f"e{i}", "prediction_id": f"p{i}", "ts": ts, "model": "m",  # noqa: E731
                                          "model_version": "1", "outputs": {"score": 0.1}}), "p", 0, i)
    core.process_predictions([mk(0, 1000), mk(1, 61_000)])
    closed = core.process_predictions([mk(2, 125_000)]).snapshots  # closes [60, 120) too
    core.process_predictions([mk(3, 2000)])  # late for [0, 60)
    snaps = closed + core.flush_all().snapshots
    assert sum(s.late_events for s in snaps if s.segment_key is None) == 1


def test_labels_still_arriving_keep_a_model_from_idling() -> None:
    # Bug: only predictions refreshed the idle clock, so when the feedback topic lagged behind the
    # predictions topic by more than idle_flush_s the window closed without its labels.
    cfg = ProcessorSettings(window_s=60, lateness_s=5, label_wait_s=5, baseline_s=300, idle_flush_s=4)
    evs = list(new_camera(baseline_s=60, incident_s=0))
    preds = [Raw(e.value, "pred", 0, i) for i, e in enumerate(evs) if e.kind == "prediction"]
    fbs = [Raw(e.value, "fb", 0, i) for i, e in enumerate(evs) if e.kind == "feedback"]
    core = ProcessorCore(cfg)
    core.process_predictions(preds, now=100.0)
    core.process_feedback(fbs[: len(fbs) // 2], now=103.0)
    assert core.idle_models(now=105.0) == []          # 2 s after the last label: not idle
    core.process_feedback(fbs[len(fbs) // 2:], now=106.0)
    assert core.idle_models(now=111.0) == ["photo-verifier"]
    whole = [s for s in core.flush_idle(now=111.0).snapshots if s.segment_key is None]
    assert whole and all(s.metrics["perf.label_coverage"] == pytest.approx(1.0) for s in whole)


def test_windows_restored_after_a_restart_still_close_when_traffic_stopped() -> None:
    # Bug: a restored window's model had no idle clock, so without new traffic it never closed.
    cfg = ProcessorSettings(window_s=60, lateness_s=5, label_wait_s=5, baseline_s=300, idle_flush_s=4)
    windows: dict[str, bytes] = {}
    joins: dict[str, bytes] = {}
    meta: dict[str, bytes] = {}
    core = ProcessorCore(cfg, windows, joins, meta)
    evs = list(new_camera(baseline_s=60, incident_s=0))
    core.process_predictions([Raw(e.value, "pred", 0, i) for i, e in enumerate(evs) if e.kind == "prediction"], now=1.0)
    restarted = ProcessorCore(cfg, windows, joins, meta)
    assert restarted._live, "the open window is restored from the changelog stores"
    assert restarted.idle_models(now=50.0) == []                 # the clock starts at the first check
    assert restarted.idle_models(now=55.0) == ["photo-verifier"]
    assert restarted.flush_idle(now=55.0).snapshots
