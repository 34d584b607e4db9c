"""Absent rules (issue #12): a model that stops sending snapshots raises one alert per model."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferwatch.alerter.evaluation.rule_engine import SEEN_PERSIST_S, Engine
from inferwatch.alerter.evaluation.rules import RuleErrors, default_rules_path, load_rule_text, load_rules
from inferwatch.alerter.lifecycle.state import AlertStore
from inferwatch.alerter.route.dispatch import Dispatcher
from inferwatch.alerter.route.routing import compile_route, parse_config
from tests.unit.alerter.helpers import snap
from tests.unit.alerter.test_confirmation import Clock

RULES = """
rules:
  - name: silent
    match: {model: "photo-.*"}
    absent_for: 10m
    severity: critical
    labels: {team: vision}
    annotations: {summary: "{{ model }} sent nothing for {{ silent_for }} (last at {{ last_seen }})"}
"""
M = {"error_rate": 0.0}


def engine(tmp_path: Path, clock: Clock, text: str = RULES) -> Engine:
    return Engine(AlertStore(tmp_path / "s.sqlite"), load_rule_text(text, "r.yaml"), clock=clock)


def test_a_model_that_stops_sending_fires_once_then_resolves_when_it_is_back(tmp_path: Path) -> None:
    clock = Clock()
    e = engine(tmp_path, clock)
    # several segments and versions of one model: one alert for the model
    e.process([snap(0, metrics=M), snap(0, seg=("device", "a"), metrics=M)])
    e.process([snap(0, metrics=M).model_copy(update={"model_version": "2"})])
    clock.advance(599)
    assert e.tick() == []
    clock.advance(1)
    fired = e.tick()
    assert [(a.state, a.labels) for a in fired] == [("firing", {
        "alertname": "silent", "model": "photo-verifier", "severity": "critical", "team": "vision"})]
    a = fired[0]
    assert a.annotations["summary"].startswith("photo-verifier sent nothing for 10m (last at 2027-01-15T")
    assert a.annotations["reason"] == "no snapshot for 10m (absent_for 10m)" and a.value == 600.0
    clock.advance(3600)
    assert e.tick() == []  # one alert per absence, not one per tick
    back = e.process([snap(1, seg=("device", "a"), metrics=M)])
    assert [(b.state, b.fingerprint) for b in back] == [("resolved", a.fingerprint)]
    assert e.tick() == []
    clock.advance(600)
    assert [x.state for x in e.tick()] == ["firing"]  # silent again: a new absence


def test_never_seen_and_unselected_models_are_not_absent(tmp_path: Path) -> None:
    clock = Clock()
    e = engine(tmp_path, clock)
    e.process([snap(0, model="ranker", metrics=M)])  # match.model does not select it
    clock.advance(86_400)
    assert e.tick() == [] and e.alerts == {}


def test_per_model_version_and_min_count(tmp_path: Path) -> None:
    clock = Clock()
    text = """
rules:
  - name: silent
    absent_for: 60
    absent_per: model_version
    match: {min_count: 100}
