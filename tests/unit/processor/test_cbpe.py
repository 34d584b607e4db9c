"""Accuracy before labels (CBPE, ``processor/core/cbpe.py``): where the estimate holds (covariate
shift with calibrated scores, or scores calibrated on a labelled reference), where it fails by
design (concept drift; uncalibrated scores without a labelled reference), the alert threshold's
false-alarm rate, hostile input, and the whole path through the processor core (both paths)."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from inferwatch.processor.core import cbpe
from inferwatch.processor.core.raw_events import Raw
from inferwatch.processor.core.state_machine import ProcessorCore
from inferwatch.processor.settings import ProcessorSettings
from inferwatch.testing import cbpe_streams as cs


def _counts(w: cs.Window, labelled: bool = True) -> cbpe.Counts:
    """A window's CBPE counts, as the accumulator keeps them."""
    b = cbpe.conf_bin(w.conf)
    h = np.bincount(b, minlength=cbpe.CONF_BINS)
    s = np.bincount(b, weights=w.conf, minlength=cbpe.CONF_BINS)
    hit = np.bincount(b[w.pred == w.truth], minlength=cbpe.CONF_BINS)
    z = np.zeros(cbpe.CONF_BINS)
    return cbpe.Counts.of(h, s, h if labelled else z, s if labelled else z, hit if labelled else z)


def _est(w: cs.Window, ref: cbpe.Counts | None) -> dict[str, float]:
    m, _ = cbpe.snapshot_metrics(_counts(w, labelled=False), ref)
    return m


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_covariate_shift_is_tracked_within_the_stated_error(seed: int) -> None:
    s = cs.build("covariate", seed=seed)
    ref = _counts(s.reference)
    assert s.reference.accuracy - s.windows[-1].accuracy > 0.15  # the shift really costs accuracy
    errs = []
    for w in s.windows:
        m = _est(w, ref)
        assert m[cbpe.CALIBRATED] == 1.0
        assert abs(m[cbpe.ESTIMATED] - w.accuracy) <= 3 * m[cbpe.ESTIMATED_SE]
        errs.append(abs(m[cbpe.ESTIMATED] - w.accuracy))
    assert float(np.mean(errs)) < 0.025


def test_an_estimated_drop_crosses_the_threshold_before_any_label() -> None:
    s = cs.build("covariate")
    ref = _counts(s.reference)
    below = [_est(w, ref)[cbpe.ESTIMATED] < _est(w, ref)[cbpe.THRESHOLD] for w in s.windows]
    assert all(below[2:])  # from ~8 points of realised drop on, every window alerts without labels


def test_the_threshold_holds_its_false_alarm_rate_on_unchanged_traffic() -> None:
    """Z_ALERT = 3: one-sided ~0.13% per window; 400 windows of unchanged traffic, at most 1% below."""
    s = cs.build("stable", windows=400, window_events=200, seed=5)
    ref = _counts(s.reference)
    alarms = sum(_est(w, ref)[cbpe.ESTIMATED] < _est(w, ref)[cbpe.THRESHOLD] for w in s.windows)
    assert alarms <= 4


def test_concept_drift_is_not_seen_by_the_estimate() -> None:
    """The documented failure mode: P(right | confidence) changes, the confidences do not."""
    s = cs.build("concept")
    ref = _counts(s.reference)
    last = s.windows[-1]
    m = _est(last, ref)
    assert s.reference.accuracy - last.accuracy > 0.15
    assert abs(m[cbpe.ESTIMATED] - s.reference.accuracy) < 0.03  # the estimate stays where it was
    assert m[cbpe.ESTIMATED] - last.accuracy > 3 * m[cbpe.ESTIMATED_SE]  # outside its own error
    assert m[cbpe.ESTIMATED] > m[cbpe.THRESHOLD]  # so no estimated-drop alert
    # what shows it once labels are joined: the estimation error
    labelled, _ = cbpe.snapshot_metrics(_counts(last), ref)
    assert labelled[cbpe.ESTIMATION_ERROR] > 0.15


def test_uncalibrated_scores_without_a_labelled_reference_give_a_biased_estimate() -> None:
    s = cs.build("overconfident")
    unlabelled_ref = _counts(s.reference, labelled=False)
    labelled_ref = _counts(s.reference)
    for w in s.windows:
        raw = _est(w, unlabelled_ref)
        assert raw[cbpe.CALIBRATED] == 0.0
        assert raw[cbpe.ESTIMATED] - w.accuracy > max(0.05, 3 * raw[cbpe.ESTIMATED_SE])  # biased high
        fixed = _est(w, labelled_ref)
        assert fixed[cbpe.CALIBRATED] == 1.0
        assert abs(fixed[cbpe.ESTIMATED] - w.accuracy) <= 3 * fixed[cbpe.ESTIMATED_SE]


