"""The demo's fleet through the whole platform, shortened: real broker, real processor, sink, alerter
and API subprocesses, the embedded store, a verifying webhook receiver in the test process.

Asserts what a user of ``make demo`` is promised: every incident raises its alert for the right
model, naming the right segment first; the healthy control raises none; the saved investigation
shows the accuracy drop on the new device; every event produced is in the store, exactly once.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from inferwatch.demo import expectations as ex
from inferwatch.demo.driver import send_fleet
from inferwatch.demo.fleet import CONTROL_MODEL, NEW_DEVICE, FleetConfig, count_events
from inferwatch.demo.notifications import Inbox
from inferwatch.demo.runner import investigation, store_counts, wait_for_history
from inferwatch.demo.stack import Stack, StackSettings
from inferwatch.supervisor import cli_command
from tests.support.kafka import new_prefix

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

DURATION_S, INCIDENT_S = 960, 360  # 16 simulated minutes, incidents from minute 6
WALL_S = 45.0  # simulated time ~21x faster than the clock


def _start_ms() -> int:
    # end before now, aligned to 10 minutes like the demo, so the saved query's time filter keeps it all
    start = int(time.time() * 1000) - DURATION_S * 1000 - 600_000
    return start - start % 600_000


def test_fleet_end_to_end(kafka_bootstrap: str, tmp_path: Path) -> None:
    inbox = Inbox()
    stack = Stack(StackSettings(data_dir=tmp_path / "iw", kafka_bootstrap=kafka_bootstrap, topic_prefix=new_prefix(),
                               on_notification=inbox.add))
    cfg = FleetConfig(start_ms=_start_ms(), duration_s=DURATION_S, incident_at_s=INCIDENT_S)
    with stack.start():
        rep = send_fleet(stack.settings, cfg, count_events(cfg), speed=DURATION_S / WALL_S,  # type: ignore[arg-type]
                         spool_dir=tmp_path / "spool")
        assert all(s["failed"] == 0 and s["dropped"] == 0 for s in rep.sdk_stats.values()), rep.sdk_stats

        # every expected incident alerts (bounded wait: the processor may lag the replay)
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and not all(v.caught for v in ex.judge_all(inbox.firing())):
            stack.supervisor.check()
            time.sleep(1)
        counts = wait_for_history(stack, rep, timeout_s=90)
        time.sleep(3)  # stragglers: an alert on the control arriving now must still fail the test
        firing = inbox.firing()
        verdicts = {v.expectation.incident: v for v in ex.judge_all(firing)}
        res = investigation(stack)
        api_alerts = httpx.get(f"{stack.api_url}/v1/alerts", timeout=10).json()["alerts"]
        metrics = httpx.get(f"{stack.api_url}/metrics", timeout=30).text
        final_counts = store_counts(stack)
        # the user's path: the CLI, which goes through the sink's API while the sink owns the store
        env = {**os.environ, **stack.env()}
        cli_sql = subprocess.run(cli_command("sql", "--saved", "accuracy_by_segment", "--param", "model=photo-verifier",
                                             "--param", "bucket_minutes=10", "--format", "json"),
                                 env=env, capture_output=True, text=True, timeout=120)
        cli_alerts = subprocess.run(cli_command("alerts", "list", "--state", "firing", "--json"),
                                    env=env, capture_output=True, text=True, timeout=120)

    log = "\n".join(f"{a.model} {a.rule} {a.segment} {a.summary}" for a in firing)
    for name, v in verdicts.items():
        assert v.caught, f"{name}: {v.reason}\n{log}"
    assert verdicts["the new camera"].first_segment == f"device={NEW_DEVICE}"
    # the accuracy alert names the new device and no other device
    acc_segments = {a.segment for a in firing if a.model == "photo-verifier" and a.rule == "accuracy_drop"}
    assert f"device={NEW_DEVICE}" in acc_segments
    assert not {s for s in acc_segments if s and s.startswith("device=") and s != f"device={NEW_DEVICE}"}
    assert ex.control_alerts(firing) == [], log
    assert not any(a["model"] == CONTROL_MODEL for a in api_alerts)
    assert inbox.bad_signatures == 0

    # the saved investigation: in the buckets where the new device appears, its accuracy (weighted by
    # labels) is well below the other devices' (the fleet makes it ~0.80 against ~0.93)
    rows = [dict(zip(res.columns, r, strict=True)) for r in res.rows]
    buckets = {r["bucket"] for r in rows if r["segment_value"] == NEW_DEVICE}
    assert buckets, rows

    def weighted(sel: list[dict]) -> float:  # type: ignore[type-arg]
        n = sum(r["labeled_count"] for r in sel)
        return sum(r["accuracy"] * r["labeled_count"] for r in sel) / n

    new = weighted([r for r in rows if r["segment_value"] == NEW_DEVICE])
    old = weighted([r for r in rows if r["bucket"] in buckets and r["segment_value"] != NEW_DEVICE])
    assert old - new > 0.08, (new, old, rows)

    assert cli_sql.returncode == 0, cli_sql.stderr
    cli_rows = [json.loads(line) for line in cli_sql.stdout.splitlines() if line.strip()]
    assert {r["segment_value"] for r in cli_rows} == {r["segment_value"] for r in rows}
    assert cli_alerts.returncode == 0, cli_alerts.stderr
    listed = json.loads(cli_alerts.stdout)
    assert any(a["model"] == "photo-verifier" and a["segment"] == f"device={NEW_DEVICE}" for a in listed)
    assert not any(a["model"] == CONTROL_MODEL for a in listed)

    # every event produced is stored once: rows == distinct event ids == what the SDK was given
    assert counts == final_counts
    for model, n in rep.predictions.items():
        assert final_counts[f"predictions:{model}"] == (n, n), (model, final_counts)
    for model, n in rep.feedback.items():
        assert final_counts[f"feedback:{model}"] == (n, n), (model, final_counts)

    # the composed API's /metrics reflects the run
    assert 'inferwatch_events_in_total{topic="inferwatch.predictions"}' in metrics
    assert "inferwatch_alerts{" in metrics and "inferwatch_consumer_lag{" in metrics