"""
    e = engine(tmp_path, clock, text)
    e.process([snap(0, metrics=M), snap(0, metrics=M).model_copy(update={"model_version": "2"})])
    clock.advance(30)
    e.process([snap(1, metrics=M)])  # version 1 alive
    e.process([snap(1, count=5, metrics=M).model_copy(update={"model_version": "2"})])  # a trickle: not alive
    clock.advance(30)
    fired = e.tick()
    assert [a.labels.get("model_version") for a in fired] == ["2"]


def test_sightings_survive_a_restart_and_the_wait_counts_from_the_start(tmp_path: Path) -> None:
    clock = Clock()
    e = engine(tmp_path, clock)
    e.process([snap(0, metrics=M)])
    e.store.close()
    clock.advance(7200)  # the model went silent while the alerter was down
    e2 = engine(tmp_path, clock)
    assert e2.tick() == []  # no alarm on time the alerter did not watch
    clock.advance(600)
    fired = e2.tick()
    assert [a.model for a in fired] == ["photo-verifier"]
    assert fired[0].annotations["reason"] == "no snapshot for 2h10m (absent_for 10m)"
    e3 = engine(tmp_path, clock)  # the firing absence is stored too: not raised twice
    assert [a.state for a in e3.alerts.values()] == ["firing"] and e3.tick() == []


def test_sightings_are_written_at_most_every_persist_interval(tmp_path: Path) -> None:
    clock = Clock()
    e = engine(tmp_path, clock)
    first = clock()
    for i in range(5):
        e.process([snap(i, metrics=M)])
        clock.advance(1)
    assert AlertStore(tmp_path / "s.sqlite").load_seen() == {("silent", "photo-verifier", ""): first}
    clock.advance(SEEN_PERSIST_S)
    e.process([snap(9, metrics=M)])
    assert AlertStore(tmp_path / "s.sqlite").load_seen() == {("silent", "photo-verifier", ""): clock()}


def test_a_removed_absent_rule_resolves_its_alert(tmp_path: Path) -> None:
    clock = Clock()
    e = engine(tmp_path, clock)
    e.process([snap(0, metrics=M)])
    clock.advance(600)
    e.tick()
    assert [a.state for a in e.set_rules([])] == ["resolved"]
    clock.advance(600)
    assert e.tick() == []


def test_one_notification_per_model_through_the_dispatcher(tmp_path: Path) -> None:
    clock = Clock()
    e = engine(tmp_path, clock)
    for model in ("photo-a", "photo-b"):
        e.process([snap(0, model=model, metrics=M), snap(0, model=model, seg=("device", "x"), metrics=M)])
    clock.advance(600)
    cfg = parse_config({"route": {"receiver": "hook", "group_by": ["alertname", "model"], "group_wait": 0},
                        "receivers": [{"name": "hook", "url": "http://127.0.0.1:9/", "signing": "none"}]})
    d = Dispatcher(compile_route(cfg.route), {r.name: r for r in cfg.receivers}, [], e.store)
    for rec in e.tick():
        d.insert(rec)
    items = d.flush_due(e.firing_labels)
    assert sorted(i.group_key for i in items) == sorted({i.group_key for i in items}) and len(items) == 2
    clock.advance(60)
    assert e.tick() == []


def test_default_rules_watch_every_model_generously(tmp_path: Path) -> None:
    clock = Clock()
    e = Engine(AlertStore(tmp_path / "s.sqlite"), load_rules(default_rules_path()), clock=clock)
    (rule,) = [r for r in e.rules if r.kind == "absent"]
    assert rule.absent_for_s is not None and rule.absent_for_s >= 1800
    e.process([snap(0, model="anything", count=1, metrics={})])
    clock.advance(rule.absent_for_s)
    assert [a.labels["model"] for a in e.tick()] == ["anything"]


@pytest.mark.parametrize(("extra", "field", "msg"), [
    ("absent_for: 0", "absent_for", "must be more than 0s"),
    ("absent_for: never", "absent_for", ""),
    ("absent_for: 1m\n    metric: error_rate", "metric", "not used by an absent rule"),
    ("absent_for: 1m\n    for: 1m", "for", "not used by an absent rule"),
    ("absent_for: 1m\n    for_events: 3", "for_events", "not used by an absent rule"),
    ("absent_for: 1m\n    condition: value > 1", "", "exactly one of 'condition' or 'anomaly'"),
    ("absent_for: 1m\n    absent_per: segment", "absent_per", ""),
    ("absent_per: model", "metric", "required"),
])
def test_hostile_absent_rules_are_refused_by_name(extra: str, field: str, msg: str) -> None:
    with pytest.raises(RuleErrors) as exc:
        load_rule_text(f"rules:\n  - name: silent\n    {extra}\n", "r.yaml")
    text = str(exc.value)
    assert "rule 'silent'" in text and field in text and msg in text


def test_a_model_the_reloaded_rule_no_longer_selects_is_resolved(tmp_path: Path) -> None:
    clock = Clock()
    e = engine(tmp_path, clock)
    e.process([snap(0, model="photo-old", metrics=M), snap(0, model="photo-new", metrics=M)])
    clock.advance(600)
    assert len(e.tick()) == 2
    e.set_rules(load_rule_text(RULES.replace('"photo-.*"', '"photo-new"'), "r.yaml"))
    out = e.tick()
    assert [(a.model, a.state) for a in out] == [("photo-old", "resolved")]
    assert e.tick() == []
