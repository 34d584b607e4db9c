"""The TypeScript SDK (sdks/typescript) against the real broker, the processor and the store.

pytest starts the native broker (``settings``: topics applied under a fresh prefix), runs the
package's node tests with the bootstrap in the environment (``node --test``: unit tests, the
shared vectors, and test/kafka.test.mjs, which logs through node-rdkafka, checks flush/stats and
the spool's replay after an outage), then reads what the TypeScript SDK put on the topics: every
event is a valid ``PredictionV1``/``FeedbackV1``, the processor's core makes a metric snapshot of
them, and the real sink stores them in chDB. Node is required: a machine without it fails here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import orjson
import pytest

from inferwatch.config import Settings
from inferwatch.contract.events import FeedbackV1, PredictionV1
from inferwatch.processor import ProcessorConfig
from inferwatch.processor.core.decode import Raw
from inferwatch.processor.core.engine import ProcessorCore
from inferwatch.sink import Sink, SinkOptions
from inferwatch.store import open_store
from tests.support.kafka import consume_all

pytestmark = pytest.mark.integration

PKG = Path(__file__).resolve().parents[2] / "sdks" / "typescript"
N = 200  # predictions of test/kafka.test.mjs's first test (IW_TS_EVENTS)


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is required for the TypeScript SDK's tests (make install installs it)", pytrace=False)
    if not (PKG / "dist" / "esm" / "index.js").exists() or not (PKG / "node_modules" / "node-rdkafka").exists():
        pytest.fail(f"the TypeScript SDK is not built: run `make install` (npm ci in {PKG})", pytrace=False)
    return node


def test_typescript_sdk_events_reach_kafka_the_processor_and_the_store(settings: Settings) -> None:
    node = _node()
    env = {**os.environ, "INFERWATCH_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           "INFERWATCH_TOPIC_PREFIX": settings.topic_prefix, "IW_TS_EVENTS": str(N)}
    run = subprocess.run([node, "--test", "--test-concurrency=1", "test/"], cwd=PKG, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert "# skipped 0" in run.stdout, "the broker tests did not run"
    assert "# fail 0" in run.stdout

    # the topics hold what the TypeScript SDK sent: N + 1 (timed failure) + 10 replayed from the spool
    msgs = consume_all(settings.kafka_bootstrap, settings.predictions_topic, N + 11, timeout_s=60)
    assert len(msgs) == N + 11
    evs = [PredictionV1.model_validate(orjson.loads(m.value())) for m in msgs]
    ts = [(m, e) for m, e in zip(msgs, evs, strict=True) if e.model == "ts-model"]
    assert len(ts) == N + 1 and {m.key() for m, _ in ts} == {b"ts-model"}
    assert len({e.event_id for e in evs}) == len(evs)
    failed = [e for _, e in ts if e.error is not None]
    assert len(failed) == 1 and failed[0].error == "Error: model crashed" and failed[0].outputs is None
    e0 = next(e for _, e in ts if e.inputs.get("amount") == 0.5)
    assert e0.inputs == {"amount": 0.5, "country": "FR", "new_user": True}
    assert e0.outputs is not None and e0.outputs.label == "fraud" and e0.outputs.score == pytest.approx(0.05)
    assert e0.segment == {"region": "us"} and e0.latency_ms == 1.25
    replayed = sorted(e.prediction_id for e in evs if e.model == "ts-spooled")
    assert replayed == sorted(f"spooled-{i}" for i in range(10))
    fbs = consume_all(settings.kafka_bootstrap, settings.feedback_topic, 1, timeout_s=30)
    assert len(fbs) == 1
    fb = FeedbackV1.model_validate(orjson.loads(fbs[0].value()))
    assert fb.label == "fraud" and fb.prediction_id == e0.prediction_id

    # a metric snapshot, by the processor's core over the bytes on the topic
    core = ProcessorCore(ProcessorConfig(window_s=60, lateness_s=0, baseline_s=60))
    raws = [Raw(m.value(), m.topic(), m.partition(), m.offset(), m.key()) for m, _ in ts]
    snaps = core.process_predictions(raws).snapshots + core.flush_all().snapshots
    whole = [s for s in snaps if s.model == "ts-model" and s.segment_key is None and s.count]
    assert sum(s.count for s in whole) == N + 1
    assert any(s.segment_key == "region" and s.segment_value == "eu" for s in snaps)

    # and the real sink stores them in chDB
    store = open_store(settings)
    store.migrate()
    sink = Sink(settings, store, SinkOptions(group_id=f"g-{settings.topic_prefix}", batch_rows=500, batch_ms=200))
    stop = threading.Event()
    t = threading.Thread(target=sink.run, args=(stop,), daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and store.scalar("SELECT count() FROM predictions") < N + 11:
            time.sleep(0.3)
        row = store.query("SELECT count(), countIf(error IS NOT NULL) FROM predictions WHERE model = 'ts-model'").rows[0]
        assert row == (N + 1, 1)
        assert store.scalar("SELECT count() FROM predictions WHERE model = 'ts-spooled'") == 10
    finally:
        stop.set()
        t.join(30)
        store.close()
