"""The demo's fleet through the whole platform, shortened: real broker, real processor, sink, alerter
and API subprocesses, the embedded store, a verifying webhook receiver in the test process.

Asserts what a user of ``make demo`` is promised: every incident raises its alert for the right
model, naming the right segment first; the healthy control raises none; the saved investigation
shows the accuracy drop on the new device; every event produced is in the store, exactly once.
"""

from __future__ import annotations

import json

import pytest

from inferwatch.demo import expectations as ex
from inferwatch.demo.fleet import CONTROL_MODEL, NEW_DEVICE
from tests.e2e.conftest import FleetRun

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_fleet_end_to_end(fleet_run: FleetRun) -> None:
    # the run itself (stack, replay, waits) is the fixture's: the browser test shares it
    run = fleet_run
    rep, firing, res, api_alerts = run.report, run.firing, run.investigation, run.api_alerts
    metrics, final_counts, counts = run.metrics_text, run.final_counts, run.counts
    cli_sql, cli_alerts = run.cli_sql, run.cli_alerts
    assert all(s["failed"] == 0 and s["dropped"] == 0 for s in rep.sdk_stats.values()), rep.sdk_stats
    verdicts = {v.expectation.incident: v for v in ex.judge_all(firing)}

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
    assert run.inbox.bad_signatures == 0

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
