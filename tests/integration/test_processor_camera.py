""""The new camera" through the real broker and the faust processor (a real `inferwatch run processor`
subprocess): image sizes shift and accuracy falls only for one device; its segment is named first,
other devices show neither drift nor an accuracy drop. Then kill -9 and restart: nothing is emitted
twice with different counts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from inferwatch.config import Settings
from inferwatch.processor.settings import ProcessorSettings
from inferwatch.processor.topics import ensure_topics
from inferwatch.testing.scenarios import NEW_DEVICE, new_camera
from tests.support.kafka import consume_all

pytestmark = pytest.mark.integration

# LABEL_WAIT_S covers the whole replay: after the restart both halves' backlogs are read at once and
# the predictions topic can run far ahead of the feedback topic in event time; with a shorter wait
# the watermark closed incident windows before their labels were read (a flaky failure under load).
# Windows then close by the idle flush, which labels still arriving keep from firing early.
ENV = {"INFERWATCH_PROCESSOR_WINDOW_S": "30", "INFERWATCH_PROCESSOR_LATENESS_S": "5",
       "INFERWATCH_PROCESSOR_LABEL_WAIT_S": "150", "INFERWATCH_PROCESSOR_BASELINE_S": "120",
       "INFERWATCH_PROCESSOR_IDLE_FLUSH_S": "4"}
T0 = 1_764_140_040_000
BASELINE_S, INCIDENT_S, RATE = 120, 120, 25


def start_processor(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **ENV, "INFERWATCH_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           "INFERWATCH_TOPIC_PREFIX": settings.topic_prefix, "INFERWATCH_DATA_DIR": str(settings.data_dir)}
    return subprocess.Popen([sys.executable, "-m", "inferwatch.cli.main", "run", "processor"], env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)


def produce(settings: Settings, events: list) -> None:  # type: ignore[type-arg]
    p = Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 20, "compression.type": "lz4"})
    for e in events:
        topic = settings.predictions_topic if e.kind == "prediction" else settings.feedback_topic
        p.produce(topic, key=e.key, value=e.value)
        p.poll(0)
    assert p.flush(30) == 0


def snapshots(settings: Settings, expected: int, timeout_s: float) -> list[dict]:  # type: ignore[type-arg]
    return [orjson.loads(m.value()) for m in consume_all(settings.kafka_bootstrap, settings.metrics_topic, expected,
                                                          timeout_s=timeout_s)]


def test_new_camera_through_faust(settings: Settings, tmp_path: Path) -> None:
    ensure_topics(settings, ProcessorSettings(**{k.removeprefix("INFERWATCH_PROCESSOR_").lower(): v for k, v in ENV.items()}))
    events = list(new_camera(t0_ms=T0, baseline_s=BASELINE_S, incident_s=INCIDENT_S, rate_per_s=RATE))
    half = len(events) // 2
    log = tmp_path / "processor.log"
    proc = start_processor(settings, log)
    try:
        produce(settings, events[:half])
        # windows of the first half close while the processor runs; then kill -9 mid-stream
        first = snapshots(settings, 4, timeout_s=90)
        assert first, log.read_text()[-3000:]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        produce(settings, events[half:])
        proc = start_processor(settings, log)
        n_windows = (BASELINE_S + INCIDENT_S) // 30
        # whole + 3 device + 3 region + 2 app_version (+1 device in the incident) per window
        expected = n_windows * 9 + (INCIDENT_S // 30)
        snaps = snapshots(settings, expected, timeout_s=120)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    by_id: dict[str, dict] = {}  # type: ignore[type-arg]
    for s in snaps:
        prev = by_id.get(s["event_id"])
        assert prev is None or prev["count"] == s["count"], "a window was emitted twice with different counts"
        by_id[s["event_id"]] = s
    uniq = list(by_id.values())
    assert len(uniq) == expected, log.read_text()[-3000:]
    assert sum(s["count"] for s in uniq if s["segment_key"] is None) == (BASELINE_S + INCIDENT_S) * RATE
    incident = [s for s in uniq if s["window_start"] >= T0 + BASELINE_S * 1000]
    for s in incident:
        f = {x["metric"]: x for x in s["findings"]}
        if s["segment_key"] is None:
            for metric in ("perf.accuracy", "input.image_width.psi"):
                assert metric in f, (s["window_start"], list(f))
                top = f[metric]["top_segments"][0]
                assert (top["key"], top["value"]) == ("device", NEW_DEVICE)
        elif s["segment_key"] == "device" and s["segment_value"] == NEW_DEVICE:
            assert "perf.accuracy" in f and "input.image_width.psi" in f
        elif s["segment_key"] == "device":
            assert "perf.accuracy" not in f and "input.image_width.psi" not in f
            assert s["metrics"]["input.image_width.psi"] < 0.2
