"""The shared SDK test vectors (schemas/vectors/sdk.v1.json) against the Python SDK.

The TypeScript SDK runs the same file (sdks/typescript/test/vectors.test.mjs): both must send the
events it lists, field for field, and refuse its bad calls naming the same field with the same
text. Each case gets a fresh logger whose ids and clock are fixed; what it sends is caught at the
producer's ``produce()`` (no broker: these vectors are about the events, the integration tests
about delivery). The checked path is the reference the C fast path is held to byte for byte
(tests/unit/sdk/test_fast_prediction.py); it runs here because only it takes an injected clock.
"""

from __future__ import annotations

import itertools
import json
import math
import socket
from pathlib import Path
from typing import Any

import orjson
import pytest

from inferwatch.sdk import logger as logger_mod
from inferwatch.sdk.errors import EventValidationError
from inferwatch.sdk.logger import InferenceLogger

VECTORS = Path(__file__).resolve().parents[3] / "schemas" / "vectors" / "sdk.v1.json"
DOC = json.loads(VECTORS.read_text(encoding="utf-8"))
DEFAULTS = DOC["defaults"]
_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def decode(v: Any) -> Any:
    """The vector file's encoding of values JSON cannot hold (see its ``$comment``)."""
    if isinstance(v, dict):
        if set(v) == {"$float"}:
            return _FLOATS[v["$float"]]
        if set(v) == {"$repeat"}:
            text, n = v["$repeat"]
            return text * n
        if set(v) == {"$dict"}:
            spec = v["$dict"]
            keys = [decode(k) for k in spec["keys"]] if "keys" in spec else [f"{spec['prefix']}{i}" for i in range(spec["n"])]
            return {k: decode(spec["value"]) for k in keys}
        return {k: decode(x) for k, x in v.items()}
    if isinstance(v, list):
        return [decode(x) for x in v]
    return v


def same(a: Any, b: Any) -> bool:
    """Field-for-field equality: numbers by value (JSON does not tell 1 from 1.0), bools are not numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _logger(conf: dict[str, Any]) -> tuple[InferenceLogger, list[tuple[str, bytes, bytes]]]:
    log = InferenceLogger(conf["model"], conf["model_version"], bootstrap=f"127.0.0.1:{_dead_port()}", spool_dir=None,
                          sample_rate=conf.get("sample_rate"), redact=conf.get("redact"), close_timeout_s=0.0)
    sent: list[tuple[str, bytes, bytes]] = []
    log._produce = lambda topic, value, key: sent.append((topic, value, key))  # type: ignore[method-assign]
    # The checked path only (see the module docstring), with fixed ids.
    log._fast = False
    vars(log).pop("prediction", None)
    log._ids.prefix = conf["id_prefix"]
    log._ids.counter = itertools.count(1)
    return log, sent


def _call(log: InferenceLogger, call: str, args: dict[str, Any]) -> Any:
    if call == "prediction":
        return log.prediction(**args)
    if call == "feedback":
        return log.feedback(**args)
    raise AssertionError(f"unknown call {call}")


@pytest.mark.parametrize("case", DOC["cases"], ids=[c["name"] for c in DOC["cases"]])
def test_vector(case: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    conf = {**DEFAULTS, **case.get("logger", {})}
    monkeypatch.setattr(logger_mod, "_time_ns", lambda: conf["now_ms"] * 1_000_000)
    calls = case["calls"]
    if calls[0]["call"] == "logger":  # a refused constructor
        args = decode(calls[0]["args"])
        with pytest.raises(EventValidationError) as info:
            InferenceLogger(args["model"], args["model_version"], bootstrap="127.0.0.1:1", spool_dir=None)
        assert (info.value.field, str(info.value)) == (calls[0]["error"]["field"], calls[0]["error"]["message"])
        return
    log, sent = _logger(conf)
    topics = {"prediction": log.predictions_topic, "feedback": log.feedback_topic}
    try:
        for call in calls:
            before = len(sent)
            args = decode(call["args"])
            if "error" in call:
                with pytest.raises(EventValidationError) as info:
                    _call(log, call["call"], args)
                assert info.value.field == call["error"]["field"]
                assert str(info.value) == call["error"]["message"]
                assert len(sent) == before, "a refused call sent something"
                continue
            assert _call(log, call["call"], args) == call["returns"]
            if call.get("sampled_out"):
                assert len(sent) == before
                continue
            assert len(sent) == before + 1
            topic, value, key = sent[-1]
            assert topic == topics[call["topic"]]
            assert key == conf["model"].encode()
            got, want = orjson.loads(value), decode(call["event"])
            assert list(got) == list(want), "top-level keys in another order"
            assert same(got, want), f"{got} != {want}"
    finally:
        log.close(0)


def test_the_vectors_cover_every_prediction_argument_and_refusal_kind() -> None:
    """The file stays a real contract: accepted and refused calls of every argument of prediction()."""
    args = {k for c in DOC["cases"] for call in c["calls"] if call["call"] == "prediction" for k in call["args"]}
    assert args >= {"inputs", "outputs", "latency_ms", "segment", "embedding", "llm", "lineage", "tags", "error",
                    "prediction_id", "ts_ms"}
    refused = [call for c in DOC["cases"] for call in c["calls"] if "error" in call]
    assert len(refused) >= 40
    assert {call["call"] for call in refused} == {"prediction", "feedback", "logger"}