def test_the_reference_estimate_equals_its_realised_accuracy() -> None:
    """The threshold's level is the reference's own estimate: on a labelled reference, its accuracy."""
    for kind in ("stable", "overconfident"):
        s = cs.build(kind)
        ref = _counts(s.reference)
        _, r = cbpe.snapshot_metrics(_counts(s.windows[0], labelled=False), ref)
        assert abs(r[cbpe.ESTIMATED] - s.reference.accuracy) < 0.005


# ---- hostile input ------------------------------------------------------------------------------
def test_predicted_confidence_reads_what_the_model_said() -> None:
    pc = cbpe.predicted_confidence
    assert pc("a", None, {"a": 0.7, "b": 0.3}) == 0.7
    assert pc("b", 0.9, {"a": 0.7, "b": 0.3}) == 0.3  # the probabilities win over the score
    assert pc(None, None, {"a": 0.2, "b": 0.5, "c": 0.3}) == 0.5  # no label: the argmax is the prediction
    assert pc("z", 0.8, {"a": 0.7, "b": 0.3}) == 0.8  # label not among the probabilities: the score
    assert pc("a", 0.8, {}) == 0.8
    for label, score, probs in (("a", 1.5, None), ("a", -0.1, None), (None, 0.8, None), ("a", None, None),
                                (None, None, None)):
        assert math.isnan(pc(label, score, probs))


def test_no_confidences_no_metrics_and_a_thin_reference_does_not_calibrate() -> None:
    z = np.zeros(cbpe.CONF_BINS)
    assert cbpe.snapshot_metrics(cbpe.Counts.of(z, z, z, z, z), None) == ({}, {})
    s = cs.build("stable")
    thin = _counts(cs.Window(s.reference.conf[:50], s.reference.pred[:50], s.reference.truth[:50],
                             s.reference.positive[:50]))
    m = _est(s.windows[0], thin)
    assert m[cbpe.CALIBRATED] == 0.0 and math.isfinite(m[cbpe.ESTIMATED])


def test_scores_at_zero_and_one_one_class_and_tiny_windows() -> None:
    # every reference prediction right at confidence 1: the map is 1, its doubt is not zero
    n = 300
    ones = cs.Window(np.ones(n), np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n))
    ref = _counts(ones)
    m = _est(ones, ref)
    assert m[cbpe.ESTIMATED] == pytest.approx(1.0) and m[cbpe.ESTIMATED_SE] > 0
    # confidences of exactly 0 and 1 land in the outer bins
    assert cbpe.conf_bin(np.array([0.0, 1.0])).tolist() == [0, cbpe.CONF_BINS - 1]
    mixed = cs.Window(np.array([0.0, 1.0, 1.0, 0.0]), np.zeros(4, np.int64), np.array([1, 0, 0, 1]), np.zeros(4))
    mm = _est(mixed, _counts(cs.build("stable").reference))
    assert 0.0 <= mm[cbpe.ESTIMATED] <= 1.0 and math.isfinite(mm[cbpe.ESTIMATED_SE])
    # one and two events: finite, and the threshold far below the level (no alarm on a handful)
    s = cs.build("stable")
    full = _counts(s.reference)
    for k in (1, 2):
        w = cs.Window(s.windows[0].conf[:k], s.windows[0].pred[:k], s.windows[0].truth[:k], s.windows[0].positive[:k])
        mk = _est(w, full)
        assert all(math.isfinite(v) for v in mk.values())
        assert mk[cbpe.THRESHOLD] < s.reference.accuracy - 0.2


# ---- through the processor core ---------------------------------------------------------------
CFG = ProcessorSettings(window_s=60, lateness_s=0, label_wait_s=0, baseline_s=60, embedding_permutations=10)


def _run(stream: cs.CbpeStream, labels: str, probabilities: bool, fast: bool) -> list:  # type: ignore[type-arg]
    snaps = cs.through_core(stream, CFG, labels=labels, probabilities=probabilities, fast=fast, chunk=700)
    return sorted(snaps, key=lambda s: (s.window_start, s.segment_key or "", s.segment_value or ""))


