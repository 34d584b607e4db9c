"""Every drift statistic against scipy/numpy on the same data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st
from scipy.spatial.distance import jensenshannon

from inferwatch.processor.core import drift_stats


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1)


def test_psi_equals_direct_numpy(rng: np.random.Generator) -> None:
    ref = rng.integers(1, 100, 10)
    cur = rng.integers(1, 100, 10)
    p, q = ref / ref.sum(), cur / cur.sum()
    assert drift_stats.psi(ref, cur) == pytest.approx(np.sum((q - p) * np.log(q / p)), rel=1e-12)
    assert drift_stats.psi(ref, ref) == pytest.approx(0.0, abs=1e-12)


def test_psi_empty_bin_is_finite() -> None:
    assert np.isfinite(drift_stats.psi([10, 0, 10], [0, 10, 10]))


def test_js_distance_equals_scipy(rng: np.random.Generator) -> None:
    ref = rng.integers(0, 50, 12)
    cur = rng.integers(0, 50, 12)
    assert drift_stats.js_distance(ref, cur) == pytest.approx(jensenshannon(ref / ref.sum(), cur / cur.sum(), base=2), rel=1e-9)


@pytest.mark.parametrize("n1,n2,shift", [(50, 80, 0.0), (300, 200, 0.3), (2000, 1500, 0.05)])
def test_ks_exact_equals_scipy(rng: np.random.Generator, n1: int, n2: int, shift: float) -> None:
    a = rng.normal(0, 1, n1)
    b = rng.normal(shift, 1, n2)
    d, p = drift_stats.ks_2samp(a, b)
    assert d == pytest.approx(st.ks_2samp(a, b).statistic, abs=1e-12)
    assert p == pytest.approx(st.ks_2samp(a, b, method="asymp").pvalue, rel=1e-9)


def test_ks_with_ties_equals_scipy(rng: np.random.Generator) -> None:
    a = rng.integers(0, 5, 100).astype(float)
    b = rng.integers(1, 6, 120).astype(float)
    assert drift_stats.ks_2samp(a, b)[0] == pytest.approx(st.ks_2samp(a, b).statistic, abs=1e-12)


def test_ks_hist_is_exact_on_binned_values_and_bounds_raw(rng: np.random.Generator) -> None:
    a = rng.normal(0, 1, 500)
    b = rng.normal(0.5, 1, 400)
    edges = np.linspace(-5, 5, 201)
    ha, hb = np.histogram(a, edges)[0], np.histogram(b, edges)[0]
    d, _ = drift_stats.ks_hist(ha, hb)
    # exact on the values rounded to their bin, never above the raw-sample statistic
    ra, rb = np.digitize(a, edges), np.digitize(b, edges)
    assert d == pytest.approx(st.ks_2samp(ra, rb).statistic, abs=1e-12)
    assert d <= st.ks_2samp(a, b).statistic + 1e-12


def test_chi2_equals_scipy(rng: np.random.Generator) -> None:
    ref = rng.integers(10, 100, 6).astype(float)
    cur = rng.integers(10, 100, 6).astype(float)
    stat, p = drift_stats.chi2_pvalue(ref, cur)
    want = st.chisquare(cur, f_exp=cur.sum() * ref / ref.sum())
    assert stat == pytest.approx(want.statistic, rel=1e-9)
    assert p == pytest.approx(want.pvalue, rel=1e-9)


def test_coarse_groups_are_reference_deciles(rng: np.random.Generator) -> None:
    fine = rng.integers(0, 20, 500)
    g = drift_stats.coarse_groups(fine, 10)
    coarse = drift_stats.regroup(fine, g)
    assert len(coarse) <= 10 and coarse.sum() == fine.sum()
    assert np.all(np.diff(g) >= 0)  # groups are contiguous ranges of fine bins
    assert coarse.max() <= fine.sum() / 10 + fine.max()  # no group holds much more than a decile


def test_ks_pvalue_equals_scipy_kstwo_exactly() -> None:
    """The direct evaluation behind ``ks_pvalue`` gives scipy's ``kstwo.sf`` bit for bit, across the
    branches of scipy's algorithm (small/large n, tails, support edges)."""
    import math
    import warnings

    from inferwatch.processor.core.drift_stats import _kstwo_sf

    ds = [0.0, 1e-9, 0.001, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.49, 0.5, 0.7, 0.99, 1.0]
    ns = [0, 1, 2, 3, 5, 10, 50, 139, 140, 141, 500, 2000, 30_000, 150_000]
    for n in ns:
        for d in [*ds, 0.5 / n if n else 0.25, 1.0 / n if n else 0.3]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                want = float(st.kstwo.sf(d, float(n)))
            got = _kstwo_sf(float(d), n)
            assert (math.isnan(want) and math.isnan(got)) or got == want, (d, n, got, want)


def test_hist_drift_many_is_bit_identical_to_one_pair_at_a_time() -> None:
    """The vectorised numeric drift gives exactly (==, not approx) what psi/js_distance/ks_hist give on
    each pair alone, for references whose coarse grids have different numbers of groups."""
    from inferwatch.processor.core.drift_stats import (
        RefHist,
        coarse_groups,
        hist_drift_many,
        js_distance,
        ks_hist,
        psi,
        regroup,
    )
    from inferwatch.processor.core.logbins import FEATURE_BINS

    rng = np.random.default_rng(11)
    fb = FEATURE_BINS.size
    for trial in range(30):
        k = int(rng.integers(1, 20))
        refs, curs = [], []
        for _ in range(k):
            r = np.zeros(fb, dtype=np.int64)
            # a few distinct values only sometimes: fewer than 10 coarse groups
            n_ref = int(rng.integers(1, 4)) if rng.random() < 0.3 else 2000
            r += np.bincount(FEATURE_BINS.index(rng.normal(0, 1 + trial % 3, n_ref).round(int(rng.integers(0, 3)))),
                             minlength=fb)
            c = np.bincount(FEATURE_BINS.index(rng.normal(rng.random(), 1, int(rng.integers(1, 5000)))), minlength=fb)
            refs.append(RefHist(r))
            curs.append(c.astype(np.int64))
        got = hist_drift_many(refs, curs)
        for rh, c, g in zip(refs, curs, got, strict=True):
            grp = coarse_groups(rh.fine)
            rc, cc = regroup(rh.fine, grp), regroup(c, grp)
            assert g == (psi(rc, cc), js_distance(rc, cc), *ks_hist(rh.fine, c))
