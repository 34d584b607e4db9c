"""Two alerters in one consumer group against the real broker: Kafka splits the partitions, the state
moves through the changelog when one is killed, silences are shared (issue #13).

Alerter A is a real ``inferwatch run alerter`` subprocess (so it can be killed with ``kill -9``),
alerter B runs in-process with its own data directory; both serve their HTTP API. Snapshots are
produced to chosen partitions, so each model's state is known to live with A or with B.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from confluent_kafka import Producer

from inferwatch.alerter.lifecycle.state import AlertStore, state_path
from inferwatch.alerter.notification.webhook_receiver import LocalReceiver, Received
from inferwatch.alerter.route.routing import load_config
from inferwatch.alerter.service import AlerterService
from inferwatch.alerter.silence.silences import new_silence
from inferwatch.clock import now_ms
from inferwatch.config import Settings
from inferwatch.infra.kafka_native import free_port
from tests.support.alerter import snapshot
from tests.support.alerter_process import AlerterProcess

pytestmark = pytest.mark.integration

# `for: 2m` in event time: a breach at window 0 is pending; one at window 3 fires it
RULES = """
rules:
  - name: errors
    metric: error_rate
    match: {segments: whole, min_count: 10}
    condition: value > 0.1
    for: 2m
    severity: critical
