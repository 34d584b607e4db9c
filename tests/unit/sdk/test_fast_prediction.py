"""The C ``prediction`` (inferwatch.native._encode.FastPrediction) against the Python method it shadows.

No broker: the loggers point at a port nobody listens on, so librdkafka keeps every event; ``close()``
purges the queue into the spool, where the test reads the bytes each path produced.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings

from inferwatch.native import load
from inferwatch.sdk import EventValidationError, InferenceLogger
from inferwatch.sdk.spool import Spool
from inferwatch.sdk.transport import KIND_PREDICTION
from tests.unit.sdk.test_encode_parity import inputs_st, latency_st, outputs_st, segment_st

pytestmark = pytest.mark.skipif(load("_encode") is None, reason="the C accelerators are not built (make install)")


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _logger(spool: Path, **kw: Any) -> InferenceLogger:
    return InferenceLogger("fast-model", "1", bootstrap=f"127.0.0.1:{_dead_port()}", spool_dir=spool,
                           replay_timeout_ms=200, close_timeout_s=0.2, **kw)


def _spooled(spool: Path) -> list[dict[str, Any]]:
    sp = Spool(spool, max_bytes=0)
    out: list[dict[str, Any]] = []
    for _ in range(1000):
        b = sp.read_batch(max_records=5000)
        out += [orjson.loads(r.value) for r in b.records if r.kind == KIND_PREDICTION]
        sp.commit(b.segment, b.end)
        if not b.records and not sp.has_pending():
            break
    sp.close()
    return out


def _outcome(fn: Any, *args: Any, **kw: Any) -> tuple[str, str]:
    try:
        return "ok", fn(*args, **kw)
    except EventValidationError as exc:
        return "bad", exc.field


def test_the_c_version_is_installed_only_for_the_plain_logger(tmp_path: Path) -> None:
    log = _logger(tmp_path / "a")
    assert type(log.prediction).__name__ == "FastPrediction"
    sampled = _logger(tmp_path / "b", sample_rate=0.5)
    assert "prediction" not in vars(sampled)  # sampling: the Python method (checked path) only
    log.close(0.2)
    sampled.close(0.2)


def test_c_and_python_prediction_agree(tmp_path: Path) -> None:
    c_log, py_log = _logger(tmp_path / "c"), _logger(tmp_path / "py")
    py_prediction = InferenceLogger.prediction.__get__(py_log)
    n = {"ok": 0, "bad": 0}

    @hsettings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(inputs_st, outputs_st, latency_st, segment_st)
    def check(inputs: Any, outputs: Any, latency: Any, segment: Any) -> None:
        kw = {"latency_ms": latency, "segment": segment}
        got = _outcome(c_log.prediction, inputs, outputs, **kw)
        want = _outcome(py_prediction, inputs, outputs, **kw)
        assert got[0] == want[0], (inputs, outputs, kw, got, want)
        if got[0] == "bad":
            assert got[1] == want[1]
        n[got[0]] += 1

    check()
    # Both outcomes must be exercised. The strategies lean to bad calls (~15 % ok); the exact split
    # moves with hypothesis's generation (41 ok of 300 in a fresh clone), so the floor is loose.
    assert n["ok"] >= 20 and n["bad"] >= 20, n
    assert c_log.stats()["logged"] == py_log.stats()["logged"] == n["ok"]
    c_log.close(0.2)
    py_log.close(0.2)
    strip = ("event_id", "prediction_id", "ts")
    c_events = [{k: v for k, v in ev.items() if k not in strip} for ev in _spooled(tmp_path / "c")]
    py_events = [{k: v for k, v in ev.items() if k not in strip} for ev in _spooled(tmp_path / "py")]
    assert len(c_events) == n["ok"]
    assert c_events == py_events


def test_optional_blocks_and_own_ids_take_the_checked_path(tmp_path: Path) -> None:
    log = _logger(tmp_path / "s")
    assert log.prediction({"a": 1.0}, {"score": 0.5}, prediction_id="mine") == "mine"
    assert log.prediction(outputs={"score": 0.5}, inputs={"a": 1.0}, tags={"t": "x"}, ts_ms=1_700_000_000_000)
    pid = log.prediction({"a": 1.0}, error="boom")  # no outputs: needs error=
    with pytest.raises(EventValidationError) as exc:
        log.prediction({"a": 1.0})
    assert exc.value.field == "outputs"
    log.close(0.2)
    events = _spooled(tmp_path / "s")
    assert [ev["prediction_id"] for ev in events][0] == "mine"
    assert events[1]["tags"] == {"t": "x"} and events[1]["ts"] == 1_700_000_000_000
    assert events[2]["prediction_id"] == pid and events[2]["error"] == "boom"


def test_argument_errors_read_like_the_python_method(tmp_path: Path) -> None:
    log = _logger(tmp_path / "s")
    py = InferenceLogger.prediction.__get__(log)
    for args, kw in [((1, 2, 3), {}), ((), {"nope": 1}), (({"a": 1.0},), {"inputs": {"a": 1.0}})]:
        with pytest.raises(TypeError) as c_err:
            log.prediction(*args, **kw)
        with pytest.raises(TypeError) as py_err:
            py(*args, **kw)
        assert str(c_err.value) == str(py_err.value)
    log.close(0.2)


def test_after_close_events_are_dropped_and_counted(tmp_path: Path) -> None:
    log = _logger(tmp_path / "s")
    log.close(0.2)
    assert log.prediction({"a": 1.0}, {"score": 0.5})
    st = log.stats()
    assert st["dropped"] == 1 and st["logged"] == 0


def test_without_the_c_module_the_python_twin_writes_the_same_events(tmp_path: Path, monkeypatch: Any) -> None:
    import inferwatch.sdk.encode as encode

    c_log = _logger(tmp_path / "c")
    monkeypatch.setattr(encode, "load", lambda name: None)  # as on a machine without a compiler
    py_log = _logger(tmp_path / "py")
    assert "prediction" not in vars(py_log) and encode.encoder_kind(py_log._encoder) == "python"
    calls: list[tuple[Any, ...]] = [
        ({"a": 1.5, "b": "x\n\u00e9", "c": None, "d": True, "e": 2**64 - 1, "f": 0.1 + 0.2}, {"label": "ok", "score": 0.93},
         12.5, {"device": "p9"}),
        ({}, {"value": 1e-7}, None, None),
        ({"a": float("nan")}, {"score": 0.5}, None, None),  # refused by both
    ]
    for log in (c_log, py_log):
        for inputs, outputs, lat, seg in calls:
            _outcome(log.prediction, inputs, outputs, latency_ms=lat, segment=seg)
        log.close(0.2)
    strip = ("event_id", "prediction_id", "ts")
    c_events = [{k: v for k, v in ev.items() if k not in strip} for ev in _spooled(tmp_path / "c")]
    py_events = [{k: v for k, v in ev.items() if k not in strip} for ev in _spooled(tmp_path / "py")]
    assert len(c_events) == 2 and c_events == py_events
