"""The C encoder (inferwatch.native._encode) against its Python twin (inferwatch.sdk.encode.PyEncoder).

Properties, with hypothesis:
  * floats: ``format_float(x)`` is exactly ``orjson.dumps(x)`` (shortest round-trip digits, orjson's
    layout) and parses back to ``x``;
  * events: for any call, both encoders return None (take the checked path) or both return the
    same id and the same bytes (apart from the millisecond timestamp), and what they return is a
    valid ``PredictionV1``.
"""

from __future__ import annotations

import itertools
import math
import re
import struct
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from inferwatch.contract.events import PredictionV1
from inferwatch.native import load
from inferwatch.sdk.encode import PyEncoder, encoder_kind, make_encoder
from inferwatch.sdk.ids import IdGenerator

native = load("_encode")
pytestmark = pytest.mark.skipif(native is None, reason="the C accelerators are not built (make install)")

_TS = re.compile(rb'"ts":\d+,')


class _Str(str):
    pass


class _Float(float):
    pass


def _ids() -> IdGenerator:
    g = IdGenerator()
    g.prefix = "0123456789abcdef-"
    g.counter = itertools.count(1)
    return g


def _pair() -> tuple[Any, PyEncoder]:
    assert native is not None
    c_enc, py_enc = native.Encoder("m-1", "v2.0"), PyEncoder("m-1", "v2.0")
    _ids().subscribe(c_enc.use_ids)
    _ids().subscribe(py_enc.use_ids)
    return c_enc, py_enc


EDGE_FLOATS = [
    0.0, -0.0, 1.0, 0.5, 0.1, 0.93, 1 / 3, 1e-5, 9.999999999999999e-06, 1.0000000000000001e-05, 1e-4, 1e-7,
    2.0**53 - 1, 2.0**53, 2.0**53 + 2, 1e15, 1e15 + 0.5, 1e16, 9999999999999998.0, 1e21, 1e22, 5e-324,
    2.2250738585072014e-308, 1.7976931348623157e308, 1125899906842624.25, 4503599627370496.5, 1.5e-5, 123456.789,
]


def _bits_float(bits: int) -> float:
    return float(struct.unpack("<d", struct.pack("<Q", bits))[0])


any_finite = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(0, 2**64 - 1).map(_bits_float).filter(math.isfinite),
    st.builds(lambda n, d: n / 10**d, st.integers(-(10**17), 10**17), st.integers(0, 22)),
    st.builds(lambda e, k: math.nextafter(math.ldexp(1.0, e), k), st.integers(-30, 60),
              st.sampled_from([0.0, math.inf])),
    st.floats(width=32, allow_nan=False, allow_infinity=False),
)


@hsettings(max_examples=1000, deadline=None, derandomize=True)
@given(any_finite)
def test_float_is_formatted_exactly_like_orjson(x: float) -> None:
    assert native is not None
    out = native.format_float(x)
    assert out == orjson.dumps(x), x
    assert float(out) == x or (x == 0.0 and float(out) == 0.0)


@pytest.mark.parametrize("x", EDGE_FLOATS + [-v for v in EDGE_FLOATS])
def test_edge_floats(x: float) -> None:
    assert native is not None
    assert native.format_float(x) == orjson.dumps(x)


def test_float_sweep_of_random_bit_patterns() -> None:
    """A bounded sweep (fast) beyond hypothesis's examples: random bits and short decimals."""
    assert native is not None
    rng = np.random.default_rng(7)
    for x in rng.integers(0, 2**63, 20_000, dtype=np.uint64).view(np.float64).tolist():
        if math.isfinite(x):
            assert native.format_float(x) == orjson.dumps(x), x
    for x in (np.round(rng.uniform(-1e4, 1e4, 20_000), 3)).tolist():
        assert native.format_float(x) == orjson.dumps(x), x


