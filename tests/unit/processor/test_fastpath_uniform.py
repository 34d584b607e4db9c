"""The uniform-layout group builder (every row with the same input keys in the same order: values
reshaped and taken by column) against the general scatter builder, and the engine's fast path on
such traffic against the exact path."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inferwatch.native import load
from inferwatch.native.prediction_columns import decode_predictions_py
from inferwatch.processor.core import fastpath
from inferwatch.processor.core.raw_events import Raw
from inferwatch.processor.settings import ProcessorSettings
from tests.unit.processor.mixed_traffic import T0
from tests.unit.processor.test_fastpath_parity import _fixed_clock, _run

__all__ = ["_fixed_clock"]  # the autouse fixture pinning the snapshot clock

_value = st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False), st.integers(-5, 5), st.booleans(),
                   st.sampled_from(["a", "b", "1", "2.5"]))


@st.composite
def _uniform_events(draw: st.DrawFn) -> list[bytes]:
    """Events whose ``inputs`` have the same keys in the same order (values of any kind)."""
    n = draw(st.integers(1, 25))
    keys = draw(st.lists(st.sampled_from(["f1", "f2", "f3", "Z", "0k", "m"]), min_size=1, max_size=5, unique=True))
    kinds = {k: draw(st.sampled_from(["num", "str", "any"])) for k in keys}
    num = st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False), st.integers(-5, 5))
    strs = st.one_of(st.none(), st.sampled_from(["a", "b", "1", "2.5"]))
    gen = {"num": num, "str": strs, "any": _value}
    out = []
    for i in range(n):
        ev: dict[str, Any] = {"schema_version": "prediction.v1", "event_id": f"e{i}", "prediction_id": f"p{i}",
                              "ts": T0 + draw(st.integers(0, 12_000)), "model": draw(st.sampled_from(["m", "n"])),
                              "model_version": "1", "inputs": {k: draw(gen[kinds[k]]) for k in keys},
                              "outputs": {"label": draw(st.sampled_from(["yes", "no"]))},
                              "segment": {"dev": draw(st.sampled_from(["x", "y"]))}}
        out.append(orjson.dumps(ev))
    return out


def _same(a: Any, b: Any) -> None:
    """Equal layouts: same arrays (values, NaN positions, dtypes) or both None."""
    assert (a is None) == (b is None)
    if a is None:
        return
    for x, y in zip(a, b, strict=True):
        if x is None or y is None:
            assert x is None and y is None
            continue
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_uniform_events(), st.integers(1, 6), st.data())
def test_uniform_layout_equals_scatter(values: list[bytes], max_features: int, data: st.DataObject) -> None:
    decoders = [decode_predictions_py]
    mod = load("_decode")
    if mod is not None:
        from inferwatch.native.prediction_columns import decode_predictions
        decoders.append(decode_predictions)
    rows = np.array(sorted(data.draw(st.sets(st.integers(0, len(values) - 1), min_size=1))), dtype=np.int64)
    for dec in decoders:
        b = fastpath.Batch(dec(values))
        span = fastpath._uniform_span(b.cols, rows)
        assert span is not None
        _same(fastpath._group_uniform(b, rows, *span, max_features), fastpath._group_scatter(b, rows, max_features))


def test_uniform_span_refuses_other_layouts() -> None:
    def ev(inputs: dict[str, Any]) -> bytes:
        return orjson.dumps({"schema_version": "prediction.v1", "event_id": "e", "prediction_id": "p", "ts": T0,
                             "model": "m", "model_version": "1", "inputs": inputs, "outputs": {"label": "y"}})
    rows = np.arange(2, dtype=np.int64)
    for pair in ([{"a": 1, "b": 2}, {"b": 2, "a": 1}], [{"a": 1}, {"a": 1, "b": 2}], [{}, {}]):
        b = fastpath.Batch(decode_predictions_py([ev(p) for p in pair]))
        assert fastpath._uniform_span(b.cols, rows) is None
    b = fastpath.Batch(decode_predictions_py([ev({"a": 1, "b": 2})] * 3))
    span = fastpath._uniform_span(b.cols, np.array([0, 2], dtype=np.int64))
    assert span is not None and span[1] == 2


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_uniform_events(), st.integers(1, 3))
def test_uniform_traffic_same_outputs(values: list[bytes], parts: int) -> None:
    cfg = ProcessorSettings(window_s=5, lateness_s=0, baseline_s=5, min_count=1, min_reference_count=1)
    raws = [Raw(v, "t", 0, i) for i, v in enumerate(values)]
    step = -(-len(raws) // parts)
    batches = [("p", raws[i:i + step]) for i in range(0, len(raws), step)]
    assert _run(True, batches, cfg) == _run(False, batches, cfg)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["dev", "reg", "plan"]), min_size=1, max_size=3, unique=True),
       st.lists(st.lists(st.sampled_from(["x", "y", "z", "w"]), min_size=3, max_size=3), min_size=1, max_size=30),
       st.data())
def test_row_dicts_same_keys_equal_per_row_maps(keys: list[str], vals: list[list[str]], data: st.DataObject) -> None:
    values = [orjson.dumps({"schema_version": "prediction.v1", "event_id": f"e{i}", "prediction_id": f"p{i}",
                            "ts": T0, "model": "m", "model_version": "1", "inputs": {"a": 1},
                            "outputs": {"label": "y"}, "segment": dict(zip(keys, v, strict=False))})
              for i, v in enumerate(vals)]
    rows = np.array(sorted(data.draw(st.sets(st.integers(0, len(values) - 1), min_size=1))), dtype=np.int64)
    c = decode_predictions_py(values)
    got = fastpath._row_dicts(fastpath.Batch(c), c.seg_off, c.seg_key, c.seg_val, rows)
    want = [{c.names[c.seg_key[j]]: c.strings[c.seg_val[j]] for j in range(c.seg_off[r], c.seg_off[r + 1])}
            for r in rows.tolist()]
    assert got == want and all(list(g) == list(w) for g, w in zip(got, want, strict=True))
    by_map: dict[tuple[tuple[str, str], ...], int] = {}
    for d in got:  # rows with the same map share one dict
        assert by_map.setdefault(tuple(d.items()), id(d)) == id(d)
