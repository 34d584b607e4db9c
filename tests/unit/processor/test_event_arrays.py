"""The vectorised column paths equal the one-feature-at-a-time paths they replace."""

from __future__ import annotations

import dataclasses

import numpy as np
import orjson

from inferwatch.processor.core.accumulator import Kind, WindowAcc
from inferwatch.processor.core.event_arrays import build_columns
from inferwatch.processor.core.raw_events import Raw, decode_predictions
from inferwatch.testing.scenarios import wide_event


def _events(n: int = 400) -> list:  # type: ignore[type-arg]
    rng = np.random.default_rng(3)
    raws = [wide_event(i, 1000 + i, rng) for i in range(n)]
    # some missing values and a row without a segment key
    d = orjson.loads(raws[5])
    d["inputs"]["x3"] = None
    del d["segment"]["plan"]
    raws[5] = orjson.dumps(d)
    good, bad = decode_predictions([Raw(r, "p", 0, i) for i, r in enumerate(raws)])
    assert not bad
    return [e for _, e in good]


def test_numeric_matrix_equals_per_feature_accumulation() -> None:
    cols = build_columns(_events())
    assert cols.matrix is not None and len(cols.matrix[0]) == 15
    assert np.isnan(cols.num["x3"][5])
    a = WindowAcc("m", "1", 0, 60_000)
    a.add_columns(cols)
    b = WindowAcc("m", "1", 0, 60_000)
    b.add_columns(dataclasses.replace(cols, matrix=None))
    assert a.slots == b.slots and a.order == b.order
    for kind, name, arr in a.arrays():
        assert np.array_equal(arr, b.parts[kind][name]), (kind, name)
    assert a.get("x3", 0, Kind.MISSING) == 1 and a.get("x3", 0, Kind.COUNT) == 399


def test_mixed_column_falls_back_to_categorical() -> None:
    evs = _events(50)
    raw = orjson.loads(wide_event(99, 2000, np.random.default_rng(1)))
    raw["inputs"]["x0"] = "oops"
    good, _ = decode_predictions([Raw(orjson.dumps(raw), "p", 0, 99)])
    cols = build_columns([*evs, good[0][1]])
    assert "x0" in cols.cat and "x0" not in cols.num and "x1" in cols.num
