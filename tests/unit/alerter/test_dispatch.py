from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import orjson

from inferwatch.alerter.lifecycle.fingerprint import fingerprint
from inferwatch.alerter.lifecycle.state import AlertStore
from inferwatch.alerter.lifecycle.transitions import AlertRecord
from inferwatch.alerter.notification.payloads import alertmanager_v4, notification, slack
from inferwatch.alerter.notification.signing import sign, verify
from inferwatch.alerter.route.dispatch import Dispatcher
from inferwatch.alerter.route.inhibit import InhibitRule
from inferwatch.alerter.route.routing import compile_route, match_routes, parse_config
from inferwatch.alerter.silence.silences import new_silence
from inferwatch.clock import now_ms

CFG = {
    "route": {"receiver": "team", "group_by": ["model"], "group_wait": "10s", "group_interval": "1m",
              "repeat_interval": "1h",
              "routes": [{"matchers": ['severity="critical"'], "receiver": "oncall", "continue": True},
                         {"matchers": ['model=~"chat-.*"'], "receiver": "llm"}]},
    "receivers": [{"name": "team", "url": "http://127.0.0.1:1/a", "signing": "none"},
                  {"name": "oncall", "url": "http://127.0.0.1:1/b", "signing": "none"},
                  {"name": "llm", "url": "http://127.0.0.1:1/c", "send_resolved": False, "signing": "none"}],
    "inhibit_rules": [{"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'],
                       "equal": ["model"]}],
}


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def alert(rule: str, model: str = "m", severity: str = "warning", state: str = "firing") -> AlertRecord:
    labels = {"alertname": rule, "model": model, "severity": severity}
    return AlertRecord(fingerprint(labels), rule, state, labels, severity=severity, starts_at_ms=1)  # type: ignore[arg-type]


def make(tmp_path: Path, clock: Clock) -> Dispatcher:
    cfg = parse_config(CFG)
    return Dispatcher(compile_route(cfg.route), {r.name: r for r in cfg.receivers},
                      [InhibitRule.from_config(c) for c in cfg.inhibit_rules], AlertStore(tmp_path / "s.sqlite"), clock)


def test_routing_with_continue_and_inheritance() -> None:
    root = compile_route(parse_config(CFG).route)
    assert [r.receiver for r in match_routes(root, {"severity": "critical", "model": "chat-1"})] == ["oncall", "llm"]
    assert [r.receiver for r in match_routes(root, {"severity": "warning", "model": "x"})] == ["team"]
    assert match_routes(root, {"model": "chat-1"})[0].group_wait_s == 10.0


def test_group_wait_dedup_repeat_and_resolved(tmp_path: Path) -> None:
    clock = Clock()
    d = make(tmp_path, clock)
    a, b = alert("a"), alert("b")
    d.insert(a)
    d.insert(b)
    assert d.flush_due(list) == []  # group_wait
    clock.t += 10
    items = d.flush_due(list)
    assert len(items) == 1 and items[0].receiver == "team"
    assert {x.fingerprint for x in notification("team", "k", {}, [a, b], "x", 1).alerts} == {a.fingerprint, b.fingerprint}
    clock.t += 60
    assert d.flush_due(list) == []  # nothing new, repeat interval not reached
    clock.t += 3600
    again = d.flush_due(list)
    assert len(again) == 1 and again[0].idempotency_key != items[0].idempotency_key  # a repeat is a new notification
    d.insert(replace(a, state="resolved", ends_at_ms=2))
    clock.t += 60
    res = d.flush_due(list)
    body = orjson.loads(res[0].body)
    assert [x["status"] for x in body["alerts"] if x["fingerprint"] == a.fingerprint] == ["resolved"]


def test_restart_does_not_resend(tmp_path: Path) -> None:
    clock = Clock()
    d = make(tmp_path, clock)
    d.insert(alert("a"))
    clock.t += 10
    assert len(d.flush_due(list)) == 1
    d2 = make(tmp_path, clock)  # same store: nflog remembers
    d2.insert(alert("a"))
    clock.t += 10
    assert d2.flush_due(list) == []
    assert len(d2.store.pending_outbox()) == 1  # the first one, still to deliver


def test_silence_and_inhibition_mute(tmp_path: Path) -> None:
    clock = Clock()
    clock.t = now_ms() / 1000
    d = make(tmp_path, clock)
    crit, warn = alert("down", severity="critical"), alert("slow")
    d.store.add_silence(new_silence(['alertname="down"'], now_ms() + 60_000, "me"))
    d.invalidate_silences()
    for x in (crit, warn):
        d.insert(x)
    clock.t += 10
    items = d.flush_due(lambda: [crit.labels])
    # the critical alert is silenced, and (still firing) it inhibits the warning with equal model
    assert items == []


def test_signature_roundtrip_and_payload_formats() -> None:
    body = b'{"x":1}'
    h = sign("s3cret", body)
    assert verify("s3cret", h, body)
    assert not verify("other", h, body)
    assert not verify("s3cret", h, body + b" ")
    assert not verify("s3cret", sign("s3cret", body, timestamp=1), body)  # stale
    n = notification("team", '{}:{model="m"}', {"model": "m"}, [alert("a"), alert("b", state="resolved")], "k", 1)
    am = alertmanager_v4(n)
    assert am["version"] == "4" and am["commonLabels"] == {"model": "m", "severity": "warning"}
    assert {x["endsAt"] for x in am["alerts"] if x["status"] == "firing"} == {"0001-01-01T00:00:00Z"}
    assert slack(n)["text"].startswith("[FIRING:1]")
