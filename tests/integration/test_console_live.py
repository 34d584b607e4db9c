"""The console's live updates: a new window or an alert the alerter starts firing changes what the
page's poll compares (``stamp``) and shows at the next poll. On its own embedded store (one chDB
path per process at a time: the history's module keeps its store open)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from inferwatch.api.app import create_app
from inferwatch.config import Settings

pytestmark = pytest.mark.integration
TOKEN = "console-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_new_windows_and_alerts_move_the_live_stamp(tmp_path: Path) -> None:
    """What the page's poll compares: a new window, or an alert changing state, changes the answer."""
    from inferwatch.store import open_store

    s = Settings(data_dir=tmp_path, api_token=TOKEN, kafka_bootstrap="127.0.0.1:1")
    with open_store(s) as store:
        store.migrate()
        c = TestClient(create_app(store, settings=s, metrics=False))
        t0 = 1_796_083_200_000

        def window(i: int, psi: float) -> None:
            start = t0 + i * 60_000
            store.execute(
                "INSERT INTO metrics (event_id, ts, model, model_version, window_start, window_end, window_s, count, "
                "late_events, metrics, reference, findings_json, kafka_topic, kafka_partition, kafka_offset) VALUES "
                f"('w{i}', fromUnixTimestamp64Milli({start + 60_000}), 'live-model', '1', fromUnixTimestamp64Milli({start}), "
                f"fromUnixTimestamp64Milli({start + 60_000}), 60, 100, 0, map('input.x.psi', {psi}, 'error_rate', 0.01), "
                f"map('error_rate', 0.01), '[]', 'inferwatch.metrics', 0, {i})")

        window(0, 0.01)
        first = c.get("/v1/console/models/live-model", headers=AUTH, params={"metric": "input.x.psi"}).json()
        fleet = c.get("/v1/console/fleet", headers=AUTH).json()
        window(1, 0.5)
        second = c.get("/v1/console/models/live-model", headers=AUTH, params={"metric": "input.x.psi"}).json()
        assert second["stamp"] != first["stamp"] and len(second["series"]["t"]) == len(first["series"]["t"]) + 1
        assert second["heatmap"]["psi"] == [[0.01, 0.5]]
        assert c.get("/v1/console/fleet", headers=AUTH).json()["stamp"] != fleet["stamp"]
        # an alert the alerter starts firing shows on the fleet page at the next poll
        from inferwatch.alerter.lifecycle.state import AlertStore, state_path
        from inferwatch.alerter.lifecycle.transitions import AlertRecord

        labels = {"alertname": "input_drift", "model": "live-model", "model_version": "1", "metric": "input.x.psi",
                  "severity": "warning"}
        rec = AlertRecord(fingerprint="00ff00ff00ff00ff", rule="input_drift", state="firing", labels=labels,
                          severity="warning", active_since_ms=t0 + 60_000, starts_at_ms=t0 + 60_000, value=0.5,
                          model="live-model", model_version="1")
        alerts = AlertStore(state_path(tmp_path))
        try:
            alerts.save_evaluations([rec], [], [], {})
        finally:
            alerts.close()
        now = c.get("/v1/console/fleet", headers=AUTH).json()
        assert [a["fingerprint"] for a in now["incidents"]] == ["00ff00ff00ff00ff"]
        page = c.get("/v1/console/incidents/00ff00ff00ff00ff", headers=AUTH).json()
        assert page["state"] == "firing" and page["since_ms"] == t0 + 60_000 and page["notifications"] == []
