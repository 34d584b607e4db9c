"""Confirmation without stalls (issue #12): ``for_max_wait`` decides a pending alert on the wall
clock when its stream goes quiet or crawls, and ``for_events`` confirms on a count of snapshots."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferwatch.alerter.evaluation.rule_engine import Engine
from inferwatch.alerter.evaluation.rules import RuleErrors, load_rule_text
from inferwatch.alerter.lifecycle.state import AlertStore
from inferwatch.alerter.lifecycle.transitions import QUIET_FIRED, max_wait_s
from tests.unit.alerter.helpers import snap

BAD = {"error_rate": 0.2}
OK = {"error_rate": 0.0}
NO_DATA: dict[str, float] = {"error_rate": None}  # type: ignore[dict-item]  # a window without a value


class Clock:
    """A wall clock the test moves by hand (ms)."""

    def __init__(self, t_ms: int = 1_800_000_000_000) -> None:
        self.t_ms = t_ms

    def __call__(self) -> int:
        return self.t_ms

    def advance(self, seconds: float) -> None:
        self.t_ms += int(seconds * 1000)


def rules(extra: str = "for_max_wait: 30s") -> str:
    return f"""
rules:
  - name: err
    metric: error_rate
    condition: value > 0.05
    for: 10m
    {extra}
    annotations: {{summary: "{{{{ model }}}} errors {{{{ value }}}}"}}
"""


def engine(tmp_path: Path, clock: Clock, text: str | None = None) -> Engine:
    return Engine(AlertStore(tmp_path / "s.sqlite"), load_rule_text(text or rules(), "r.yaml"), clock=clock)


def states(e: Engine) -> list[str]:
    return [a.state for a in e.alerts.values()]


def test_breaching_snapshot_then_silence_fires_within_for_max_wait(tmp_path: Path) -> None:
    # Before the fix the alert stayed pending forever: `for` advanced only with event time.
    clock = Clock()
    e = engine(tmp_path, clock)
    assert e.process([snap(0, metrics=BAD)]) == [] and states(e) == ["pending"]
    clock.advance(29)
    assert e.tick() == [] and states(e) == ["pending"]
    clock.advance(1)
    fired = e.tick()
    assert [a.state for a in fired] == ["firing"]
    assert fired[0].reason == QUIET_FIRED and fired[0].annotations["reason"] == QUIET_FIRED
    assert fired[0].annotations["summary"] == "photo-verifier errors 0.2"
    assert fired[0].starts_at_ms == snap(0).window_end  # event time of the evidence, not the tick
    assert e.decisions["fired"] == 1
    assert [a.state for a in AlertStore(tmp_path / "s.sqlite").load_alerts().values()] == ["firing"]
    clock.advance(3600)
    assert e.tick() == []  # decided once


def test_fired_alert_then_resolves_in_event_time(tmp_path: Path) -> None:
    clock = Clock()
    e = engine(tmp_path, clock)
    e.process([snap(0, metrics=BAD)])
    clock.advance(30)
    e.tick()
    assert [a.state for a in e.process([snap(1, metrics=OK)])] == ["resolved"]
    assert e.process([snap(0, metrics=BAD)]) == []  # the replayed evidence moves nothing


def test_crawling_stream_fires_at_the_bound_with_its_own_reason(tmp_path: Path) -> None:
    clock = Clock()
    e = engine(tmp_path, clock)
    for i in range(3):  # a snapshot every 12 s: never quiet, but event time covers 2m of for 10m
        e.process([snap(i, metrics=BAD)])
        clock.advance(12)
    fired = e.tick()
    assert [a.state for a in fired] == ["firing"]
    assert fired[0].reason is not None and fired[0].reason.startswith("still breaching after for_max_wait (30s)")
    assert "3 snapshot(s) spanning 2m of event time (for: 10m)" in fired[0].reason


def test_no_data_then_quiet_is_dropped_with_a_reason(tmp_path: Path) -> None:
    clock = Clock()
    e = engine(tmp_path, clock)
    e.process([snap(0, metrics=BAD)])
    clock.advance(5)
    e.process([snap(1, metrics=NO_DATA)])
    assert states(e) == ["pending"]
    clock.advance(25)
    assert e.tick() == [] and e.alerts == {}
    (rec, reason), = e.dropped
    assert rec.rule == "err" and rec.reason == reason
    assert reason.startswith("series kept sending without data for the condition after 1 breaching snapshot(s)")
    assert e.decisions == {"dropped": 1}
    assert AlertStore(tmp_path / "s.sqlite").load_alerts() == {}


def test_data_coming_back_breaching_after_no_data_still_fires(tmp_path: Path) -> None:
    clock = Clock()
    e = engine(tmp_path, clock)
    e.process([snap(0, metrics=BAD)])
    e.process([snap(1, metrics=NO_DATA)])
    e.process([snap(2, metrics=BAD)])
    clock.advance(30)
    assert [a.reason for a in e.tick()] == [QUIET_FIRED]


def test_not_breaching_drops_at_once_as_before(tmp_path: Path) -> None:
    clock = Clock()
    e = engine(tmp_path, clock)
    e.process([snap(0, metrics=BAD)])
    e.process([snap(1, metrics=OK)])
    clock.advance(3600)
    assert e.alerts == {} and e.tick() == []


def test_restart_counts_the_bound_from_the_start_not_from_the_stored_wall_time(tmp_path: Path) -> None:
    clock = Clock()
    e = engine(tmp_path, clock)
    e.process([snap(0, metrics=BAD)])
    clock.advance(3600)  # the alerter was down for an hour: a backlog may be waiting in Kafka
    e2 = engine(tmp_path, clock)
    assert e2.tick() == [] and states(e2) == ["pending"]
    clock.advance(30)
    assert [a.reason for a in e2.tick()] == [QUIET_FIRED]


def test_for_events_fires_on_the_nth_consecutive_breach_whatever_the_event_time(tmp_path: Path) -> None:
    clock = Clock()
    text = """
