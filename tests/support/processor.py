"""Run real processor workers (``inferwatch run processor`` subprocesses) against the test broker.

Used by the recovery and failover tests: start, kill and restart workers with their own state
directories, log predictions and labels for named models, read back what the workers emitted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from inferwatch.config import Settings
from inferwatch.infra.kafka_native import free_port
from inferwatch.processor.topics import app_id

REPO = Path(__file__).resolve().parents[2]
WINDOW_S = 60
WORKER_ENV = {"INFERWATCH_PROCESSOR_WINDOW_S": str(WINDOW_S), "INFERWATCH_PROCESSOR_LATENESS_S": "0",
              "INFERWATCH_PROCESSOR_BASELINE_S": str(WINDOW_S), "INFERWATCH_PROCESSOR_IDLE_FLUSH_S": "600",
              "INFERWATCH_PROCESSOR_BATCH_MAX_RECORDS": "500"}


class Worker:
    """One processor worker process with its own data directory and health port."""

    def __init__(self, settings: Settings, data_dir: Path, log: Path, module: str = "inferwatch.cli.main",
                 extra_env: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.log = log
        self.health_port = free_port()
        env = {**os.environ, **WORKER_ENV, "INFERWATCH_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
               "INFERWATCH_TOPIC_PREFIX": settings.topic_prefix, "INFERWATCH_DATA_DIR": str(data_dir),
               "INFERWATCH_PROCESSOR_HEALTH_PORT": str(self.health_port), **(extra_env or {})}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
        args = [sys.executable, "-m", module] + (["run", "processor"] if module == "inferwatch.cli.main" else [])
        self.proc = subprocess.Popen(args, env=env, cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def health(self) -> dict[str, Any] | None:
        """The worker's ``/healthz`` (None while it does not answer)."""
        try:
            r = httpx.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2)
        except httpx.HTTPError:
            return None
        return r.json()  # type: ignore[no-any-return]

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.health_port}/metrics", timeout=2).text

    def wait_healthy(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.tail()
            if self.health() is not None:
                return
            time.sleep(0.3)
        raise AssertionError(f"worker health endpoint never answered\n{self.tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 20) -> None:
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)

    def tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def event(model: str, i: int, ts: int, label: bool = True, marker: str | None = None) -> bytes:
    """A small valid prediction of ``model`` (3 numeric features, one segment key)."""
    ev: dict[str, Any] = {
        "schema_version": "prediction.v1", "event_id": f"{model}-e{i}", "prediction_id": f"{model}-p{i}", "ts": ts,
        "model": model, "model_version": marker or "1", "latency_ms": 5.0 + i % 7,
        "inputs": {"x0": float(i % 13), "x1": float(i % 5) / 2, "x2": float(i % 3)},
        "outputs": {"label": "yes" if i % 2 else "no", "score": (i % 10) / 10},
        "segment": {"device": f"d{i % 3}"},
    }
    if not label:
        del ev["outputs"]["label"]
    return orjson.dumps(ev)


def log_predictions(settings: Settings, models: list[str], n: int, t0_ms: int, rate_per_s: int = 20,
                    start: int = 0, labels_for: float = 0.25) -> None:
    """``n`` predictions per model (indices ``start``…) at ``rate_per_s`` of event time, plus labels for
    the first ``labels_for`` share of them (joins state in the tables)."""
    p = Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 20, "compression.type": "lz4"})
    for i in range(start, start + n):
        for m in models:
            p.produce(settings.predictions_topic, key=m.encode(), value=event(m, i, t0_ms + i * 1000 // rate_per_s))
        p.poll(0)
    for i in range(start, start + int(n * labels_for)):
        for m in models:
            fb = {"schema_version": "feedback.v1", "event_id": f"{m}-f{i}", "prediction_id": f"{m}-p{i}",
                  "ts": t0_ms + i * 1000 // rate_per_s + 500, "model": m, "label": "yes"}
            p.produce(settings.feedback_topic, key=m.encode(), value=orjson.dumps(fb))
    assert p.flush(30) == 0


def close_windows(settings: Settings, models: list[str], ts_ms: int) -> None:
    """One event per model at ``ts_ms`` (version ``closer``, counted in no window that closes): the
    models' watermarks pass every earlier window, which then closes (idle flushes are off in these tests,
    so no window closes early while a test waits for a worker)."""
    p = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    for m in models:
        p.produce(settings.predictions_topic, key=m.encode(), value=event(m, 10**6, ts_ms, marker="closer"))
    assert p.flush(30) == 0


def produce(settings: Settings, topic: str, key: bytes, values: list[bytes]) -> None:
    p = Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 5})
    for v in values:
        p.produce(topic, key=key, value=v)
    assert p.flush(30) == 0


class Snapshots:
    """Reads the metrics topic from the start and keeps every whole-version snapshot per model."""

    def __init__(self, settings: Settings) -> None:
        self.c = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"t-{time.time_ns()}",
                           "auto.offset.reset": "earliest", "enable.auto.commit": False})
        self.c.subscribe([settings.metrics_topic])
        self.by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def poll(self, seconds: float = 0.5) -> None:
        for m in self.c.consume(1000, timeout=seconds):
            if m.error() is None:
                s = orjson.loads(m.value())
                if s["segment_key"] is None:
                    self.by_model[s["model"]].append(s)

    def windows(self, model: str) -> dict[int, list[int]]:
        """``window_start -> [count of each emission]`` of ``model``'s whole-version snapshots."""
        out: dict[int, list[int]] = defaultdict(list)
        for s in self.by_model.get(model, []):
            out[s["window_start"]].append(s["count"])
        return out

    def counted(self, model: str) -> int:
        """Events counted once per window (a window emitted twice must have emitted the same count)."""
        return sum(c[0] for c in self.windows(model).values())

    def wait_counted(self, expected: dict[str, int], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.poll()
            if all(self.counted(m) >= n for m, n in expected.items()):
                self.poll(1.0)
                return
        return

    def close(self) -> None:
        self.c.close()


def committed_to_end(settings: Settings, topic: str) -> tuple[dict[int, int], dict[int, int]]:
    """``(end offsets, committed offsets)`` of the processor's group on ``topic`` (partitions with data)."""
    c = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": app_id(settings)})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        committed = {tp.partition: tp.offset
                     for tp in c.committed([TopicPartition(topic, p) for p in parts], timeout=10)}
    finally:
        c.close()
    return ({p: o for p, o in ends.items() if o > 0}, {p: committed[p] for p, o in ends.items() if o > 0})


def wait_committed(settings: Settings, topic: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ends, committed = committed_to_end(settings, topic)
        if ends == committed:
            return True
        time.sleep(0.5)
    return False
