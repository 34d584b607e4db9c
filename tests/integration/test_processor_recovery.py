"""Processor state recovery and failures, through the real broker with real workers.

* a worker that starts on an empty disk while the changelogs hold other models' state (the
  two-step reproduction of the state-restore crash loop) processes on and counts every event;
* a worker killed with ``kill -9`` whose state directory is deleted restores from the changelogs
  and every window is emitted once (or again with the same count);
* partitions moving from one worker to a second one (and back when the second dies) lose and
  double nothing;
* a batch whose processing raises is retried with its offsets uncommitted, the failure is visible
  on ``/healthz`` and ``/metrics``, and after the retries only the failing record goes to the
  dead-letter topic while every other event is counted.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import orjson
import pytest

from inferwatch.config import Settings
from inferwatch.processor.settings import ProcessorSettings
from inferwatch.processor.topics import ensure_topics
from tests.support.kafka import consume_all
from tests.support.processor import (
    Snapshots,
    Worker,
    close_windows,
    committed_to_end,
    event,
    log_predictions,
    produce,
    wait_committed,
)

pytestmark = pytest.mark.integration

T0 = 1_764_140_040_000  # a window boundary (60 s)


def _topics(settings: Settings) -> None:
    ensure_topics(settings, ProcessorSettings(window_s=60, lateness_s=0, baseline_s=60, idle_flush_s=2))


def _assert_once(snaps: Snapshots, model: str, expected: int) -> None:
    wins = snaps.windows(model)
    assert wins, f"no snapshot of {model}"
    for start, counts in wins.items():
        assert len(set(counts)) == 1, f"{model} window {start} emitted with different counts {counts}"
    assert snaps.counted(model) == expected, (model, dict(wins))


def test_empty_disk_with_other_models_state_in_the_changelogs(settings: Settings, tmp_path: Path) -> None:
    """The issue's reproduction: run A on disk A, then run B on an empty disk B, same group and topics."""
    _topics(settings)
    first, second = ["first-m1", "first-m2", "first-m3"], ["second-m1", "second-m2", "second-m3"]
    n = 2_000  # per model: 100 s of event time, two windows
    snaps = Snapshots(settings)
    try:
        a = Worker(settings, tmp_path / "A", tmp_path / "a.log")
        try:
            log_predictions(settings, first, n, T0)
            close_windows(settings, first, T0 + 3_600_000)
            snaps.wait_counted({m: n for m in first}, timeout_s=90)
        finally:
            a.stop()
        for m in first:
            _assert_once(snaps, m, n)
        assert wait_committed(settings, settings.predictions_topic, 5)

        b = Worker(settings, tmp_path / "B", tmp_path / "b.log")
        try:
            log_predictions(settings, second, n, T0 + 3_600_000)
            close_windows(settings, second, T0 + 7_200_000)
            snaps.wait_counted({m: n for m in second}, timeout_s=90)
            assert wait_committed(settings, settings.predictions_topic, 30), committed_to_end(
                settings, settings.predictions_topic)
            health = b.health()
        finally:
            b.stop()
        for m in second:
            _assert_once(snaps, m, n)
        assert health is not None and health["ok"] and health["failures_total"] == 0, (health, b.tail())
        assert "Crashed" not in b.tail(200_000)
    finally:
        snaps.close()


def test_kill_9_with_the_state_directory_deleted(settings: Settings, tmp_path: Path) -> None:
    _topics(settings)
    models = ["kill-a", "kill-b", "kill-c", "kill-d"]
    half = 1_500  # per model and half: 75 s of event time each
    snaps = Snapshots(settings)
    data = tmp_path / "data"
    try:
        w = Worker(settings, data, tmp_path / "w1.log")
        try:
            w.wait_healthy()
            log_predictions(settings, models, half, T0)
            assert wait_committed(settings, settings.predictions_topic, 90), w.tail()
            # open windows are in the tables now; the first window of each model has closed
        finally:
            w.kill9()
        shutil.rmtree(data / "processor")
        w2 = Worker(settings, data, tmp_path / "w2.log")
        try:
            log_predictions(settings, models, half, T0, start=half)
            close_windows(settings, models, T0 + 3_600_000)
            snaps.wait_counted({m: 2 * half for m in models}, timeout_s=120)
            health = w2.health()
        finally:
            w2.stop()
        for m in models:
            _assert_once(snaps, m, 2 * half)
        assert health is not None and health["state_rebuilds_total"] >= 1 and health["failures_total"] == 0, health
    finally:
        snaps.close()


