"""The demo prints a notification's incident first: read from the alert.v1 body, never trusted."""

from __future__ import annotations

import orjson

from inferwatch.alerter.lifecycle.transitions import AlertRecord
from inferwatch.alerter.notification.payloads import notification
from inferwatch.alerter.notification.webhook_receiver import Received
from inferwatch.demo.notifications import incident_of


def _rec(body: bytes) -> Received:
    return Received("/", {}, body, 0.0, 200, True)


def test_incident_of_a_firing_notification() -> None:
    labels = {"alertname": "input_drift", "model": "m", "metric": "input.w.psi", "segment": "device=nova-x"}
    n = notification("r", "k", {}, [AlertRecord("fp", "input_drift", "firing", labels, segment="device=nova-x",
                                                 value=3.0, model="m", model_version="1", starts_at_ms=1)], "key", 1)
    text = incident_of(_rec(n.model_dump_json().encode()))
    assert text is not None and "in segment device=nova-x" in text and "features: w" in text


def test_incident_of_hostile_or_resolved_bodies_is_none() -> None:
    assert incident_of(_rec(b"{not json")) is None
    assert incident_of(_rec(b"[1, 2]")) is None
    assert incident_of(_rec(orjson.dumps({"status": "firing", "alerts": [1, {"annotations": None}]}))) is None
    assert incident_of(_rec(orjson.dumps({"status": "resolved",
                                          "alerts": [{"annotations": {"incident": "x"}}]}))) is None
