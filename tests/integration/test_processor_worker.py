"""The faust worker's batch path through the real broker (a real ``inferwatch run processor`` subprocess).

A backlog of valid predictions mixed with bad messages (not JSON, a tombstone, an invalid model name)
is read in batch events: every valid event is counted once in the snapshots, every bad one reaches
the dead-letter topic with its source offset and the contract's reason, and the worker's consumer
group commits the predictions partition up to its end (offsets are acked per batch after the batch
was processed and its outputs sent).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from inferwatch.config import Settings
from inferwatch.processor.settings import ProcessorSettings
from inferwatch.processor.topics import app_id, ensure_topics
from inferwatch.testing.scenarios import wide_event
from tests.support.kafka import consume_all

pytestmark = pytest.mark.integration

WINDOW_S = 60
ENV = {"INFERWATCH_PROCESSOR_WINDOW_S": str(WINDOW_S), "INFERWATCH_PROCESSOR_LATENESS_S": "0",
       "INFERWATCH_PROCESSOR_BASELINE_S": str(WINDOW_S), "INFERWATCH_PROCESSOR_IDLE_FLUSH_S": "2"}
T0 = 1_764_140_040_000
N, RATE = 6_000, 50  # 120 s of event time: 2 windows


def _committed_to_end(settings: Settings, topic: str) -> tuple[dict[int, int], dict[int, int]]:
    c = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": app_id(settings)})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        committed = {tp.partition: tp.offset for tp in c.committed([TopicPartition(topic, p) for p in parts], timeout=10)}
    finally:
        c.close()
    return ({p: o for p, o in ends.items() if o > 0}, {p: committed[p] for p, o in ends.items() if o > 0})


def _whole_snapshots(settings: Settings, expected: int, timeout_s: float) -> list[dict]:  # type: ignore[type-arg]
    """The whole-version snapshots of the bench model, read until ``expected`` of them or the timeout."""
    c = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"t-{time.time_ns()}",
                  "auto.offset.reset": "earliest"})
    c.subscribe([settings.metrics_topic])
    out: list[dict] = []  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < expected and time.monotonic() < deadline:
            for m in c.consume(100, timeout=0.5):
                if m.error() is None:
                    snap = orjson.loads(m.value())
                    if snap["segment_key"] is None and snap["model"] == "bench-model":
                        out.append(snap)
    finally:
        c.close()
    return out


def test_batches_count_once_dead_letter_bad_messages_and_commit_to_the_end(settings: Settings, tmp_path: Path) -> None:
    ensure_topics(settings, ProcessorSettings(window_s=WINDOW_S, lateness_s=0, baseline_s=WINDOW_S, idle_flush_s=2))
    rng = np.random.default_rng(3)
    p = Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 20, "compression.type": "lz4"})
    bad = {200: b"not json", 3_000: None, 5_000: wide_event(0, T0, rng).replace(b'"bench-model"', b'"bad model!"')}
    for i in range(N):
        if i in bad:
            p.produce(settings.predictions_topic, key=b"bench-model", value=bad[i])
        p.produce(settings.predictions_topic, key=b"bench-model", value=wide_event(i, T0 + i * 1000 // RATE, rng))
        p.poll(0)
    assert p.flush(30) == 0
    env = {**os.environ, **ENV, "INFERWATCH_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           "INFERWATCH_TOPIC_PREFIX": settings.topic_prefix, "INFERWATCH_DATA_DIR": str(settings.data_dir)}
    log = tmp_path / "processor.log"
    proc = subprocess.Popen([sys.executable, "-m", "inferwatch.cli.main", "run", "processor"], env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        dead = [orjson.loads(m.value()) for m in consume_all(settings.kafka_bootstrap, settings.deadletter_topic, 3,
                                                              timeout_s=90)]
        whole = _whole_snapshots(settings, 2, timeout_s=60)
        deadline = time.monotonic() + 30
        ends, committed = _committed_to_end(settings, settings.predictions_topic)
        while committed != ends and time.monotonic() < deadline:
            time.sleep(0.5)
            ends, committed = _committed_to_end(settings, settings.predictions_topic)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    assert len(whole) == 2, log.read_text()[-3000:]
    assert sum(s["count"] for s in whole) == N
    assert len(dead) == 3
    assert all(d["stage"] == "processor" and d["source_topic"] == settings.predictions_topic for d in dead)
    # each bad message was produced just before event i, so it sits at offset i + (bad ones before it)
    assert sorted(d["source_offset"] for d in dead) == [200, 3_001, 5_002]
    assert all(d["reason"] for d in dead)
    assert any("name" in d["reason"].lower() or "pattern" in d["reason"].lower() for d in dead)
    assert committed == ends, (committed, ends)
