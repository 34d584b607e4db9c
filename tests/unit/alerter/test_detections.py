"""Detections (``detection.v1``) through the rule engine and the dispatcher: a detection fires its
alert at once (the detector's calibrated threshold is the confirmation), ``cleared`` resolves it, a
replay changes nothing, a rule's condition can ask for a fixed threshold instead, and detections of
one model version that start together reach people as ONE incident that names the segment, the
features and the evidence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from inferwatch.alerter.evaluation.rule_engine import Engine
from inferwatch.alerter.evaluation.rules import default_rules_path, load_rules
from inferwatch.alerter.lifecycle.state import AlertStore
from inferwatch.alerter.route.dispatch import Dispatcher
from inferwatch.alerter.route.incidents import INCIDENT_ANNOTATION
from inferwatch.alerter.route.routing import compile_route, parse_config
from inferwatch.contract.events import AlertV1, DetectionV1, Evidence

T0 = 1_764_140_000_000


def det(metric: str, seg: tuple[str, str] | None = ("region", "eu"), ts: int = T0, status: str = "detected",
        statistic: float = 18.0, evidence: list[tuple[str, float]] | None = None, **kw: Any) -> DetectionV1:
    return DetectionV1(
        event_id=f"{metric}-{seg}-{ts}-{status}", ts=ts, model="wine", model_version="1",
        segment_key=seg[0] if seg else None, segment_value=seg[1] if seg else None,
        signal=kw.pop("signal", "input"), metric=metric, detector="cusum", status=status,  # type: ignore[arg-type]
        statistic=statistic, threshold=17.3, false_alarm_rate=3e-8, events=kw.pop("events", 40),
        change_ts=ts - 8000, value=kw.pop("value", 13.7), reference=kw.pop("reference", 13.0),
        evidence=[Evidence(name=n, score=s) for n, s in (evidence or [(metric, 1.0)])], **kw)


def engine(tmp_path: Path, rules: Any = None, clock: Any = lambda: 1) -> Engine:
    return Engine(AlertStore(tmp_path / "a.sqlite"), rules or load_rules(default_rules_path()), clock=clock)


def test_a_detection_fires_at_once_and_cleared_resolves(tmp_path: Path) -> None:
    eng = engine(tmp_path)
    [a] = eng.process_detections([det("input.alcohol")])
    assert a.state == "firing" and a.rule == "drift_detected" and a.starts_at_ms == T0
    assert a.labels["metric"] == "input.alcohol.cusum" and a.segment == "region=eu"
    assert a.active_since_ms == T0 - 8000  # the detector's estimate of the change
    summary = a.annotations["summary"]
    assert "in segment region=eu" in summary and "evidence: input.alcohol (+1)" in summary
    assert "3e-08 false alarms per event" in a.annotations["reason"]
    assert eng.process_detections([det("input.alcohol")]) == []  # a replay: nothing changes
    assert eng.process_detections([det("input.alcohol", ts=T0 + 5)]) != []  # still drifting: updated
    [r] = eng.process_detections([det("input.alcohol", ts=T0 + 9000, status="cleared")])
    assert r.state == "resolved" and r.ends_at_ms == T0 + 9000
    # a cleared detection without a firing alert changes nothing
    assert eng.process_detections([det("input.proline", ts=T0 + 9000, status="cleared")]) == []
    # the state survives a restart of the engine (persisted in the same call)
    again = engine(tmp_path)
    assert again.alerts[r.fingerprint].state == "resolved"


def test_a_new_segment_and_a_label_signal_are_said(tmp_path: Path) -> None:
    eng = engine(tmp_path)
    [a] = eng.process_detections([det("perf.error_rate", seg=("device", "cam-new"), signal="performance",
                                      new_segment=True, labels=31, value=0.2, reference=0.03)])
    s = a.annotations["summary"]
    assert "new segment, compared with the whole version's reference" in s and "(31 labels)" in s


def test_a_rule_can_ask_for_a_fixed_threshold_and_select_metrics(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(yaml.safe_dump({"version": 1, "rules": [
        {"name": "strong_input_drift", "metric": "detection:input.*", "condition": "statistic >= 2 * threshold"},
        {"name": "big_segments_only", "metric": "detection:*", "match": {"segments": "per_segment", "min_count": 100},
         "condition": "statistic >= threshold"},
    ]}))
    eng = engine(tmp_path, load_rules(tmp_path / "r.yaml"))
    assert eng.process_detections([det("input.alcohol", statistic=20.0)]) == []  # below 2 x threshold; 40 events
    fired = eng.process_detections([det("input.alcohol", statistic=40.0, ts=T0 + 1, events=150)])
    assert sorted(a.rule for a in fired) == ["big_segments_only", "strong_input_drift"]
    assert eng.process_detections([det("llm.logprob_mean", seg=None, signal="llm", statistic=99.0, events=500)]) == []


def test_detections_that_start_together_are_one_incident(tmp_path: Path) -> None:
    clock = {"t": 1_000_000.0}
    cfg = parse_config({"route": {"receiver": "team"},
                        "receivers": [{"name": "team", "url": "http://127.0.0.1:1/", "signing": "none"}]})
    eng = engine(tmp_path, clock=lambda: int(clock["t"] * 1000))
    d = Dispatcher(compile_route(cfg.route), {r.name: r for r in cfg.receivers}, [],
                   AlertStore(tmp_path / "dispatch.sqlite"), lambda: clock["t"])
    dets = [det("input.all", evidence=[("input.alcohol", 1.1), ("input.proline", 1.0)], value=0.4, reference=0.0),
            det("input.alcohol", ts=T0 + 4000, evidence=[("input.alcohol", 1.05)]),
            det("input.proline", ts=T0 + 5000, value=1017.0, reference=749.0, evidence=[("input.proline", 0.87)]),
            det("input.alcohol", seg=None, ts=T0 + 50_000, events=800)]
    for x in dets:
        for rec in eng.process_detections([x]):
            d.insert(rec)
    sent = []
    for _ in range(120):
        clock["t"] += 1.0
        sent.extend(d.flush_due(eng.firing_labels))
    notes = [AlertV1.model_validate_json(x.body) for x in sent]
    assert len(notes) == 1
    n = notes[0]
    assert len(n.alerts) == 4
    text = n.alerts[0].annotations[INCIDENT_ANNOTATION]
    assert "in segment region=eu" in text
    assert "features: alcohol, all, proline" in text or "features: alcohol, proline" in text
    assert "input.alcohol.cusum" in text and "evidence:" in text
