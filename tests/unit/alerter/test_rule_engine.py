from __future__ import annotations

from pathlib import Path

from inferwatch.alerter.evaluation.rule_engine import Engine
from inferwatch.alerter.evaluation.rules import default_rules_path, load_rule_text, load_rules
from inferwatch.alerter.lifecycle.state import AlertStore
from tests.unit.alerter.helpers import snap

RULES = """
rules:
  - name: err
    metric: error_rate
    match: {segments: whole, min_count: 50}
    condition: value > 0.05
    for: 2m
    keep_firing_for: 1m
    annotations: {summary: "{{ model }} errors {{ value | round(2) }}"}
  - name: lat_anomaly
    metric: latency_p95_ms
    anomaly: {zscore: 4, window: 10, min_windows: 5, direction: above}
"""


def engine(tmp_path: Path, text: str = RULES) -> Engine:
    return Engine(AlertStore(tmp_path / "s.sqlite"), load_rule_text(text, "r.yaml"))


def test_for_and_keep_firing_for_run_on_event_time(tmp_path: Path) -> None:
    e = engine(tmp_path)
    bad = {"error_rate": 0.2}
    assert e.process([snap(0, metrics=bad)]) == []  # pending
    assert e.process([snap(1, metrics=bad)]) == []  # 60 s < for 2m
    fired = e.process([snap(2, metrics=bad)])
    assert [a.state for a in fired] == ["firing"] and fired[0].annotations["summary"] == "photo-verifier errors 0.2"
    ok = {"error_rate": 0.0}
    assert [a.state for a in e.process([snap(3, metrics=ok)])] == ["firing"]  # keep_firing_for 1m
    assert [a.state for a in e.process([snap(4, metrics=ok)])] == ["resolved"]


def test_replayed_snapshots_do_not_move_state_and_state_survives_restart(tmp_path: Path) -> None:
    e = engine(tmp_path)
    for i in range(3):
        e.process([snap(i, metrics={"error_rate": 0.2})])
    e2 = engine(tmp_path)  # a restart: same database
    assert [a.state for a in e2.alerts.values()] == ["firing"]
    assert e2.process([snap(1, metrics={"error_rate": 0.0})]) == []  # old window replayed: ignored
    assert [a.state for a in e2.alerts.values()] == ["firing"]


def test_min_count_and_missing_metric_do_not_alert(tmp_path: Path) -> None:
    e = engine(tmp_path)
    for i in range(5):
        e.process([snap(i, count=10, metrics={"error_rate": 0.9})])
        e.process([snap(i, model="other", metrics={"latency_p95_ms": 10.0})])
    assert e.alerts == {}


def test_anomaly_needs_min_windows_then_fires(tmp_path: Path) -> None:
    e = engine(tmp_path)
    for i in range(4):
        e.process([snap(i, metrics={"latency_p95_ms": 100.0 + i % 2})])
    assert e.process([snap(4, metrics={"latency_p95_ms": 500.0})]) == []  # only 4 windows of history
    e2 = engine(tmp_path)  # history is persisted too
    for i in range(5, 9):
        e2.process([snap(i, metrics={"latency_p95_ms": 100.0 + i % 2})])
    fired = e2.process([snap(9, metrics={"latency_p95_ms": 900.0})])
    assert [a.rule for a in fired] == ["lat_anomaly"]


def test_defaults_catch_new_camera_in_segment_and_name_the_cause(tmp_path: Path) -> None:
    e = Engine(AlertStore(tmp_path / "s.sqlite"), load_rules(default_rules_path()))
    out = []
    for i in range(4):
        seg = snap(i, seg=("device", "pixel-9"), count=600,
                   metrics={"perf.accuracy": 0.80, "input.image_width.psi": 0.43, "input.image_height.psi": 0.05},
                   reference={"perf.accuracy": 0.93})
        whole = snap(i, count=5000, metrics={"perf.accuracy": 0.91, "input.image_width.psi": 0.1},
                     reference={"perf.accuracy": 0.93},
                     findings=[{"metric": "perf.accuracy", "kind": "degradation", "value": 0.91,
                                "top_segments": [{"key": "device", "value": "pixel-9", "contribution": 0.9}]}])
        control = snap(i, model="control", count=5000, metrics={"perf.accuracy": 0.925, "error_rate": 0.001,
                       "latency_p95_ms": 40.0, "input.image_width.psi": 0.02},
                       reference={"perf.accuracy": 0.93, "error_rate": 0.001, "latency_p95_ms": 39.0})
        out += e.process([seg, whole, control])
    acc = [a for a in out if a.rule == "accuracy_drop"]
    assert acc and all(a.segment == "device=pixel-9" for a in acc)
    summary = acc[-1].annotations["summary"]
    assert "in segment device=pixel-9" in summary and "input drift on image_width there" in summary
    assert "-14.0%" in summary
    assert {a.rule for a in out} == {"accuracy_drop", "input_drift"}
    assert not [a for a in e.alerts.values() if a.model == "control"]
