"""The demo's pure parts: the fleet is deterministic and shaped as documented; notifications are
parsed and de-duplicated; incidents are judged by model, rule and the first segment named."""

from __future__ import annotations

import orjson

from inferwatch.alerter.notification.webhook_receiver import Received
from inferwatch.demo import expectations as ex
from inferwatch.demo.fleet import CONTROL_MODEL, NEW_DEVICE, FleetConfig, count_events, generate
from inferwatch.demo.notifications import Inbox, SeenAlert, parse

CFG = FleetConfig(start_ms=1_700_000_000_000, duration_s=240, incident_at_s=120, rate_per_min=300, label_share=1.0)


def test_fleet_is_deterministic_and_counted() -> None:
    a = [(e.kind, e.ts_ms, e.model, e.prediction_id) for e in generate(CFG)]
    b = [(e.kind, e.ts_ms, e.model, e.prediction_id) for e in generate(CFG)]
    assert a == b
    assert len(a) == count_events(CFG)
    # feedback never precedes its prediction
    seen: set[str] = set()
    for kind, _, _, pid in a:
        if kind == "prediction":
            seen.add(pid)
        else:
            assert pid in seen


def test_new_device_only_after_the_incident() -> None:
    devices_before, devices_after = set(), set()
    for e in generate(CFG):
        if e.model == "photo-verifier" and e.kind == "prediction":
            t_s = (e.ts_ms - CFG.start_ms) / 1000
            (devices_after if t_s >= CFG.incident_at_s else devices_before).add(e.args["segment"]["device"])
    assert NEW_DEVICE not in devices_before and NEW_DEVICE in devices_after


def test_control_is_stationary() -> None:
    halves: list[list[float]] = [[], []]
    for e in generate(CFG):
        if e.model == CONTROL_MODEL and e.kind == "prediction":
            halves[int((e.ts_ms - CFG.start_ms) / 1000 >= CFG.incident_at_s)].append(e.args["latency_ms"])
    means = [sum(h) / len(h) for h in halves]
    assert abs(means[0] - means[1]) < 1.0


def _received(alerts: list[dict], ok: bool | None = True) -> Received:  # type: ignore[type-arg]
    body = {"schema_version": "alert.v1", "status": "firing", "alerts": alerts}
    return Received("/hook", {}, orjson.dumps(body), 0.0, 200, ok)


def _alert(fp: str, rule: str, model: str, segment: str | None = None, summary: str = "", status: str = "firing") -> dict:  # type: ignore[type-arg]
    return {"fingerprint": fp, "rule": rule, "status": status, "severity": "warning", "labels": {"alertname": rule},
            "annotations": {"summary": summary}, "starts_at": 1, "model": model, "model_version": "1",
            "segment": segment}


def test_inbox_keeps_each_alert_state_once() -> None:
    inbox = Inbox()
    a = _alert("f1", "accuracy_drop", "photo-verifier", "device=nova-x")
    assert len(inbox.add(_received([a]))) == 1
    assert inbox.add(_received([a])) == []  # the group's next notification repeats it
    assert len(inbox.add(_received([{**a, "status": "resolved"}]))) == 1
    assert inbox.add(_received([a], ok=False)) == [] and inbox.bad_signatures == 1
    assert [x.status for x in inbox.alerts] == ["firing", "resolved"]


def test_named_segment_from_summary_when_the_alert_is_for_the_whole_version() -> None:
    [a] = parse(_received([_alert("f", "input_drift", "m", None, "m@1 input drift = 2.1, mostly in segment device=nova-x")]))
    assert a.named_segment == "device=nova-x"
    [b] = parse(_received([_alert("g", "error_rate_high", "m", None, "m@1 error rate 8%")]))
    assert b.named_segment is None


def _seen(rule: str, model: str, segment: str | None, version: str = "1") -> SeenAlert:
    return SeenAlert("fp", "firing", rule, "critical", model, version, segment, "", 0, True)


def test_judge() -> None:
    cam = ex.EXPECTED[0]
    assert ex.judge(cam, [_seen("accuracy_drop", "photo-verifier", "device=nova-x")]).caught
    wrong = ex.judge(cam, [_seen("accuracy_drop", "photo-verifier", "region=eu"),
                           _seen("accuracy_drop", "photo-verifier", "device=nova-x")])
    assert not wrong.caught and wrong.first_segment == "region=eu"
    assert not ex.judge(cam, [_seen("accuracy_drop", "essay-grader", "device=nova-x")]).caught
    deploy = ex.EXPECTED[3]
    assert not ex.judge(deploy, [_seen("error_rate_high", "checkout-ranker", None, "2.0")]).caught
    assert ex.judge(deploy, [_seen("error_rate_high", "checkout-ranker", None, "2.1")]).caught
    assert ex.control_alerts([_seen("x", CONTROL_MODEL, None)])