@pytest.mark.parametrize("probabilities", [False, True])
def test_the_core_estimates_before_labels_on_both_paths(probabilities: bool) -> None:
    s = cs.build("covariate", n_reference=3000, windows=4, window_events=600)
    fast = _run(s, "reference", probabilities, fast=True)
    exact = _run(s, "reference", probabilities, fast=False)
    assert [x.model_dump(exclude={"ts"}) for x in fast] == [x.model_dump(exclude={"ts"}) for x in exact]
    whole = [x for x in fast if x.segment_key is None]
    assert len(whole) == 5
    for snap, w in zip(whole[1:], s.windows, strict=True):
        m = snap.metrics
        assert "perf.accuracy" not in m and cbpe.ESTIMATION_ERROR not in m  # no labels in these windows
        assert m[cbpe.CALIBRATED] == 1.0
        assert abs(m[cbpe.ESTIMATED] - w.accuracy) <= 3 * m[cbpe.ESTIMATED_SE]
        assert snap.reference[cbpe.ESTIMATED] == pytest.approx(s.reference.accuracy, abs=0.01)
    assert whole[-1].metrics[cbpe.ESTIMATED] < whole[-1].metrics[cbpe.THRESHOLD]
    segs = [x for x in fast if x.segment_key == "site" and x.window_start == whole[-1].window_start]
    assert len(segs) == 2 and all(cbpe.ESTIMATED in x.metrics and cbpe.THRESHOLD in x.metrics for x in segs)


def test_the_core_reports_the_estimation_error_once_labels_join() -> None:
    s = cs.build("concept", n_reference=3000, windows=4, window_events=600)
    snaps = [x for x in _run(s, "all", False, fast=True) if x.segment_key is None]
    for snap, w in zip(snaps[1:], s.windows, strict=True):
        m = snap.metrics
        assert m["perf.accuracy"] == pytest.approx(w.accuracy)
        assert m[cbpe.ESTIMATION_ERROR] == pytest.approx(m[cbpe.ESTIMATED] - w.accuracy, abs=1e-9)
    assert snaps[-1].metrics[cbpe.ESTIMATION_ERROR] > 0.15  # concept drift: the estimate missed it


def test_events_without_a_confidence_are_left_out() -> None:
    s = cs.build("stable", n_reference=1000, windows=1, window_events=400)
    preds, _ = cs.events(s)
    # strip the score from every other prediction of the analysis window: no confidence there
    cut = len(s.reference.conf)
    out = []
    for i, v in enumerate(preds):
        if i >= cut and i % 2:
            e = orjson.loads(v)
            del e["outputs"]["score"]
            v = orjson.dumps(e)
        out.append(v)
    core = ProcessorCore(CFG, fast=True)
    snaps = core.process_prediction_values(out, "p", 0, range(len(out)), now=0.0).snapshots
    snaps += core.flush_all().snapshots
    last = next(x for x in snaps if x.segment_key is None and x.window_start > cs.T0_MS)
    assert last.count == 400 and cbpe.ESTIMATED in last.metrics


def test_the_default_rule_alerts_on_an_estimated_drop_before_labels_and_not_on_unchanged_traffic() -> None:
    from inferwatch.alerter.evaluation.evaluate import evaluate
    from inferwatch.alerter.evaluation.rules import default_rules_path, load_rules

    rule = next(r for r in load_rules(default_rules_path()) if r.name == "estimated_accuracy_drop")

    def holds(kind: str) -> list[bool]:
        s = cs.build(kind, n_reference=3000, windows=4, window_events=600)
        snaps = [x for x in _run(s, "reference", False, fast=True) if x.segment_key is None][1:]
        return [bool(ev.holds) for x in snaps for ev in evaluate(rule, x)]

    drifted = holds("covariate")
    assert len(drifted) == 4 and drifted[-1]  # realised accuracy fell ~20 points; no label in these windows
    assert holds("stable") == [False] * 4


def test_an_uploaded_reference_with_scores_and_labels_calibrates_the_estimate() -> None:
    import pandas as pd

    from inferwatch.processor.reference import ReferenceProfile, build_reference_profile

    s = cs.build("overconfident", n_reference=3000, windows=1, window_events=600)
    ref = s.reference
    df = pd.DataFrame({"pred": [cs.CLASSES[int(k)] for k in ref.pred], "score": ref.conf,
                       "truth": [cs.CLASSES[int(k)] for k in ref.truth]})
    prof = build_reference_profile(df, "cbpe", "1", features=[], prediction_column="pred", label_column="truth",
                                   score_column="score")
    core = ProcessorCore(ProcessorSettings(window_s=60, lateness_s=0, baseline_s=60), fast=True)
    core.set_uploaded_reference("cbpe", "1", ReferenceProfile.from_bytes(prof.to_bytes()).to_bytes())
    preds, _ = cs.events(s)
    cut = len(ref.conf)
    core.process_prediction_values(preds[cut:], "p", 0, range(len(preds) - cut), now=0.0)
    snap = next(x for x in core.flush_all().snapshots if x.segment_key is None)
    m = snap.metrics
    assert m[cbpe.CALIBRATED] == 1.0  # without the calibration this over-confident model reads ~0.97
    assert abs(m[cbpe.ESTIMATED] - s.windows[0].accuracy) <= 3 * m[cbpe.ESTIMATED_SE]


