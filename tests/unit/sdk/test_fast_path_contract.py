"""The logger's inline fast path agrees with the full check and with the pydantic contract.

No broker: the logger points at a port nobody listens on, so librdkafka keeps every event in its
queue; ``close()`` purges the queue and the purge reports put each event in the spool, where this
test reads the exact bytes ``prediction()`` produced.

Property: for valid calls and for valid calls with one argument mutated,
  * whatever ``prediction()`` accepts (fast path or not) is a payload that
    ``PredictionV1.model_validate(orjson.loads(payload))`` accepts, with the same inputs/outputs;
  * whatever it rejects raises ``EventValidationError`` (a ``ValueError``) naming the mutated field;
  * the full check (``_prediction_checked``) makes the same accept/reject decision.
"""

from __future__ import annotations

import enum
import math
import socket
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from inferwatch.contract.events import PredictionV1
from inferwatch.sdk import EventValidationError, InferenceLogger
from inferwatch.sdk.spool import Spool
from inferwatch.sdk.transport import KIND_PREDICTION


class _Str(str):
    pass


class _Float(float):
    pass


class _Color(enum.Enum):
    RED = "red"


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


names = st.from_regex(r"[A-Za-z][A-Za-z0-9_.:/@+-]{0,12}", fullmatch=True)
# A small fixed pool of names, so most calls hit names the fast path has seen before.
pool_names = st.sampled_from([f"f{i}" for i in range(12)] + ["device", "country", "app_version"])
good_scalar = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**63), 2**64 - 1), st.booleans(),
    st.text(max_size=40), st.text(min_size=250, max_size=256), st.none(),
)
good_inputs = st.dictionaries(st.one_of(pool_names, names), good_scalar, max_size=16)
good_outputs = st.fixed_dictionaries({}, optional={
    "label": st.text(max_size=20),
    "score": st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-1000, 1000)),
    "value": st.floats(-1e6, 1e6),
    "probabilities": st.dictionaries(st.text(max_size=5), st.floats(0.0, 1.0), max_size=3),
}).filter(bool)
good_segment = st.dictionaries(pool_names, st.text(max_size=20), max_size=4)
good_latency = st.one_of(st.none(), st.floats(0, 1e6), st.integers(0, 10_000))

# Values that must be rejected wherever a feature/label/score is expected...
bad_value = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 10**400, -(10**309), b"x", object(), [1.0], (1.0,),
                     {"a": 1}, {1, 2}, 1 + 2j, uuid.UUID(int=1), _Color.RED]),
    st.text(min_size=257, max_size=300),
)
# ...and values that are not plain but convertible (numpy scalars, subclasses, integers beyond 64 bits:
# the contract reads every feature number as a double): accepted, converted.
convertible = st.sampled_from([np.float64(0.5), np.int64(3), np.bool_(True), _Str("pixel"), _Float(2.5),
                               2**64, -(2**63) - 1, 10**300])
bad_name = st.sampled_from(["", "has space", "é", "x" * 129, "a\nb"])


@st.composite
def calls(draw: st.DrawFn) -> tuple[str | None, dict[str, Any]]:
    """A valid call, or a valid call with one argument broken (its name returned first)."""
    kw: dict[str, Any] = {"inputs": draw(good_inputs), "outputs": draw(good_outputs)}
    seg = draw(good_segment)
    if seg or draw(st.booleans()):
        kw["segment"] = seg
    lat = draw(good_latency)
    if lat is not None:
        kw["latency_ms"] = lat
    what = draw(st.sampled_from([None, None, "convert", "inputs", "inputs-name", "outputs", "segment", "latency_ms"]))
    bad: str | None = what
    if what == "convert":
        kw["inputs"] = {**kw["inputs"], draw(pool_names): draw(convertible)}
        bad = None
    elif what == "inputs":
        kw["inputs"] = {**kw["inputs"], draw(pool_names): draw(bad_value)}
    elif what == "inputs-name":
        kw["inputs"] = {**kw["inputs"], draw(bad_name): 1.0}
        bad = "inputs"
    elif what == "outputs":
        kw["outputs"] = draw(st.one_of(
            st.fixed_dictionaries({"label": bad_value.filter(lambda x: not isinstance(x, str))}),
            st.fixed_dictionaries({"score": bad_value}),
            st.fixed_dictionaries({"score": st.booleans()}),
            st.fixed_dictionaries({"label": st.just("x"), "value": bad_value}),
            st.just({}), st.just({"label": None}), st.just({"lbl": "x"}), st.just({"probabilities": {"a": 1.5}}),
            st.just("genuine"), st.just(["label"]),
        ))
    elif what == "segment":
        kw["segment"] = draw(st.one_of(
            st.fixed_dictionaries({"device": bad_value}), st.fixed_dictionaries({"device": st.integers()}),
            st.builds(lambda n: {n: "x"}, bad_name), st.just(["device"]), st.just("device"),
            st.dictionaries(names, st.just("x"), min_size=33, max_size=40),
        ))
    elif what == "latency_ms":
        kw["latency_ms"] = draw(st.sampled_from([-1.0, math.nan, math.inf, "12", [1.0], True, 10**400]))
    return bad, kw


