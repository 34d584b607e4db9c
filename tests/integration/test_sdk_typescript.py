"""The TypeScript SDK (sdks/typescript) against the real broker, the processor and the store.

pytest starts the native broker (``settings``: topics applied under a fresh prefix), runs the
package's node tests with the bootstrap in the environment (``node --test``: unit tests, the
shared vectors, and test/kafka.test.mjs, which logs through node-rdkafka, checks flush/stats and
the spool's replay after an outage), then reads what the TypeScript SDK put on the topics: every
event is a valid ``PredictionV1``/``FeedbackV1``, the processor's core makes a metric snapshot of
them, and the real sink stores them in chDB. Node is required: a machine without it fails here.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest

from inferwatch.config import Settings
from inferwatch.contract.events import FeedbackV1, PredictionV1
from inferwatch.processor import ProcessorSettings
from inferwatch.processor.core.raw_events import Raw
from inferwatch.processor.core.state_machine import ProcessorCore
from inferwatch.sdk.errors import EventValidationError
from tests.support.kafka import consume_all
from tests.support.sink import running_sink
from tests.support.store import migrated, wait_for_count
from tests.unit.sdk.test_vectors import _logger as py_logger
from tests.unit.sdk.test_vectors import decode, same

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

    # the topics hold what the TypeScript SDK sent: N + 1 (timed failure), 10 replayed from the spool,
    # 1 from the child process that exits after close()
    total = N + 12
    msgs = consume_all(settings.kafka_bootstrap, settings.predictions_topic, total, timeout_s=60)
    assert len(msgs) == total
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
    assert sum(e.model == "ts-exit" for e in evs) == 1
    fbs = consume_all(settings.kafka_bootstrap, settings.feedback_topic, 1, timeout_s=30)
    assert len(fbs) == 1
    fb = FeedbackV1.model_validate(orjson.loads(fbs[0].value()))
    assert fb.label == "fraud" and fb.prediction_id == e0.prediction_id

    # a metric snapshot, by the processor's core over the bytes on the topic
    core = ProcessorCore(ProcessorSettings(window_s=60, lateness_s=0, baseline_s=60))
    raws = [Raw(m.value(), m.topic(), m.partition(), m.offset(), m.key()) for m, _ in ts]
    snaps = core.process_predictions(raws).snapshots + core.flush_all().snapshots
    whole = [s for s in snaps if s.model == "ts-model" and s.segment_key is None and s.count]
    assert sum(s.count for s in whole) == N + 1
    assert any(s.segment_key == "region" and s.segment_value == "eu" for s in snaps)

    # and the real sink stores them in chDB
    with migrated(settings) as store, running_sink(settings, store):
        wait_for_count(store, "SELECT count() FROM predictions", total)
        row = store.query("SELECT count(), countIf(error IS NOT NULL) FROM predictions WHERE model = 'ts-model'").rows[0]
        assert row == (N + 1, 1)
        assert store.scalar("SELECT count() FROM predictions WHERE model = 'ts-spooled'") == 10


# -- random calls, both SDKs ------------------------------------------------------------------------
# Values chosen to sit on the contract's edges; no integral floats (JSON gives JavaScript 5 for 5.0,
# and Python would print "5.0"), no digit-only keys (JavaScript orders those first).
_SCALARS: list[object] = [
    0.5, -2.25, 1e-07, 123456.789, 1.5e-300, 7, -3, 0, 2**53 - 1, True, False, None, "", "x", "Zürich 🌍", "a b",
    {"$float": "nan"}, {"$float": "inf"}, {"$float": "-inf"}, {"$repeat": ["a", 256]}, {"$repeat": ["a", 257]},
    {"$repeat": ["🌍", 257]}, [1, 2], [], {"k": 1},
]
_KEYS = ["amount", "country", "bad key", "", "a/b@c:d+e-f.g_h", "x" * 129, "é", "score", "label", "value",
         "probabilities", "klass", "prompt", "token_logprobs", "output_tokens", "refusal", "temperature"]


def _value(r: random.Random, depth: int = 0) -> object:
    roll = r.random()
    if depth < 2 and roll < 0.15:
        return {r.choice(_KEYS): _value(r, depth + 1) for _ in range(r.randint(0, 3))}
    if depth < 2 and roll < 0.25:
        return [_value(r, depth + 1) for _ in range(r.randint(0, 3))]
    return r.choice(_SCALARS)


def _random_call(r: random.Random) -> dict[str, object]:
    if r.random() < 0.2:
        args: dict[str, object] = {"prediction_id": r.choice(["p-1", "", 5, {"$repeat": ["p", 129]}])}
        for k in ("label", "value", "model_version", "tags"):
            if r.random() < 0.5:
                args[k] = _value(r)
        return {"call": "feedback", "args": args}
    args = {}
    good = {"inputs": {"amount": 0.5, "country": "de"}, "outputs": {"label": "ok", "score": 0.75},
            "latency_ms": 2.5, "segment": {"region": "eu"}, "tags": {"req": "r-1"}, "embedding": [0.25, -0.5],
            "llm": {"prompt": "hi", "output_tokens": 3, "token_logprobs": [-0.5]},
            "lineage": [{"model": "emb", "model_version": "v1"}], "error": "boom", "prediction_id": "pid-1",
            "ts_ms": 1600000000000}
    for k, v in good.items():
        roll = r.random()
        if roll < 0.35:
            args[k] = v
        elif roll < 0.5:
            args[k] = _value(r)
    return {"call": "prediction", "args": args}


REDACT = {"drop": ["country"], "hash": ["amount", "é"], "segment": {"*": "hash"}, "tags": {"req": "drop"},
          "outputs": {"label": "hash", "probabilities": "hash"}, "error": "hash", "llm_text": "hash",
          "salt": "fuzz-salt-0123456789abcdef"}


@pytest.mark.parametrize("extra", [{}, {"redact": REDACT, "sample_rate": 0.5}], ids=["plain", "redacted-sampled"])
def test_random_calls_get_the_same_answer_from_both_sdks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         extra: dict[str, object]) -> None:
    """Seeded random calls on the contract's edges: both SDKs send the same event (field for field)
    or refuse naming the same field with the same text -- also redacting (same salt, same hashes)
    and sampling."""
    node = _node()
    r = random.Random(16)
    conf = {"model": "fuzz-model", "model_version": "v1", "id_prefix": "feedc0de00000000-", "now_ms": 1700000000000,
            **extra}
    calls = [_random_call(r) for _ in range(3000)]
    path = tmp_path / "calls.json"
    path.write_text(json.dumps({"logger": conf, "calls": calls}, ensure_ascii=False), encoding="utf-8")
    run = subprocess.run([node, "scripts/run-calls.mjs", str(path)], cwd=PKG, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    ts_answers = json.loads(run.stdout)

    from inferwatch.sdk import logger as logger_mod
    monkeypatch.setattr(logger_mod, "_time_ns", lambda: conf["now_ms"] * 1_000_000)
    log, sent = py_logger(conf)
    kinds = {"ok": 0, "refused": 0}
    try:
        for call, ts in zip(calls, ts_answers, strict=True):
            args = decode(call["args"])
            before = len(sent)
            try:
                fn = log.prediction if call["call"] == "prediction" else log.feedback
                returns = fn(**args)
            except EventValidationError as exc:
                assert ts == {"field": exc.field, "message": str(exc)}, call
                kinds["refused"] += 1
                continue
            got = orjson.loads(sent[-1][1]) if len(sent) > before else None
            assert "ok" in ts, (call, ts)
            assert ts["returns"] == returns, call
            assert same(got, ts["ok"]), (call, got, ts["ok"])
            kinds["ok"] += 1
    finally:
        log.close(0)
    # the generator reaches both outcomes in earnest
    assert kinds["ok"] > 200 and kinds["refused"] > 300, kinds
