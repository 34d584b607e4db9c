"""The log-bucket sketch: quantiles within the relative bound, merge equals the sketch of the union."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as hs

from inferwatch.processor.core.logbins import FEATURE_BINS, LATENCY_BINS, LogBins

values = hs.lists(hs.floats(min_value=0.01, max_value=1e6, allow_nan=False), min_size=1, max_size=300)


def sketch(bins: LogBins, x: list[float]) -> np.ndarray:
    return np.bincount(bins.index(np.asarray(x, dtype=float)), minlength=bins.size)


@given(values, values)
@settings(max_examples=200, deadline=None)
def test_merge_of_halves_equals_whole_within_bound(a: list[float], b: list[float]) -> None:
    merged = sketch(LATENCY_BINS, a) + sketch(LATENCY_BINS, b)
    assert np.array_equal(merged, sketch(LATENCY_BINS, a + b))
    truth = np.sort(np.asarray(a + b))
    for q in (0.0, 0.5, 0.95, 0.99, 1.0):
        est = LATENCY_BINS.quantiles(merged, [q])[0]
        exact = truth[int(np.floor(q * (len(truth) - 1)))]
        assert abs(est - exact) <= LATENCY_BINS.alpha * exact * (1 + 1e-9)


@given(hs.lists(hs.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=200))
@settings(max_examples=200, deadline=None)
def test_signed_bins_are_monotone_and_within_bound(x: list[float]) -> None:
    arr = np.asarray(x)
    idx = FEATURE_BINS.index(arr)
    order = np.argsort(arr, kind="stable")
    assert np.all(np.diff(idx[order]) >= 0)
    rep = FEATURE_BINS.values()[idx]
    big = np.abs(arr) >= FEATURE_BINS.min_value
    assert np.all(np.abs(rep[big] - arr[big]) <= FEATURE_BINS.alpha * np.abs(arr[big]) * (1 + 1e-9))