def _outcome(fn: Any, kw: dict[str, Any]) -> tuple[str, str]:
    try:
        return "ok", fn(**kw)
    except EventValidationError as exc:
        return "bad", exc.field


def _root(field: str) -> str:
    return field.split(".")[0].split("[")[0]


def test_fast_path_accepts_only_what_the_contract_accepts_and_names_what_it_rejects(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    log = InferenceLogger("fast-model", "1", bootstrap=f"127.0.0.1:{_dead_port()}", spool_dir=spool_dir,
                          replay_timeout_ms=200, close_timeout_s=0.2,
                          producer_config={"reconnect.backoff.max.ms": 1000})
    checked = log._prediction_checked
    accepted: dict[str, dict[str, Any]] = {}
    counts = {"ok": 0, "bad": 0}

    @hsettings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(calls())
    def check(case: tuple[str | None, dict[str, Any]]) -> None:
        bad, kw = case
        # Twice: the first call may teach the fast path new names, the second one takes it.
        for _ in range(2):
            outcome, detail = _outcome(log.prediction, kw)
            ref, ref_detail = _outcome(
                lambda **k: checked(k.get("inputs"), k.get("outputs"), k.get("latency_ms"), k.get("segment"),
                                    None, None, None, None, None, None, None), kw)
            assert outcome == ref, (kw, detail, ref_detail)
            counts[outcome] += 1
            if bad is None:
                assert outcome == "ok", (kw, detail)
                accepted[detail] = kw
                accepted[ref_detail] = kw
            else:
                assert outcome == "bad", kw
                assert _root(detail) == bad, (detail, kw)
                assert _root(ref_detail) == bad, (ref_detail, kw)

    check()
    assert counts["ok"] > 100 and counts["bad"] > 100, counts
    log.close(0.2)  # nothing reachable: the purge reports spool every event

    sp = Spool(spool_dir, max_bytes=0)
    payloads: list[bytes] = []
    for _ in range(100_000):
        b = sp.read_batch(max_records=5000)
        payloads += [r.value for r in b.records if r.kind == KIND_PREDICTION]
        sp.commit(b.segment, b.end)
        if not b.records and not sp.has_pending():
            break
    sp.close()
    assert len(payloads) == len(accepted)
    for payload in payloads:
        ev = PredictionV1.model_validate(orjson.loads(payload))
        kw = accepted.pop(ev.prediction_id)
        raw = orjson.loads(payload)
        assert set(raw["inputs"]) == set(kw["inputs"])
        for k, val in kw["inputs"].items():
            want = val.item() if isinstance(val, np.generic) else val
            if type(want) is int and not -(2**63) <= want < 2**64:
                want = float(want)  # beyond orjson's integers: sent as the double the contract reads
            assert raw["inputs"][k] == want, (k, val, raw["inputs"][k])
        assert ev.outputs is not None
    assert not accepted


@pytest.mark.parametrize("latency", [None, 3.5])
def test_fast_path_output_is_byte_identical_to_the_full_check(tmp_path: Path, latency: float | None) -> None:
    """Same call through both paths: same event apart from ids and timestamp."""
    log = InferenceLogger("fast-model", "1", bootstrap=f"127.0.0.1:{_dead_port()}", spool_dir=tmp_path / "s",
                          replay_timeout_ms=200, close_timeout_s=0.2)
    inputs = {"a": 1.5, "b": "x", "c": None, "d": True, "e": 7}
    outputs = {"label": "genuine", "score": 0.9}
    for _ in range(2):
        log.prediction(inputs, outputs, latency_ms=latency, segment={"device": "p9"})
    log._prediction_checked(inputs, outputs, latency, {"device": "p9"}, None, None, None, None, None, None, None)
    log.close(0.2)
    sp = Spool(tmp_path / "s", max_bytes=0)
    b = sp.read_batch()
    sp.close()
    evs = [orjson.loads(r.value) for r in b.records]
    assert len(evs) == 3
    for ev in evs:
        del ev["event_id"], ev["prediction_id"], ev["ts"]
    assert evs[0] == evs[1] == evs[2]
    assert ("latency_ms" in evs[0]) == (latency is not None)
