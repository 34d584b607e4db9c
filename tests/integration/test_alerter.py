"""The alerter against the real broker and a real local HTTP receiver."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from inferwatch.alerter.notification.webhook_receiver import LocalReceiver, Received
from inferwatch.alerter.service import AlerterService
from inferwatch.config import Settings
from tests.support.alerter import config, produce, snapshot, write_rules
from tests.support.kafka import consume_all
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

@pytest.fixture
def rules(tmp_path: Path) -> Path:
    return write_rules(tmp_path)


def start(settings: Settings, rules: Path, cfg: Any) -> AlerterService:
    return AlerterService(settings, rules, cfg).start_in_thread()


@pytest.fixture
def services() -> Iterator[list[AlerterService]]:
    running: list[AlerterService] = []
    yield running
    for s in running:
        s.join()


def bodies(reqs: list[Received]) -> list[dict[str, Any]]:
    return [orjson.loads(r.body) for r in reqs]


def test_signed_retried_once_delivered_and_recorded(settings: Settings, rules: Path, services: list) -> None:
    answers = iter([500, 500, 500])
    with LocalReceiver(secret="s3cret", respond=lambda r: (next(answers, 200), {})) as rcv:
        services.append(start(settings, rules, config([{"name": "hook", "url": rcv.url, "secret": "s3cret"}])))
        produce(settings, [("m", snapshot("m", 0, 0.5))])
        assert rcv.wait_for(lambda rs: any(r.status == 200 for r in rs), 60)
        time.sleep(1.0)  # a duplicate would arrive now
        reqs = list(rcv.requests)
    assert [r.status for r in reqs] == [500, 500, 500, 200]
    assert all(r.signature_ok for r in reqs)
    assert len({r.idempotency_key for r in reqs}) == 1
    body = bodies(reqs)[-1]
    assert body["schema_version"] == "alert.v1" and body["status"] == "firing"
    assert body["alerts"][0]["annotations"]["summary"] == "m error rate 0.5"
    records = [orjson.loads(m.value()) for m in consume_all(settings.kafka_bootstrap, settings.alerts_topic, 4, 30)]
    assert [r["delivery"]["outcome"] for r in records] == ["retrying", "retrying", "retrying", "delivered"]
    assert [r["delivery"]["attempt"] for r in records] == [1, 2, 3, 4]


def test_silence_resolve_and_bad_snapshots(settings: Settings, rules: Path, services: list) -> None:
    port = free_port()
    with LocalReceiver() as rcv:
        services.append(start(settings, rules, config([{"name": "hook", "url": rcv.url, "format": "alertmanager", "signing": "none"}],
                                                      http_port=port)))
        api = f"http://127.0.0.1:{port}/v1"
        for _ in range(100):  # the HTTP server thread starts alongside the consumer
            try:
                httpx.get(f"{api}/silences", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        r = httpx.post(f"{api}/silences", json={"matchers": ['model="quiet"'], "duration": "1h", "created_by": "test"})
        assert r.status_code == 201, r.text
        produce(settings, [("x", b"not json"), ("x", b'{"schema_version": "metric_snapshot.v1"}'),
                           ("quiet", snapshot("quiet", 0, 0.9)), ("loud", snapshot("loud", 0, 0.9))])
        assert rcv.wait_for(lambda rs: len(rs) >= 1, 60)
        produce(settings, [("loud", snapshot("loud", 1, 0.0))])
        assert rcv.wait_for(lambda rs: any(b["status"] == "resolved" for b in bodies(rs)), 60)
        time.sleep(1.5)  # past group_interval: a silenced notification would be out by now
        alerts = httpx.get(f"{api}/alerts").json()["alerts"]
        reqs = list(rcv.requests)
    got = bodies(reqs)
    assert [b["status"] for b in got] == ["firing", "resolved"]
    assert all(b["version"] == "4" and b["groupLabels"] == {"model": "loud"} for b in got)
    assert [a["model"] for a in alerts] == ["quiet"] and alerts[0]["silenced_by"]
    dead = [orjson.loads(m.value()) for m in consume_all(settings.kafka_bootstrap, settings.deadletter_topic, 2, 30)]
    assert len(dead) == 2 and {d["stage"] for d in dead} == {"alerter"}
    assert all(d["reason"] for d in dead)


def test_restart_in_the_middle_sends_no_duplicate(settings: Settings, rules: Path, services: list) -> None:
    healthy = threading.Event()
    with LocalReceiver(respond=lambda r: (200, {}) if healthy.is_set() else (503, {"Retry-After": "0"})) as rcv:
        cfg = config([{"name": "hook", "url": rcv.url, "signing": "none"}])
        first = start(settings, rules, cfg)
        produce(settings, [("a", snapshot("a", 0, 0.5))])
        assert rcv.wait_for(lambda rs: len(rs) >= 2, 60)  # failing, retrying
        first.join()
        healthy.set()
        services.append(start(settings, rules, cfg))  # same data dir, same consumer group
        assert rcv.wait_for(lambda rs: any(r.status == 200 for r in rs), 60)
        produce(settings, [("b", snapshot("b", 0, 0.5))])  # proves the second run is live
        assert rcv.wait_for(lambda rs: sum(r.status == 200 for r in rs) >= 2, 60)
        time.sleep(1.5)
        reqs = list(rcv.requests)
    ok = [r for r in reqs if r.status == 200]
    assert sorted(b["group_labels"]["model"] for b in bodies(ok)) == ["a", "b"]
    a_keys = {r.idempotency_key for r in reqs if orjson.loads(r.body)["group_labels"]["model"] == "a"}
    assert len(a_keys) == 1  # every attempt, before and after the restart, carried the same key


def test_receiver_down_30s_gets_it_later_and_does_not_block_others(
    settings: Settings, rules: Path, services: list
) -> None:
    port = free_port()
    down = LocalReceiver(port=port)
    with LocalReceiver() as up:
        cfg = config([{"name": "up", "url": up.url, "signing": "none"}, {"name": "down", "url": down.url, "signing": "none"}],
                     routes=[{"matchers": ['model="d"'], "receiver": "down"}])
        services.append(start(settings, rules, cfg))
        produce(settings, [("d", snapshot("d", 0, 0.5)), ("u", snapshot("u", 0, 0.5))])
        assert up.wait_for(lambda rs: len(rs) == 1, 60)  # while "down" refuses connections
        time.sleep(30)
        with down:
            assert down.wait_for(lambda rs: len(rs) >= 1, 60)
            time.sleep(1.0)
            got = bodies(down.requests)
    assert [b["group_labels"]["model"] for b in got] == ["d"]
    assert [b["group_labels"]["model"] for b in bodies(up.requests)] == ["u"]
