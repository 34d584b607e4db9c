"""The alerter's dead letters against the real broker: exactly the failing message, and never lost.

- A batch that fails evaluation is re-run one snapshot at a time; each dead letter must carry the
  offset and payload of the message that failed, even when invalid messages sit in the same batch.
- A dead letter Kafka does not accept (record too large for the dead-letter topic, set on the real
  broker) stops the offset commit; the alerter retries, says so on ``/healthz`` and ``/metrics``,
  and once the topic accepts it again every dead letter is written once and the offsets committed.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from inferwatch.alerter.evaluation.rule_engine import Engine
from inferwatch.alerter.lifecycle.state import AlertStore, state_path
from inferwatch.alerter.service import AlerterService
from inferwatch.config import Settings
from tests.support.alerter import RULES, config, snapshot
from tests.support.kafka import consume_all
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


class BuggyEngine(Engine):
    """The real engine, with a bug that only snapshots whose event_id starts with ``boom`` trigger,
    raised in the middle of the batch (after the snapshots before it were evaluated), as an
    evaluation bug would."""

    def process(self, snaps: Any) -> Any:
        def until_the_bug() -> Any:
            for s in snaps:
                if s.event_id.startswith("boom"):
                    raise ZeroDivisionError(f"evaluation bug on {s.event_id}")
                yield s

        return super().process(until_the_bug())


def _snap(event_id: str, model: str, i: int, rate: float) -> bytes:
    d = orjson.loads(snapshot(model, i, rate))
    d["event_id"] = event_id
    return orjson.dumps(d)


def _produce_one_partition(settings: Settings, values: list[bytes]) -> list[tuple[int, int, bytes]]:
    """Produce ``values`` with one key (one partition, in order); returns (partition, offset, value)."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    out: list[tuple[int, int, bytes]] = []

    def done(err: Any, msg: Any) -> None:
        assert err is None, err
        out.append((msg.partition(), msg.offset(), msg.value()))

    for v in values:
        p.produce(settings.metrics_topic, v, key=b"same", on_delivery=done)
    assert p.flush(30) == 0
    return sorted(out, key=lambda x: x[1])


def _committed(settings: Settings, group: str, partition: int) -> int:
    c = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group})
    try:
        return int(c.committed([TopicPartition(settings.metrics_topic, partition)], timeout=10)[0].offset)
    finally:
        c.close()


def _set_max_message_bytes(settings: Settings, value: str | None) -> None:
    """Set (or reset) the dead-letter topic's max.message.bytes, and wait until the broker applies it:
    a probe record of 300 bytes (key ``probe``) is refused after a SET and accepted after a reset."""
    from confluent_kafka import Producer

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    op = AlterConfigOpType.SET if value is not None else AlterConfigOpType.DELETE
    res = ConfigResource(ConfigResource.Type.TOPIC, settings.deadletter_topic, incremental_configs=[
        ConfigEntry("max.message.bytes", value or "", incremental_operation=op)])
    admin.incremental_alter_configs([res])[res].result(timeout=30)
    p = Producer({"bootstrap.servers": settings.kafka_bootstrap, "enable.idempotence": True})
    deadline = time.monotonic() + 30
    out: list[Any] = []
    while time.monotonic() < deadline:
        out.clear()
        p.produce(settings.deadletter_topic, b"x" * 300, key=b"probe", on_delivery=lambda e, _m: out.append(e))
        p.flush(10)
        if (out[0] is not None) == (value is not None):
            p.close()
            return
        time.sleep(0.2)
    p.close()
    raise AssertionError("the broker did not apply max.message.bytes in time")


def _dead_letters(settings: Settings, expected: int, timeout_s: float) -> list[Any]:
    """The dead-letter topic's records (the probes left out)."""
    got = consume_all(settings.kafka_bootstrap, settings.deadletter_topic, expected, timeout_s)
    return [m for m in got if m.key() != b"probe"]