def test_join_records_of_earlier_versions_without_a_confidence_still_join() -> None:
    """A record parked by an earlier version (8 fields, no confidence) is read from the changelog:
    its label counts for the accuracy, not for the calibration."""
    from inferwatch.processor.core.joins import PRED

    core = ProcessorCore(ProcessorSettings(window_s=60, lateness_s=0, baseline_s=0), fast=False)
    pred = orjson.dumps({"schema_version": "prediction.v1", "event_id": "e1", "prediction_id": "p1", "ts": cs.T0_MS,
                         "model": "m", "model_version": "1", "outputs": {"label": "a", "score": 0.9}})
    core.process_prediction_values([pred], "p", 0, range(1), now=0.0)
    bucket = core.joinbook.buckets[core.joinbook.waiting(PRED, "m")["p1"]]
    assert len(bucket["p1"]) == 9 and bucket["p1"][7] == 0.9  # the confidence, before the ts
    bucket["p1"] = [*bucket["p1"][:7], bucket["p1"][8]]  # as an earlier version parked it
    fb = orjson.dumps({"schema_version": "feedback.v1", "event_id": "f1", "prediction_id": "p1",
                       "ts": cs.T0_MS + 1, "model": "m", "label": "a"})
    core.process_feedback([Raw(fb, "f", 0, 0)], now=0.0)
    snap = next(x for x in core.flush_all().snapshots if x.segment_key is None)
    assert snap.metrics["perf.accuracy"] == 1.0 and cbpe.ESTIMATED in snap.metrics
    assert cbpe.ESTIMATION_ERROR not in snap.metrics  # no confidence joined: nothing to compare


def test_a_segment_is_calibrated_on_its_own_reference_when_it_has_enough_labels() -> None:
    from inferwatch.processor.core import window_metrics as mx
    from inferwatch.processor.core.accumulator import Kind, WindowAcc

    over, fair = cs.build("overconfident"), cs.build("stable")
    thin = cs.Window(fair.reference.conf[:50], fair.reference.pred[:50], fair.reference.truth[:50],
                     fair.reference.positive[:50])

    def acc(rows: list[cbpe.Counts]) -> WindowAcc:
        a = WindowAcc("m", "1", 0, 1)
        for i in range(1, len(rows)):
            a.slot_of("site", f"s{i}")
        for name, attr in ((cbpe.HIST, "hist"), (cbpe.CSUM, "csum"), (cbpe.LAB, "lab"), (cbpe.LSUM, "lsum"),
                           (cbpe.HIT, "hit")):
            a.put(Kind.TOTAL, name, np.stack([getattr(r, attr) for r in rows]))
        return a

    parts = [_counts(over.reference), _counts(fair.reference), _counts(thin)]
    whole = cbpe.Counts.of(*(sum(getattr(p, f) for p in parts) for f in ("hist", "csum", "lab", "lsum", "hit")))
    ref = acc([whole, *parts])
    w = over.windows[0]
    cur = acc([_counts(w, labelled=False)] * 4)
    own, _ = mx.estimated_performance(cur, 1, ref, 1)
    mixed, _ = mx.estimated_performance(cur, 1, ref, 0)
    assert own[cbpe.ESTIMATED] is not None and mixed[cbpe.ESTIMATED] is not None
    assert abs(own[cbpe.ESTIMATED] - w.accuracy) <= 3 * (own[cbpe.ESTIMATED_SE] or 0.0)
    assert abs(mixed[cbpe.ESTIMATED] - w.accuracy) > abs(own[cbpe.ESTIMATED] - w.accuracy)
    # 50 labelled reference events are too few: the whole version's calibration is used, not none
    fallback, _ = mx.estimated_performance(cur, 3, ref, 3)
    assert fallback[cbpe.CALIBRATED] == 1.0 and fallback[cbpe.ESTIMATED] == mixed[cbpe.ESTIMATED]
