"""``LogBins.index`` (in place, no ``np.where``) equals the straightforward formulation, bin for
bin, on both grids: zeros, signed zeros, the smallest value, infinities, strided and 2-D inputs."""

from __future__ import annotations

import numpy as np
import pytest

from inferwatch.processor.core.logbins import FEATURE_BINS, LATENCY_BINS, LogBins


def _reference(b: LogBins, x: np.ndarray) -> np.ndarray:
    a = np.abs(x)
    with np.errstate(invalid="ignore"):
        k = np.ceil(np.log(np.maximum(a, b.min_value)) / b._log_gamma).astype(np.int64)
    k = np.clip(k, b._kmin, b._kmax) - (b._kmin - 1)
    k[a < b.min_value] = 0
    return np.where(x < 0, b.half - k, b.half + k) if b.signed else k


@pytest.mark.parametrize("bins", [FEATURE_BINS, LATENCY_BINS])
def test_index_equals_reference(bins: LogBins) -> None:
    rng = np.random.default_rng(7)
    for _ in range(60):
        x = rng.normal(0, 10.0 ** rng.integers(-8, 15), size=int(rng.integers(0, 2000)))
        for value, share in ((0.0, 0.1), (-0.0, 0.05), (bins.min_value, 0.05), (-bins.min_value, 0.05), (np.inf, 0.02)):
            x[rng.random(len(x)) < share] = value
        if not bins.signed:
            x = np.abs(x)
        for arr in (x, x.reshape(-1, 1), x[::2]):
            with np.errstate(invalid="ignore"):
                got = bins.index(arr)
            want = _reference(bins, arr)
            assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want)