names = st.from_regex(r"[A-Za-z0-9_.:/@+-]{1,12}", fullmatch=True)
bad_names = st.sampled_from(["", "has space", "é", "x" * 129, "a\nb", _Str("dev"), 3, None])
plain_scalar = st.one_of(
    any_finite, st.integers(-(2**63), 2**64 - 1), st.booleans(), st.none(),
    st.text(max_size=30), st.text(min_size=250, max_size=256),
)
odd_scalar = st.sampled_from([
    math.nan, math.inf, -math.inf, 2**64, -(2**63) - 1, b"x", [1.0], {"a": 1}, np.float64(0.5), np.int64(3),
    np.bool_(True), _Str("s"), _Float(1.5), "x" * 257, "\ud800", object(),
])
value = st.one_of(plain_scalar, plain_scalar, plain_scalar, odd_scalar)
inputs_st = st.one_of(
    st.dictionaries(names, value, max_size=16),
    st.dictionaries(st.one_of(names, bad_names), plain_scalar, max_size=4),
    st.sampled_from([None, [], "x", {}]),
)
outputs_st = st.one_of(
    st.fixed_dictionaries({}, optional={
        "label": st.one_of(st.text(max_size=20), odd_scalar),
        "score": st.one_of(any_finite, odd_scalar, st.integers(0, 3)),
        "value": any_finite,
        "probabilities": st.just({"a": 0.5}),
    }),
    st.sampled_from([None, {}, {"lbl": "x"}, "genuine", {_Str("label"): "x"}, {"label": None}]),
)
segment_st = st.one_of(
    st.none(), st.dictionaries(names, st.one_of(st.text(max_size=20), odd_scalar), max_size=4),
    st.dictionaries(names, st.just("x"), min_size=33, max_size=34), st.sampled_from(["", [], {}, "dev", {"a b": "x"}]),
)
latency_st = st.one_of(st.none(), st.floats(0, 1e6), st.sampled_from([-1.0, math.nan, math.inf, 1e300, 3, "1", True]))


@hsettings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(inputs_st, outputs_st, latency_st, segment_st)
@example({"a": 1.5, "b": "x\n\"é😀\x01", "c": None, "d": True, "e": -7, "f": 2**64 - 1}, {"label": "ok", "score": 0.9},
         12.5, {"device": "p9"})
def test_c_encoder_equals_python_twin(inputs: Any, outputs: Any, latency: Any, segment: Any) -> None:
    c_enc, py_enc = _pair()
    got = c_enc.prediction(inputs, outputs, latency, segment)
    want = py_enc.prediction(inputs, outputs, latency, segment)
    if want is None:
        assert got is None
        return
    assert got is not None
    assert got[0] == want[0]
    assert _TS.sub(b'"ts":0,', got[1]) == _TS.sub(b'"ts":0,', want[1])
    ev = PredictionV1.model_validate(orjson.loads(got[1]))
    assert ev.event_id == ev.prediction_id == got[0]


def test_ids_are_shared_with_the_generator_and_timestamps_are_now() -> None:
    import time

    g = _ids()
    assert native is not None
    enc = native.Encoder("m", "1")
    g.subscribe(enc.use_ids)
    t0 = time.time_ns() // 1_000_000
    eid, payload = enc.prediction({"a": 1.0}, {"score": 0.5}, None, None)
    t1 = time.time_ns() // 1_000_000
    assert eid == "0123456789abcdef-1"
    assert g.next_id() == "0123456789abcdef-2"  # the checked path's next id does not repeat it
    ev = orjson.loads(payload)
    assert t0 <= ev["ts"] <= t1
    assert list(ev) == ["schema_version", "event_id", "prediction_id", "ts", "model", "model_version", "inputs",
                        "outputs"]


def test_make_encoder_prefers_the_c_module() -> None:
    assert encoder_kind(make_encoder("m", "1", IdGenerator())) == "c"


def test_encoder_follows_the_id_generator_after_a_fork_reset() -> None:
    assert native is not None
    g = IdGenerator()
    enc = native.Encoder("m", "1")
    g.subscribe(enc.use_ids)
    before = enc.prediction({}, {"score": 0.5}, None, None)[0]
    g._reset()  # what a forked child runs: new prefix, new counter
    after = enc.prediction({}, {"score": 0.5}, None, None)[0]
    assert before.split("-")[0] != after.split("-")[0] and after == f"{g.prefix}1"
