"""The transport's state lines: one per change of state, rate limited, with the counts behind them."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from inferwatch.sdk.health import Health, LibrdkafkaLog


class Facts:
    """Numbers a transport would report, set by the test."""

    def __init__(self) -> None:
        self.v: dict[str, Any] = {"in_queue": 7, "loggers": 3, "spooled": 0, "dropped": 0, "spool_bytes": 0,
                                  "spool_max_bytes": 1000, "spool_dir": "/sp"}

    def __call__(self) -> dict[str, Any]:
        return dict(self.v)


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_one_line_per_state_change_with_its_counts(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    f = Facts()
    h = Health("b:9092", 30_000, f)
    h.trouble("Connect to b:9092 failed: Connection refused")
    assert _lines(caplog) == [] and h.suspect and h.probe_due()  # suspect: probe before saying anything
    h.probe_failed("metadata timed out")
    h.probe_failed("metadata timed out")
    h.delivery_failed("_MSG_TIMED_OUT")
    for _ in range(1000):
        f.v["spooled"] += 1
        h.spooled("delivery failed (_MSG_TIMED_OUT)")
    f.v["dropped"] = 5
    for _ in range(5):
        h.dropped("delivery failed", "the spool /sp is full (1000 bytes)")
    f.v["spool_bytes"] = 900
    h.probe_ok()
    h.probe_ok()
    lines = _lines(caplog)
    assert len(lines) == 4, lines
    down, spooling, full, up = lines
    assert "unreachable (Connect to b:9092 failed: Connection refused)" in down
    assert "7 events in the local queue" in down and "3 loggers share" in down and "message.timeout.ms=30000" in down
    assert "spooling events to /sp" in spooling and "1 spooled so far" in spooling
    assert "dropping events" in full and "5 dropped so far" in full
    assert "reachable again" in up and "1000 events spooled and 5 dropped during the outage" in up
    assert "900 bytes in the spool" in up
    assert h.outages == 1 and not h.down and not h.suspect


def test_a_suspicion_the_probe_clears_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    h = Health("b:9092", 30_000, Facts())
    h.trouble("Disconnected (after 600000ms in state UP)")  # an idle connection closed by the broker
    h.probe_ok()
    assert _lines(caplog) == [] and h.outages == 0 and not h.probe_due()


def test_flapping_is_rate_limited_and_the_next_line_counts_what_was_held_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Health("b:9092", 30_000, Facts(), interval_s=0.3)
    for _ in range(5):  # five outages in quick succession
        h.delivery_failed("_MSG_TIMED_OUT")
        h.probe_ok()
    assert len(_lines(caplog)) == 2 and h.outages == 5  # the first down and the first recovery
    time.sleep(0.35)
    h.delivery_failed("_MSG_TIMED_OUT")
    h.probe_ok()
    lines = _lines(caplog)
    assert len(lines) == 4
    assert "4 more such outage line(s) held back" in lines[2]
    assert "4 more such recovery line(s) held back" in lines[3]
    assert h.warn.held_back == 8 and h.warn.emitted == 4


def test_spooling_and_full_are_new_episodes_after_the_spool_drained(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    h = Health("b:9092", 30_000, Facts(), interval_s=0.0)
    h.spooled("the local queue is full")  # a burst with the broker up
    h.spooled("the local queue is full")
    h.spool_drained(2)
    h.spooled("the local queue is full")
    lines = _lines(caplog)
    assert len(lines) == 2 and all("spooling events to /sp" in m for m in lines), lines
    assert any("spool drained" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)


def test_librdkafka_connection_chatter_is_debug_other_lines_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="inferwatch.sdk.rdkafka")
    lg = LibrdkafkaLog(interval_s=60)
    for _ in range(50):
        lg.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", "Connect to ipv4#127.0.0.1:1 failed")
        lg.log(logging.WARNING, "%s [%s] %s", "CONFWARN", "rdkafka#producer-1", "property x is ignored")
    loud = [r for r in caplog.records if r.levelno > logging.DEBUG]
    assert [r.getMessage() for r in loud] == ["CONFWARN [rdkafka#producer-1] property x is ignored"]
    assert len(caplog.records) == 100