def _until(cond: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.2)
    return bool(cond())


def test_fallback_dead_letters_exactly_the_failing_messages(settings: Settings, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    values = [
        _snap("ok-0", "m", 0, 0.5),                              # valid, fires
        b"{not json",                                            # invalid
        _snap("boom-1", "m", 1, 0.5),                            # valid, fails evaluation
        orjson.dumps({"schema_version": "metric_snapshot.v1"}),  # invalid
        _snap("ok-2", "m", 2, 0.5),                              # valid
        _snap("boom-2", "m", 3, 0.5),                            # valid, fails evaluation
        _snap("ok-3", "m", 4, 0.5),                              # valid
    ]
    produced = _produce_one_partition(settings, values)  # all there before the alerter reads: one batch
    svc = AlerterService(settings, rules, config([{"name": "hook", "url": "http://127.0.0.1:9/x", "secret": "s3cret-key"}]))
    svc.engine = BuggyEngine(svc.store, svc.watcher.rules)
    svc.start_in_thread()
    try:
        dead = consume_all(settings.kafka_bootstrap, settings.deadletter_topic, 4, 60)
        assert _until(lambda: svc.stats.snapshots >= 5, 30)
        time.sleep(1.0)  # an extra (wrong) dead letter would show up now
        dead += consume_all(settings.kafka_bootstrap, settings.deadletter_topic, 5, 2)[len(dead):]
    finally:
        svc.join()
    assert svc.stats.batches == 1, "the test needs the mixed messages in one batch"
    got = sorted((d["source_offset"], base64.b64decode(d["payload_b64"]), d["reason"])
                 for d in (orjson.loads(m.value()) for m in dead))
    want_bad = {1, 2, 3, 5}  # positions in ``values``: invalid ones and the two that fail evaluation
    assert [(o, v) for o, v, _ in got] == [(produced[i][1], values[i]) for i in sorted(want_bad)]
    reasons = {o: r for o, _, r in got}
    # dead-letter ids come from the contract, as at every hop: stage, topic, partition, offset
    from inferwatch.contract.limits import deadletter_id

    ids = {(d := orjson.loads(m.value()))["event_id"]: d for m in dead}
    assert all(i == deadletter_id("alerter", d["source_topic"], d["source_partition"], d["source_offset"])
               for i, d in ids.items()), sorted(ids)
    assert "evaluation failed" in reasons[produced[2][1]] and "boom-1" in reasons[produced[2][1]]
    assert "evaluation failed" in reasons[produced[5][1]] and "boom-2" in reasons[produced[5][1]]
    assert "evaluation failed" not in reasons[produced[1][1]] + reasons[produced[3][1]]
    # The valid snapshots were evaluated (the alert for m is there) and the whole batch committed.
    assert any(a.model == "m" for a in svc.engine.alerts.values())
    assert _committed(settings, svc.group_id, produced[0][0]) == produced[-1][1] + 1


def test_undeliverable_dead_letter_stops_the_commit_and_retries_visibly(settings: Settings, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    _set_max_message_bytes(settings, "64")  # every dead letter is larger: the broker refuses it
    values = [_snap("ok-0", "m", 0, 0.5), b"{broken", b"[]", _snap("ok-1", "m", 1, 0.5)]
    produced = _produce_one_partition(settings, values)
    part = produced[0][0]
    port = free_port()
    svc = AlerterService(settings, rules, config([{"name": "hook", "url": "http://127.0.0.1:9/x",
                                                   "secret": "s3cret-key"}], http_port=port))
    svc.start_in_thread()
    base = f"http://127.0.0.1:{port}"
    try:
        assert _until(lambda: svc.health()["deadletters"]["failures_total"] >= 3, 60), svc.health()
        r = httpx.get(f"{base}/healthz", timeout=5)
        assert r.status_code == 503 and r.json()["deadletters"]["pending"] == 2, r.text
        scraped = httpx.get(f"{base}/metrics", timeout=5).text
        assert int(next(x for x in scraped.splitlines()
                        if x.startswith("inferwatch_alerter_deadletter_failures_total ")).split()[1]) >= 3
        body = svc.health()
        assert body["ok"] is False and body["deadletters"]["ok"] is False
        assert body["deadletters"]["pending"] == 2
        assert "too large" in body["deadletters"]["error"].lower(), body
        line = next(x for x in svc.metrics_text().splitlines()
                    if x.startswith("inferwatch_alerter_deadletter_failures_total "))
        assert int(line.split()[1]) >= 3
        assert _committed(settings, svc.group_id, part) < 0  # nothing committed while a dead letter is unwritten
        before = svc.health()["deadletters"]["failures_total"]
        # it keeps trying (back-off doubling up to 5 s), and nothing gets committed meanwhile
        assert _until(lambda: svc.health()["deadletters"]["failures_total"] > before, 15)
        assert _committed(settings, svc.group_id, part) < 0

        _set_max_message_bytes(settings, None)  # the topic accepts them again
        assert _until(lambda: _committed(settings, svc.group_id, part) == produced[-1][1] + 1, 60)
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        body = svc.health()
        assert body["ok"] is True and body["deadletters"]["pending"] == 0 and body["deadletters"]["error"] is None
    finally:
        svc.join()
    dead = _dead_letters(settings, 100, 5)
    assert sorted(orjson.loads(m.value())["source_offset"] for m in dead) == [produced[1][1], produced[2][1]]
    assert svc.stats.deadlettered == 2


def test_a_dead_letter_too_large_for_kafka_is_cut_not_held_forever(settings: Settings, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    huge = b"{" + b"x" * 900_000  # a valid record, not a valid snapshot; its dead letter in base64 is ~1.2 MB
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": settings.kafka_bootstrap, "message.max.bytes": 2_000_000})
    for v in (huge, _snap("ok-0", "m", 0, 0.5)):
        p.produce(settings.metrics_topic, v, key=b"same")
    assert p.flush(30) == 0
    p.close()
    svc = AlerterService(settings, rules, config([{"name": "hook", "url": "http://127.0.0.1:9/x",
                                                   "secret": "s3cret-key"}]))
    svc.start_in_thread()
    try:
        dead = _dead_letters(settings, 1, 60)
        assert _until(lambda: svc.stats.snapshots >= 1 and svc.health()["ok"], 30), svc.health()
    finally:
        svc.join()
    assert len(dead) == 1
    d = orjson.loads(dead[0].value())
    payload = base64.b64decode(d["payload_b64"])
    assert huge.startswith(payload) and 0 < len(payload) < len(huge)
    assert "truncated" in d["reason"] and str(len(huge)) in d["reason"]
    assert svc.health()["deadletters"]["failures_total"] == 0


def test_a_failed_batch_leaves_no_half_applied_state(settings: Settings, tmp_path: Path) -> None:
    """The engine updates its in-memory states while it goes through a batch and stores them at the end:
    when the batch fails, the re-run one snapshot at a time must start from what is stored, or the
    first pass's transitions (here: ``solo`` starts firing) are neither stored nor notified."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    _produce_one_partition(settings, [_snap("ok-solo", "solo", 0, 0.5), _snap("boom-x", "other", 0, 0.5)])
    svc = AlerterService(settings, rules, config([{"name": "hook", "url": "http://127.0.0.1:9/x",
                                                   "secret": "s3cret-key"}]))
    svc.engine = BuggyEngine(svc.store, svc.watcher.rules)
    svc.start_in_thread()
    try:
        assert _until(lambda: svc.stats.snapshots >= 2 and svc.stats.notifications >= 1, 30), svc.stats
    finally:
        svc.join()
    stored = AlertStore(state_path(settings.data_dir)).load_alerts()
    assert [(a.model, a.state) for a in stored.values()] == [("solo", "firing")]
