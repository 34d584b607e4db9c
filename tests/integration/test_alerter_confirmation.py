"""Issue #12 through the real broker and the real alerter: a breaching snapshot followed by silence
is notified after ``for_max_wait`` (it stayed pending forever before), and an absent rule notifies
a model that stopped sending, then its return."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from inferwatch.alerter.lifecycle.transitions import QUIET_FIRED
from inferwatch.alerter.notification.webhook_receiver import LocalReceiver
from inferwatch.alerter.service import AlerterService
from inferwatch.config import Settings
from tests.support.alerter import config, produce, snapshot

pytestmark = pytest.mark.integration

RULES = """
rules:
  - name: errors
    metric: error_rate
    match: {model: "slow"}
    condition: value > 0.1
    for: 10m
    for_max_wait: 3s
  - name: silent
    match: {model: "gone"}
    absent_for: 3s
"""


def test_quiet_breach_fires_after_for_max_wait_and_silence_is_notified(settings: Settings, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    with LocalReceiver() as rcv:
        svc = AlerterService(settings, rules, config([{"name": "hook", "url": rcv.url, "signing": "none"}]))
        svc.start_in_thread()
        try:
            sent_at = time.time()
            produce(settings, [("slow", snapshot("slow", 0, 0.5)), ("gone", snapshot("gone", 0, 0.0))])

            def by_model(model: str) -> list[dict]:  # type: ignore[type-arg]
                return [b for r in list(rcv.requests) if (b := orjson.loads(r.body))["group_labels"]["model"] == model]

            assert rcv.wait_for(lambda rs: by_model("slow") and by_model("gone"), 60)
            received = {orjson.loads(r.body)["group_labels"]["model"]: r.at for r in rcv.requests}
            # neither could have gone out before its 3 s bound: nothing else moves them
            assert received["slow"] - sent_at >= 3.0 and received["gone"] - sent_at >= 3.0
            (slow,) = by_model("slow")
            assert slow["status"] == "firing" and slow["alerts"][0]["annotations"]["reason"] == QUIET_FIRED
            (gone,) = by_model("gone")
            assert gone["status"] == "firing" and gone["alerts"][0]["labels"] == {
                "alertname": "silent", "model": "gone", "severity": "warning"}
            produce(settings, [("gone", snapshot("gone", 1, 0.0))])  # back: resolved
            assert rcv.wait_for(lambda rs: len(by_model("gone")) >= 2, 60)
            time.sleep(1.5)  # past group_interval, within absent_for: a repeated absence would be out by now
            assert [b["status"] for b in by_model("gone")] == ["firing", "resolved"]
            assert [b["status"] for b in by_model("slow")] == ["firing"]
        finally:
            svc.join()
