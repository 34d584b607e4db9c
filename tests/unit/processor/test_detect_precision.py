"""Values the reference stored at lower precision than live values arrive with.

The reference sample is kept as float32 (half the memory in the changelog); live values arrive as
float64. A constant input such as an LLM's ``temperature: 0.2`` is 0.20000000298 in the reference
and 0.2 live, so every live value used to rank below the whole reference: the normal score sat at
its floor and the CUSUM crossed within tens of events on traffic that never changed (the demo's
essay grader alerted on ``input.temperature`` in every segment before its incident)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.unit.processor.detect_helpers import REF_END, T0, columns, detectors, feed


@pytest.mark.parametrize("value", [0.2, 0.1, 1 / 3, 123.456789, 1e-7])
def test_a_constant_input_that_float32_cannot_hold_exactly_never_alarms(value: float) -> None:
    rng = np.random.default_rng(5)

    def make(k: int, ts: np.ndarray) -> Any:
        seg = rng.choice(["us", "eu"], k)
        return columns(ts, num={"temperature": np.full(k, value), "tokens": rng.normal(800, 200, k)},
                       segments={"region": list(seg)})

    det = detectors()
    feed(det, make, 3000, T0)
    live = feed(det, make, 5000, REF_END)
    assert [(f.slot, f.metric) for f in live if f.status == "detected"] == []
