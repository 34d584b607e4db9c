"""The camera incident, replayed through the engine (default rules) and the dispatcher (fake clock).

A new device ``nova-x`` doubles image sizes: three inputs drift in every segment holding its traffic
(whole version, the device, every region, the app version: 18 findings) and, once labels arrive
a little later, accuracy drops in ``device=nova-x``. One cause: one notification.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from inferwatch.alerter.evaluation.rule_engine import Engine
from inferwatch.alerter.evaluation.rules import default_rules_path, load_rules
from inferwatch.alerter.lifecycle.state import AlertStore
from inferwatch.alerter.lifecycle.transitions import AlertRecord
from inferwatch.alerter.notification.payloads import alertmanager_v4, notification, slack
from inferwatch.alerter.route.dispatch import Dispatcher
from inferwatch.alerter.route.incidents import INCIDENT_ANNOTATION, feature_of, summarize
from inferwatch.alerter.route.routing import compile_route, parse_config
from inferwatch.contract.events import AlertV1, MetricSnapshotV1
from tests.unit.alerter.helpers import snap

SEGMENTS: list[tuple[str, str] | None] = [None, ("device", "nova-x"), ("region", "eu"), ("region", "us"),
                                          ("region", "apac"), ("app_version", "8.1")]
FEATURES = ("image_width", "image_height", "device")


def drift(i: int, seg: tuple[str, str] | None) -> MetricSnapshotV1:
    # the new device's own segment drifts most; every other segment holds a third of its traffic
    psi = 4.0 if seg == ("device", "nova-x") else 0.9
    return snap(i, seg=seg, metrics={f"input.{f}.psi": psi for f in FEATURES})


def labelled(i: int, seg: tuple[str, str] | None) -> MetricSnapshotV1:
    acc = 0.80 if seg == ("device", "nova-x") else 0.93
    s = snap(i, seg=seg, metrics={"perf.accuracy": acc}, reference={"perf.accuracy": 0.93})
    return s.model_copy(update={"event_id": f"{s.event_id}-labels"})


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def replay(tmp_path: Path, route: dict[str, Any]) -> list[AlertV1]:
    """Windows of 60 s every 5 s of wall time (a sped-up replay, like the demo); the labelled
    snapshots of a window come 3 s after its inputs (labels wait). Returns every notification."""
    clock = Clock()
    cfg = parse_config({"route": {"receiver": "team", **route},
                        "receivers": [{"name": "team", "url": "http://127.0.0.1:1/", "signing": "none"}]})
    eng = Engine(AlertStore(tmp_path / "engine.sqlite"), load_rules(default_rules_path()),
                 clock=lambda: int(clock.t * 1000))
    d = Dispatcher(compile_route(cfg.route), {r.name: r for r in cfg.receivers}, [],
                   AlertStore(tmp_path / "dispatch.sqlite"), clock)
    sent = []

    def feed(snaps: list[MetricSnapshotV1], wall_s: float) -> None:
        while clock.t < wall_s:
            clock.t = min(wall_s, clock.t + 1.0)
            sent.extend(d.flush_due(eng.firing_labels))
        for rec in eng.process(snaps):
            d.insert(rec)
        sent.extend(d.flush_due(eng.firing_labels))

    t0 = clock.t
    for i in range(4):
        feed([drift(i, seg) for seg in SEGMENTS], t0 + 5 * i)
        feed([labelled(i, seg) for seg in SEGMENTS], t0 + 5 * i + 3)
    feed([], clock.t + 120)  # every timer runs out
    return [AlertV1.model_validate_json(x.body) for x in sent]


def firing_fps(notes: list[AlertV1]) -> set[str]:
    return {a.fingerprint for n in notes for a in n.alerts if a.status == "firing"}


def test_camera_before_one_notification_per_rule_and_segment(tmp_path: Path) -> None:
    # what a config grouping by rule and segment (or by rule, with a short wait) sent: a storm
    notes = replay(tmp_path, {"group_by": ["alertname", "model", "segment"], "group_wait": "1s",
                              "group_interval": "5s"})
    assert len(firing_fps(notes)) == 19  # 18 drift findings and the accuracy drop
    assert len(notes) == 7


def test_camera_is_one_incident_notification_by_default(tmp_path: Path) -> None:
    notes = replay(tmp_path, {})  # the default route: group_by [model, model_version], group_wait 30s
    assert len(notes) == 1, [n.group_labels for n in notes]
    n = notes[0]
    assert n.group_labels == {"model": "photo-verifier", "model_version": "1"}
    assert len(n.alerts) == 19 and {a.status for a in n.alerts} == {"firing"}
    text = n.alerts[0].annotations[INCIDENT_ANNOTATION]
    assert not any(INCIDENT_ANNOTATION in a.annotations for a in n.alerts[1:])  # once per notification
    assert "in segment device=nova-x" in text
    assert "features: device, image_height, image_width" in text
    assert "perf.accuracy" in text and "input.image_width.psi" in text
    # the evidence starts with the cause segment's critical finding
    assert "evidence: accuracy_drop perf.accuracy = 0.8 (device=nova-x)" in text
    # the same text reaches Alertmanager receivers (commonAnnotations) and Slack
    assert alertmanager_v4(n)["commonAnnotations"][INCIDENT_ANNOTATION] == text
    assert text in slack(n)["text"]


def test_incident_segment_ties_go_to_the_segment_others_name() -> None:
    def rec(fp: str, seg: str | None, summary: str, value: float) -> AlertRecord:
        labels = {"alertname": "input_drift", "model": "m", "model_version": "1", "metric": "input.x.psi"}
        if seg:
            labels["segment"] = seg
        return AlertRecord(fp, "input_drift", "firing", labels, annotations={"summary": summary}, value=value,
                           model="m", model_version="1", segment=seg, starts_at_ms=1)

    n = notification("r", "k", {}, [rec("a", "region=eu", "x", 5.0), rec("b", "device=d1", "x", 0.3),
                                     rec("c", None, "drift, mostly in segment device=d1", 0.3)], "key", 1)
    inc = summarize(n.alerts)
    assert inc.segment == "device=d1" and inc.segments == ("device=d1", "region=eu")
    assert inc.features == ("x",) and inc.firing == 3


def test_incident_text_is_bounded_and_hostile_values_stay_text() -> None:
    def rec(i: int) -> AlertRecord:
        labels = {"alertname": "input_drift", "model": "m", "metric": f"input.f{i}<script>.psi",
                  "segment": f"k=<b>{i}</b>"}
        return AlertRecord(f"fp{i}", "input_drift", "firing", labels, value=float(i), segment=labels["segment"],
                           starts_at_ms=1)

    n = notification("r", "k", {}, [rec(i) for i in range(500)], "key", 1)
    text = n.alerts[0].annotations[INCIDENT_ANNOTATION]
    assert len(text) <= 4000 and "and 492 more" in text and "… 492 more" in text
    assert orjson.loads(n.model_dump_json())["alerts"][0]["annotations"][INCIDENT_ANNOTATION] == text
    # the text is added once, not once per alert: the body grows by about its length only
    plain = notification("r", "k", {}, [rec(i) for i in range(500)], "key", 1).model_copy(
        update={"alerts": [n.alerts[0].model_copy(update={"annotations": {}}), *n.alerts[1:]]})
    assert len(n.model_dump_json()) - len(plain.model_dump_json()) < len(text) + 100
    assert alertmanager_v4(n)["commonAnnotations"] == {INCIDENT_ANNOTATION: text}


def test_feature_of() -> None:
    assert feature_of("input.image_width.psi") == "image_width"
    assert feature_of("input.a.b.psi") == "a.b"
    assert feature_of("perf.accuracy") is None and feature_of("input.x") is None


def test_default_group_by_and_alertmanagers_own() -> None:
    def root(route: dict[str, Any]) -> tuple[str, ...]:
        cfg = parse_config({"route": {"receiver": "r", **route},
                            "receivers": [{"name": "r", "url": "http://127.0.0.1:1/", "signing": "none"}]})
        return compile_route(cfg.route).group_by

    assert root({}) == ("model", "model_version")
    assert root({"group_by": []}) == ()  # written out: one group for everything, as in Alertmanager
    assert root({"group_by": ["alertname"]}) == ("alertname",)