rules:
  - name: err
    metric: error_rate
    condition: value > 0.05
    for_events: 3
"""
    e = engine(tmp_path, clock, text)
    e.process([snap(0, metrics=BAD)])
    e.process([snap(1, metrics=BAD)])
    e.process([snap(2, metrics=OK)])  # the run is broken: the count starts again
    e.process([snap(3, metrics=BAD)])
    e.process([snap(4, metrics=NO_DATA)])  # no data neither counts nor breaks
    assert e.process([snap(5, metrics=BAD)]) == [] and states(e) == ["pending"]
    fired = e.process([snap(6, metrics=BAD)])
    assert [a.state for a in fired] == ["firing"]
    assert fired[0].reason == "3 consecutive breaching snapshots (for_events)"


def test_for_or_for_events_whichever_comes_first(tmp_path: Path) -> None:
    clock = Clock()
    text = rules("for_events: 2").replace("for: 10m", "for: 1m")
    e = engine(tmp_path, clock, text)
    e.process([snap(0, metrics=BAD, window_s=10)])
    assert [a.reason for a in e.process([snap(1, metrics=BAD, window_s=10)])] == [
        "2 consecutive breaching snapshots (for_events)"]
    e2 = engine(tmp_path / "b", clock, rules("for_events: 50").replace("for: 10m", "for: 1m"))
    e2.process([snap(0, metrics=BAD)])
    fired = e2.process([snap(1, metrics=BAD)])  # 60 s of event time: `for` confirms first
    assert [(a.state, a.reason) for a in fired] == [("firing", None)]


def test_default_for_max_wait_is_twice_for_and_at_least_5_minutes() -> None:
    assert max_wait_s(load_rule_text(rules(""), "r.yaml")[0]) == 1200.0
    assert max_wait_s(load_rule_text(rules("").replace("10m", "1m"), "r.yaml")[0]) == 300.0
    assert max_wait_s(load_rule_text(rules("for_max_wait: 90s"), "r.yaml")[0]) == 90.0


def test_default_bound_applies_when_unset(tmp_path: Path) -> None:
    clock = Clock()
    e = engine(tmp_path, clock, rules(""))
    e.process([snap(0, metrics=BAD)])
    clock.advance(1199)
    assert e.tick() == []
    clock.advance(1)
    assert [a.state for a in e.tick()] == ["firing"]


@pytest.mark.parametrize(("extra", "field", "msg"), [
    ("for_max_wait: 0", "for_max_wait", "must be more than 0s"),
    ("for_max_wait: soon", "for_max_wait", ""),
    ("for_max_wait: -5", "for_max_wait", ""),
    ("for_events: 0", "for_events", "minimum"),
    ("for_events: 2.5", "for_events", "integer"),
    ("for_events: '3'", "for_events", "integer"),
    ("for_events: true", "for_events", "integer"),
    ("for_events: 1000000000000", "for_events", "maximum"),
])
def test_hostile_confirmation_fields_are_refused_by_name(extra: str, field: str, msg: str) -> None:
    with pytest.raises(RuleErrors) as exc:
        load_rule_text(rules(extra), "r.yaml")
    text = str(exc.value)
    assert "rule 'err'" in text and field in text and msg in text


def test_a_rule_reloaded_as_an_absent_rule_drops_its_pending_alerts(tmp_path: Path) -> None:
    clock = Clock()
    e = engine(tmp_path, clock)
    e.process([snap(0, metrics=BAD)])
    e.set_rules(load_rule_text("rules:\n  - name: err\n    absent_for: 1h\n", "r.yaml"))
    assert e.tick() == [] and e.alerts == {}
    assert [r for _, r in e.dropped] == ["the rule was reloaded as an absent rule"]