"""


def _config(path: Path, url: str) -> Path:
    path.write_text(yaml.safe_dump({
        "http": {"port": 0}, "start_from": "earliest", "session_timeout_s": 6,
        "delivery": {"backoff_initial_s": 0.1, "backoff_max_s": 0.5, "timeout_s": 2},
        "route": {"receiver": "hook", "group_by": ["model"], "group_wait": 0, "group_interval": "1s",
                  "repeat_interval": "1h"},
        "receivers": [{"name": "hook", "url": url, "signing": "none"}],
    }))
    return path


def _produce(settings: Settings, part: int, model: str, i: int, error_rate: float) -> None:
    p = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    p.produce(settings.metrics_topic, snapshot(model, i, error_rate), key=model.encode(), partition=part)
    assert p.flush(30) == 0


def _body(r: Received) -> dict[str, Any]:
    return orjson.loads(r.body)  # type: ignore[no-any-return]


def _model(r: Received) -> str:
    return str(_body(r)["group_labels"]["model"])


def _until(pred: Any, timeout_s: float, what: str, why: Any = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{why()}" if why else ""))


def test_two_alerters_split_partitions_take_over_on_kill_and_share_silences(
    settings: Settings, tmp_path: Path
) -> None:
    healthy = threading.Event()  # the receiver refuses (503) until A is gone: A's notification stays pending
    b_port = free_port()
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    b: AlerterService | None = None
    a: AlerterProcess | None = None
    with LocalReceiver(respond=lambda r: (200, {}) if healthy.is_set() else (503, {"Retry-After": "0"})) as rcv:
        cfg = _config(tmp_path / "alerter.yaml", rcv.url)
        try:
            a = AlerterProcess(settings, tmp_path / "a", rules, cfg, tmp_path / "a.log")
            a.wait_healthy()
            _until(lambda: a.partitions() == {0, 1, 2}, 60, "A to hold every partition", a.tail)
            conf_b = load_config(cfg)
            conf_b = conf_b.model_copy(update={"http": conf_b.http.model_copy(update={"port": b_port})})
            b = AlerterService(settings.model_copy(update={"data_dir": tmp_path / "b"}), rules, conf_b)
            b.start_in_thread()
            # Kafka splits the three partitions between the two (range: 2 + 1)
            _until(lambda: b.partitions and a.partitions() and not (b.partitions & a.partitions())
                   and (b.partitions | a.partitions()) == {0, 1, 2}, 60, "the two alerters to split the partitions",
                   lambda: f"A {a.partitions()} B {b.partitions}\n{a.tail()}")
            pa, pb = min(a.partitions()), min(b.partitions)
            b_api = f"http://127.0.0.1:{b_port}/v1"

            # a silence created through A's API is honoured by B
            r = httpx.post(f"{a.api}/silences", json={"matchers": ['model="quiet-b"'], "duration": "1h",
                                                      "created_by": "test", "comment": "pair"}, timeout=15)
            assert r.status_code == 201, r.text
            sid = r.json()["id"]
            _until(lambda: sid in {s["id"] for s in httpx.get(f"{b_api}/silences", timeout=5).json()["silences"]},
                   30, "B to read the silence from the topic")
            # one written into B's data directory by another process (as `inferwatch silence add` does)
            # is published by B and reaches A
            local = new_silence(['model="nobody"'], now_ms() + 3_600_000, "cli")
            AlertStore(state_path(tmp_path / "b")).add_silence(local)
            _until(lambda: local.id in {s["id"] for s in httpx.get(f"{a.api}/silences", timeout=5).json()["silences"]},
                   30, "A to read the silence written into B's data directory")

            # A: one alert firing (its notification refused, so pending in A's outbox), one pending
            _produce(settings, pa, "fire-a", 0, 0.5)
            _produce(settings, pa, "fire-a", 3, 0.5)
            _produce(settings, pa, "pend-a", 0, 0.5)
            # B: a firing alert under the silence
            _produce(settings, pb, "quiet-b", 0, 0.5)
            _produce(settings, pb, "quiet-b", 3, 0.5)
            assert rcv.wait_for(lambda rs: sum(_model(x) == "fire-a" for x in rs) >= 2, 60), a.tail()

            def quiet_b() -> list[dict[str, Any]]:
                return [x for x in httpx.get(f"{b_api}/alerts", timeout=5).json()["alerts"] if x["model"] == "quiet-b"]

            _until(lambda: [x["state"] for x in quiet_b()] == ["firing"], 30, "B to fire quiet-b")
            assert quiet_b()[0]["silenced_by"] == [sid]
            a_alerts = httpx.get(f"{a.api}/alerts", timeout=5).json()["alerts"]
            assert {x["model"]: x["state"] for x in a_alerts} == {"fire-a": "firing", "pend-a": "pending"}

            # kill -9 A while fire-a is firing (undelivered) and pend-a pending; B takes A's partitions over
            a.kill()
            healthy.set()
            _until(lambda: b.partitions == {0, 1, 2}, 60, "B to take A's partitions over",
                   lambda: f"B {b.partitions} {b.health()}")
            assert rcv.wait_for(lambda rs: any(x.status == 200 and _model(x) == "fire-a" for x in rs), 30)

            # pend-a's pending state moved with the partition: the next breach 3 windows later fires it
            # at once (a fresh start would have made it pending again, waiting another 2 minutes)
            _produce(settings, pa, "pend-a", 3, 0.5)
            _produce(settings, pa, "fire-a", 4, 0.0)  # fire-a recovers: resolved once
            assert rcv.wait_for(lambda rs: any(x.status == 200 and _model(x) == "pend-a" for x in rs)
                                and any(x.status == 200 and _body(x)["status"] == "resolved" for x in rs), 30)
            time.sleep(2.5)  # past group_interval: a duplicate would be out by now
            reqs = list(rcv.requests)
            alerts_b = {x["model"]: x for x in httpx.get(f"{b_api}/alerts?state=firing&state=resolved",
                                                         timeout=5).json()["alerts"]}
        finally:
            if a is not None:
                a.kill()
            if b is not None:
                b.join()

    ok = [x for x in reqs if x.status == 200]
    # every notification delivered exactly once per idempotency key
    assert Counter(x.idempotency_key for x in ok).most_common(1)[0][1] == 1
    fire = [x for x in reqs if _model(x) == "fire-a"]
    fire_firing = [x for x in fire if _body(x)["status"] == "firing"]
    # A's attempts (refused) and B's delivery carry the same key: B sent A's outbox entry, not a new decision
    assert len({x.idempotency_key for x in fire_firing}) == 1
    assert sum(x.status == 200 for x in fire_firing) == 1
    assert [_body(x)["status"] for x in fire if x.status == 200] == ["firing", "resolved"]
    assert [_body(x)["status"] for x in ok if _model(x) == "pend-a"] == ["firing"]
    assert alerts_b["pend-a"]["active_since_ms"] == orjson.loads(snapshot("pend-a", 0, 0.5))["window_end"]
    # the silence from A's API kept B's alert quiet
    assert not [x for x in reqs if _model(x) == "quiet-b"]
    assert alerts_b["quiet-b"]["silenced_by"] == [sid]
