"""The sink against the real broker and the embedded store: complete, duplicate-free history."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from inferwatch.config import Settings
from inferwatch.sink import SinkSettings
from inferwatch.store import open_store
from tests.support.sink import running_sink
from tests.support.store import migrated, wait_for_count

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _pred(i: int) -> bytes:
    return orjson.dumps({
        "schema_version": "prediction.v1", "event_id": f"e{i}", "prediction_id": f"p{i}",
        "ts": int(time.time() * 1000), "model": f"m{i % 3}", "model_version": "v1", "latency_ms": 5.0,
        "inputs": {"w": i, "device": "a" if i % 2 else "b"}, "outputs": {"label": "cat" if i % 4 else "dog"},
        "segment": {"device": "a" if i % 2 else "b"},
    })


def _feedback(i: int) -> bytes:
    return orjson.dumps({
        "schema_version": "feedback.v1", "event_id": f"f{i}", "prediction_id": f"p{i}",
        "ts": int(time.time() * 1000), "model": f"m{i % 3}", "label": "cat",
    })


def _produce(s: Settings, topic: str, values: list[bytes]) -> None:
    p = Producer({"bootstrap.servers": s.kafka_bootstrap, "linger.ms": 5})
    for i, v in enumerate(values):
        p.produce(topic, key=f"m{i % 3}".encode(), value=v)
    assert p.flush(30) == 0
    p.close()  # a producer left open reconnects (and logs) when the test broker stops


def test_every_event_lands_once_feedback_joins_and_bad_messages_are_dead_lettered(settings: Settings) -> None:
    n = 2000
    _produce(settings, settings.predictions_topic, [_pred(i) for i in range(n)])
    _produce(settings, settings.feedback_topic, [_feedback(i) for i in range(0, n, 10)])
    bad = [b"{oops", orjson.dumps({"schema_version": "prediction.v1", "event_id": "x"}), b"[]"]
    _produce(settings, settings.predictions_topic, bad)

    with migrated(settings) as store:
        opts = SinkSettings(group_id=f"g-{settings.topic_prefix}", batch_rows=700, batch_ms=200)
        with running_sink(settings, store, opts) as sink:
            assert wait_for_count(store, "SELECT count() FROM deadletter", len(bad)) == len(bad)
            assert wait_for_count(store, "SELECT count() FROM predictions", n) == n
            assert wait_for_count(store, "SELECT count() FROM feedback", n // 10) == n // 10
        ids = store.query("SELECT event_id FROM predictions ORDER BY event_id", max_rows=10 * n).rows
        assert sorted(r[0] for r in ids) == sorted(f"e{i}" for i in range(n))
        labeled = store.query(
            "SELECT countIf(labeled), countIf(correct = 1), countIf(correct = 0) FROM predictions_labeled").rows[0]
        # p0, p10, ... are labeled "cat"; predictions with i % 4 == 0 said "dog" (i in 0, 20, 40 ...).
        assert labeled == (n // 10, n // 20, n // 20)
        dl = store.query("SELECT source_offset, reason, error_path, expected_schema FROM deadletter ORDER BY source_offset").rows
        assert [r[3] for r in dl] == ["prediction.v1"] * 3
        assert "JSON" in dl[0][1] and dl[1][2] is not None
        health = sink.health.snapshot()
        assert health["rows_written"]["predictions"] == n and health["dead_letters"] == 3 and health["ok"]


def test_kill_9_between_insert_and_commit_leaves_no_duplicates(settings: Settings, tmp_path: Path) -> None:
    n = 3000
    _produce(settings, settings.predictions_topic, [_pred(i) for i in range(n)])
    env = os.environ | {
        "INFERWATCH_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "INFERWATCH_TOPIC_PREFIX": settings.topic_prefix,
        "INFERWATCH_DATA_DIR": str(settings.data_dir),
        "INFERWATCH_SINK_GROUP_ID": "g-kill",
        "INFERWATCH_SINK_BATCH_ROWS": "1000",
        "INFERWATCH_SINK_BATCH_MS": "300",
        "INFERWATCH_SINK_SESSION_TIMEOUT_MS": "6000",  # the killed member leaves the group quickly
        "INFERWATCH_API_PORT": "0",
    }
    env.pop("INFERWATCH_CLICKHOUSE_URL", None)
    # The crash hook is a constructor argument only a test-only module passes (no env var turns it on).
    crasher = [sys.executable, "-m", "tests.integration.sink_crasher"]
    first = subprocess.run(crasher, env=env, cwd=ROOT, capture_output=True, timeout=120)
    assert first.returncode == -9, first.stderr.decode()[-2000:]  # it died by SIGKILL right after an insert

    with open_store(settings) as store:
        inserted_before_restart = store.scalar("SELECT count() FROM predictions")
    assert 0 < inserted_before_restart <= n  # rows were written but their offsets never committed

    # A normal run ignores the environment variable the crash hook once was switched on by: it does not die.
    env["INFERWATCH_SINK_CRASH_AFTER_INSERT"] = "1"
    env["INFERWATCH_SINK_BATCH_ROWS"] = "1700"  # other batch boundaries than the first run: tokens differ
    cli = [sys.executable, "-m", "inferwatch.cli.main", "run", "sink", "--no-serve"]
    proc = subprocess.Popen(cli, env=env, cwd=ROOT, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        committed = False
        while time.monotonic() < deadline and not committed:
            time.sleep(1.0)
            from confluent_kafka import Consumer, TopicPartition

            c = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "g-kill"})
            parts = [TopicPartition(settings.predictions_topic, p) for p in range(6)]
            offs = c.committed(parts, timeout=10)
            c.close()
            committed = sum(max(0, tp.offset) for tp in offs) >= n
    finally:
        alive = proc.poll() is None
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    assert committed, err.decode()[-2000:]
    assert alive and proc.returncode != -9, (proc.returncode, err.decode()[-2000:])
    with open_store(settings) as store:
        total, distinct = store.query("SELECT count(), uniqExact(event_id) FROM predictions").rows[0]
    assert (total, distinct) == (n, n)


def test_the_end_of_a_backlog_is_written_without_waiting_for_batch_ms(settings: Settings) -> None:
    # Neither batch_rows nor batch_ms will be reached: only "caught up and caught_up_rows buffered" writes.
    n = 500
    _produce(settings, settings.predictions_topic, [_pred(i) for i in range(n)])
    opts = SinkSettings(group_id=f"g-cu-{settings.topic_prefix}", batch_rows=1_000_000, batch_ms=600_000,
                        caught_up_rows=100)
    with migrated(settings) as store:
        with running_sink(settings, store, opts) as sink:
            assert wait_for_count(store, "SELECT count() FROM predictions", n, timeout_s=30) == n
        assert store.scalar("SELECT uniqExact(event_id) FROM predictions") == n
        assert sink.health.last_commit_ms  # committed after the insert