def test_partitions_move_between_two_workers(settings: Settings, tmp_path: Path) -> None:
    _topics(settings)
    models = [f"move-{i}" for i in range(8)]  # spread over the 6 partitions
    third = 1_000
    snaps = Snapshots(settings)
    try:
        w1 = Worker(settings, tmp_path / "w1", tmp_path / "w1.log")
        w2 = None
        try:
            w1.wait_healthy()
            log_predictions(settings, models, third, T0)
            assert wait_committed(settings, settings.predictions_topic, 90), w1.tail()
            w2 = Worker(settings, tmp_path / "w2", tmp_path / "w2.log")  # takes over some partitions
            w2.wait_healthy()
            deadline = time.monotonic() + 90  # until w2 really holds partitions (not its first empty revoke)
            while time.monotonic() < deadline and not (w2.health() or {}).get("assigned_partitions"):
                time.sleep(0.5)
            assert (w2.health() or {}).get("assigned_partitions"), ("no partition moved to w2", w2.tail())
            log_predictions(settings, models, third, T0, start=third)
            assert wait_committed(settings, settings.predictions_topic, 90), (w1.tail(), w2.tail())
            h2 = w2.health()
            w2.kill9()  # its partitions move back to w1, restored from the changelogs
            log_predictions(settings, models, third, T0, start=2 * third)
            close_windows(settings, models, T0 + 3_600_000)
            snaps.wait_counted({m: 3 * third for m in models}, timeout_s=150)
            h1 = w1.health()
        finally:
            w1.stop()
            if w2 is not None:
                w2.stop()
        assert h2 is not None and h2["records_total"] > 0, ("the second worker processed nothing", h2)
        assert h1 is not None and h1["rebalances_total"] >= 2 and h1["failures_total"] == 0, h1
        for m in models:
            _assert_once(snaps, m, 3 * third)
    finally:
        snaps.close()


def test_a_failing_batch_is_retried_uncommitted_then_only_its_poison_record_dead_lettered(
        settings: Settings, tmp_path: Path) -> None:
    _topics(settings)
    model, n, poison_at = "poisoned", 1_200, 700
    values = [event(model, i, T0 + i * 50, marker="poison-pill" if i == poison_at else None) for i in range(n)]
    produce(settings, settings.predictions_topic, model.encode(), values)
    close_windows(settings, [model], T0 + 3_600_000)
    # the injected fault: tests/support/faulty_processor.py raises in the core for any batch holding the pill
    w = Worker(settings, tmp_path / "data", tmp_path / "w.log", module="tests.support.faulty_processor",
               extra_env={"INFERWATCH_PROCESSOR_FAILURE_ATTEMPTS": "3", "INFERWATCH_PROCESSOR_FAILURE_BACKOFF_S": "2",
                          "INFERWATCH_PROCESSOR_BATCH_MAX_RECORDS": "5000"})
    snaps = Snapshots(settings)
    try:
        failing = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and failing is None:
            h = w.health()
            if h is not None and h["consecutive_failures"] > 0:
                failing = h
                ends, committed = committed_to_end(settings, settings.predictions_topic)
            time.sleep(0.1)
        assert failing is not None, w.tail()
        assert failing["ok"] is False and "poison" in (failing["last_error"] or ""), failing
        (part,) = ends
        assert committed.get(part, -1001) <= poison_at, ("the failing batch was committed", committed, ends)
        dead = [orjson.loads(m.value()) for m in consume_all(settings.kafka_bootstrap, settings.deadletter_topic, 1,
                                                              timeout_s=60)]
        snaps.wait_counted({model: n - 1}, timeout_s=60)
        assert wait_committed(settings, settings.predictions_topic, 30)
        healed = w.health()
        metrics = w.metrics()
    finally:
        w.stop()
        snaps.close()
    assert len(dead) == 1, dead
    d = dead[0]
    assert d["source_offset"] == poison_at and d["stage"] == "processor", d
    assert "processing failed" in d["reason"] and "poison" in d["reason"], d
    assert orjson.loads(__import__("base64").b64decode(d["payload_b64"]))["model_version"] == "poison-pill"
    assert snaps.counted(model) == n - 1
    assert healed is not None and healed["ok"] and healed["dead_lettered_total"] == 1, healed
    assert healed["failures_total"] >= 3
    assert "inferwatch_processor_batch_failures_total" in metrics
