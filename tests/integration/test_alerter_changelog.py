"""The alerter's state changelog against the real broker: a write Kafka refuses holds the notification
and the commit until Kafka takes it (issue #13)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from inferwatch.alerter.errors import ConfigError
from inferwatch.alerter.notification.webhook_receiver import LocalReceiver
from inferwatch.alerter.service import AlerterService
from inferwatch.config import Settings
from inferwatch.contract.topics import ALERTER_STATE
from tests.support.alerter import config, produce, snapshot, write_rules

pytestmark = pytest.mark.integration


def _set_max_message_bytes(settings: Settings, value: str | None) -> None:
    """Set (or reset) the changelog's max.message.bytes and wait until the broker applies it (a probe
    of 300 bytes is refused after a SET, accepted after a reset; the alerter skips it on a restore)."""
    topic = settings.topic(ALERTER_STATE)
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    op = AlterConfigOpType.SET if value is not None else AlterConfigOpType.DELETE
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("max.message.bytes", value or "", incremental_operation=op)])
    admin.incremental_alter_configs([res])[res].result(timeout=30)
    p = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    out: list[Any] = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            out.clear()
            p.produce(topic, b"x" * 300, key=b"probe", partition=0, on_delivery=lambda e, _m: out.append(e))
            p.flush(10)
            if out and (out[0] is not None) == (value is not None):
                return
            time.sleep(0.2)
    finally:
        p.flush(5)
    raise AssertionError("the broker did not apply max.message.bytes in time")


def _committed(settings: Settings, group: str) -> int:
    c = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group})
    try:
        parts = c.list_topics(settings.metrics_topic, timeout=10).topics[settings.metrics_topic].partitions
        got = c.committed([TopicPartition(settings.metrics_topic, p) for p in parts], timeout=10)
        return sum(max(tp.offset, 0) for tp in got)
    finally:
        c.close()


def _until(cond: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.2)
    return bool(cond())


def test_a_refused_changelog_write_holds_the_notification_and_the_commit(settings: Settings, tmp_path: Path) -> None:
    rules = write_rules(tmp_path)
    _set_max_message_bytes(settings, "300")  # an alert's row is larger: Kafka refuses it
    with LocalReceiver() as rcv:
        svc = AlerterService(settings, rules, config([{"name": "hook", "url": rcv.url, "signing": "none"}]))
        svc.start_in_thread()
        try:
            produce(settings, [("m", snapshot("m", 0, 0.5))])
            assert _until(lambda: svc.stats.snapshots == 1 and not svc.health()["ok"], 30), svc.health()
            h = svc.health()
            assert h["changelog"]["failures_total"] >= 1
            assert "alerter-state" in (h["changelog"]["error"] or "")
            time.sleep(2.0)  # several retries later: still held
            assert rcv.requests == []  # the decided notification waits for the changelog
            assert _committed(settings, svc.group_id) == 0  # and so do the input offsets
            assert svc.metrics_text().count("alerter_changelog_failures_total") >= 1

            _set_max_message_bytes(settings, None)  # Kafka takes the rows again
            assert rcv.wait_for(lambda rs: len(rs) == 1, 30)
            assert _until(lambda: svc.health()["ok"] and _committed(settings, svc.group_id) == 1, 30), svc.health()
            time.sleep(1.5)
            assert len(rcv.requests) == 1  # sent once, after the changelog had it
        finally:
            svc.join()


def test_a_second_alerter_on_the_same_data_directory_is_refused(settings: Settings, tmp_path: Path) -> None:
    # each alerter drops and restores its partitions' rows in its data directory: a second one there
    # would delete the first one's state under it
    rules = write_rules(tmp_path)
    cfg = config([{"name": "hook", "url": "http://127.0.0.1:9/x", "signing": "none"}])
    first = AlerterService(settings, rules, cfg).start_in_thread()
    try:
        with pytest.raises(ConfigError, match="another alerter runs on the data directory .*--data-dir"):
            AlerterService(settings, rules, cfg)
    finally:
        first.join()
    AlerterService(settings, rules, cfg).start_in_thread().join()  # released when the first stopped


def test_run_alerter_creates_its_own_topics(kafka_bootstrap: str, tmp_path: Path) -> None:
    # an alerter upgraded in place finds its state and silences topics without a separate `topics apply`
    from inferwatch.contract.topics import ALERTER_SILENCES
    from inferwatch.kafka.admin import admin_client
    from tests.support.alerter_process import AlerterProcess
    from tests.support.kafka import new_prefix

    s = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=new_prefix())
    cfg = tmp_path / "alerter.yaml"
    cfg.write_text('route: {receiver: hook}\nreceivers: [{name: hook, url: "http://127.0.0.1:9/x", signing: none}]\n')
    a = AlerterProcess(s, tmp_path / "a", write_rules(tmp_path), cfg, tmp_path / "a.log")
    try:
        a.wait_healthy()
        topics = admin_client(s).list_topics(timeout=10).topics
        assert s.topic(ALERTER_STATE) in topics and s.topic(ALERTER_SILENCES) in topics
        assert len(topics[s.topic(ALERTER_STATE)].partitions) == 3
    finally:
        a.stop()
