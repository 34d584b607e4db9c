"""Drift statistics on histograms and samples: PSI, Jensen–Shannon distance, Kolmogorov–Smirnov, chi-square.

All functions are pure numpy/scipy on arrays. Histogram inputs are raw counts on the same bins.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from scipy import special
from scipy import stats as _st

try:  # what scipy.stats.kstwo.sf evaluates inside the support
    from scipy.stats._ksstats import _kolmogn
except ImportError:  # pragma: no cover - a scipy that moved it
    _kolmogn = None

PSI_EPS = 1e-4
"""Shares below this are clipped to it in PSI, so an empty bin does not make PSI infinite."""

FloatArr = npt.NDArray[np.float64]


def _shares(counts: npt.ArrayLike) -> FloatArr:
    c = np.asarray(counts, dtype=np.float64)
    s = c.sum()
    return c / s if s > 0 else np.zeros_like(c)


def psi(reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike, eps: float = PSI_EPS) -> float:
    """Population stability index: ``sum((q - p) * ln(q / p))`` over bins, shares clipped at ``eps``."""
    p = np.clip(_shares(reference_counts), eps, None)
    q = np.clip(_shares(current_counts), eps, None)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike) -> float:
    """Jensen–Shannon distance (base 2, in [0, 1]): the square root of the JS divergence."""
    p = _shares(reference_counts)
    q = _shares(current_counts)
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0)
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0)
    d = 0.5 * (kl_p.sum() + kl_q.sum())
    return float(math.sqrt(max(d, 0.0)))


def ks_pvalue(d: float, n1: int, n2: int) -> float:
    """Two-sided KS p-value for statistic ``d`` and sample sizes ``n1``, ``n2``: scipy's asymptotic
    method (``ks_2samp(..., method="asymp")``), the Kolmogorov distribution at ``round(n1 n2/(n1+n2))``."""
    if n1 == 0 or n2 == 0:
        return float("nan")
    en = n1 * n2 / (n1 + n2)
    return float(np.clip(_kstwo_sf(float(d), int(np.round(en))), 0.0, 1.0))


@lru_cache(maxsize=65536)
def _kstwo_sf(d: float, n: int) -> float:
    """``scipy.stats.kstwo.sf(d, n)`` without the distribution machinery around it (~0.5 ms a call,
    paid for every feature of every snapshot): the same support rules, then the same scipy function
    that ``kstwo`` evaluates inside its support (equality is tested in ``test_drift_stats.py``)."""
    if _kolmogn is None:  # a scipy without the private helper: the public (slower) call
        return float(_st.kstwo.sf(d, n))
    if n <= 0 or math.isnan(d):
        return float("nan")
    if d <= 0.5 / n:  # at or below the support's lower end
        return 1.0
    if d >= 1.0:
        return 0.0
    return float(_kolmogn(n, np.float64(d), cdf=False))


def ks_2samp(a: npt.ArrayLike, b: npt.ArrayLike) -> tuple[float, float]:
    """Exact two-sample KS statistic on samples (equals ``scipy.stats.ks_2samp(a, b).statistic``) and the
    asymptotic two-sided p-value (equals ``scipy.stats.ks_2samp(a, b, method="asymp").pvalue``)."""
    x = np.sort(np.asarray(a, dtype=np.float64))
    y = np.sort(np.asarray(b, dtype=np.float64))
    allv = np.concatenate([x, y])
    cdf1 = np.searchsorted(x, allv, side="right") / len(x)
    cdf2 = np.searchsorted(y, allv, side="right") / len(y)
    d = float(np.max(np.abs(cdf1 - cdf2)))
    return d, ks_pvalue(d, len(x), len(y))


def ks_hist(reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike) -> tuple[float, float]:
    """KS statistic from two histograms on the same ordered bins: the largest CDF gap at bin edges.

    This is the exact KS statistic of the samples after rounding each value to its bin, and a
    lower bound of the KS of the raw samples (the gap can peak inside a bin). On the processor's
    5%-relative fine grid the difference is small; the p-value uses the asymptotic distribution.
    """
    r = np.asarray(reference_counts, dtype=np.float64)
    c = np.asarray(current_counts, dtype=np.float64)
    n1, n2 = int(r.sum()), int(c.sum())
    if n1 == 0 or n2 == 0:
        return float("nan"), float("nan")
    d = float(np.max(np.abs(np.cumsum(r) / n1 - np.cumsum(c) / n2)))
    return d, ks_pvalue(d, n2, n1)


def chi2_pvalue(reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike, eps: float = PSI_EPS) -> tuple[float, float]:
    """Chi-square goodness of fit of the current category counts to the reference shares.

    Expected counts are ``n * p`` with reference shares clipped at ``eps`` (a category never seen in
    the reference would otherwise have zero expectation) and renormalised. Equals
    ``scipy.stats.chisquare(current, f_exp=expected)``; returns ``(statistic, pvalue)``.
    """
    c = np.asarray(current_counts, dtype=np.float64)
    n = c.sum()
    if n == 0 or len(c) < 2:
        return float("nan"), float("nan")
    p = np.clip(_shares(reference_counts), eps, None)
    p = p / p.sum()
    exp = n * p
    stat = float(np.sum((c - exp) ** 2 / exp))
    return stat, float(special.chdtrc(len(c) - 1, stat))


def coarse_groups(reference_fine: npt.NDArray[np.int64], n_bins: int = 10) -> npt.NDArray[np.int64]:
    """Map each fine bin to one of ``n_bins`` reference-quantile bins (deciles by default).

    Boundaries are where the reference's cumulative share crosses k/n_bins; fine bins holding no
    reference mass still map to their neighbouring group, so the coarse bins cover the whole line
    (values below/above anything in the reference land in the first/last group).
    """
    cum = np.cumsum(reference_fine)
    total = cum[-1] if len(cum) else 0
    if total <= 0:
        return np.zeros(len(reference_fine), dtype=np.int64)
    cuts = np.searchsorted(cum, total * np.arange(1, n_bins) / n_bins, side="left")
    cuts = np.unique(cuts)
    return np.searchsorted(cuts, np.arange(len(reference_fine)), side="left").astype(np.int64)


def regroup(fine: npt.NDArray[np.int64], groups: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Sum fine-bin counts into the coarse groups of :func:`coarse_groups`."""
    out = np.bincount(groups, weights=fine, minlength=int(groups.max()) + 1 if len(groups) else 0)
    return out.astype(np.float64, copy=False)


class RefHist:
    """What the drift of any histogram against one reference histogram needs from the reference,
    computed once: its coarse groups (:func:`coarse_groups`), its regrouped counts, its size and its
    normalised CDF on the fine grid (for :func:`ks_hist`)."""

    __slots__ = ("cdf", "fine", "groups", "n", "n_groups", "rc")

    def __init__(self, fine: npt.NDArray[np.int64]) -> None:
        self.fine = fine
        self.groups = coarse_groups(fine)
        self.rc = regroup(fine, self.groups)
        self.n_groups = len(self.rc)
        r = np.asarray(fine, dtype=np.float64)
        self.n = int(r.sum())
        self.cdf = np.cumsum(r) / self.n if self.n else r


def hist_drift_many(refs: list[RefHist], current: list[npt.NDArray[np.int64]]) -> list[tuple[float, float, float, float]]:
    """``(psi, js_distance, ks, ks_pvalue)`` of each ``current[i]`` against ``refs[i]`` (every pair
    non-empty), bit for bit what :func:`psi`, :func:`js_distance` and :func:`ks_hist` give on the
    regrouped / fine counts one pair at a time: the same element-wise operations, and every sum is
    a row reduction of a C-contiguous ``[k, bins]`` array of pairs with the same number of bins
    (numpy reduces each row as it reduces a 1-D array of that length)."""
    k = len(refs)
    if k == 0:
        return []
    fb = len(current[0])
    cur = np.empty((k, fb), dtype=np.float64)
    for i, c in enumerate(current):
        cur[i] = c
    # KS on the fine grid: CDF gaps at bin edges
    n2 = cur.sum(axis=1)
    ccdf = np.cumsum(cur, axis=1) / n2[:, None]
    rcdf = np.stack([r.cdf for r in refs])
    ks = np.max(np.abs(rcdf - ccdf), axis=1).tolist()
    out: list[tuple[float, float, float, float]] = [(0.0, 0.0, 0.0, 0.0)] * k
    # regroup every current histogram into its reference's groups with one bincount (feature-major
    # keys: each coarse cell still sums its fine bins in bin order)
    width = max(r.n_groups for r in refs)
    gkey = np.stack([r.groups for r in refs]) + (np.arange(k, dtype=np.int64) * width)[:, None]
    cc_all = np.bincount(gkey.ravel(), weights=cur.ravel(), minlength=k * width).reshape(k, width)
    by_len: dict[int, list[int]] = {}
    for i, r in enumerate(refs):
        by_len.setdefault(r.n_groups, []).append(i)
    n2i = n2.astype(np.int64).tolist()
    for g, idx in by_len.items():
        rc = np.stack([refs[i].rc for i in idx])
        cc = np.ascontiguousarray(cc_all[idx, :g])
        p_sh = rc / rc.sum(axis=1)[:, None]
        q_sh = cc / cc.sum(axis=1)[:, None]
        p = np.maximum(p_sh, PSI_EPS)
        q = np.maximum(q_sh, PSI_EPS)
        psis = np.sum((q - p) * np.log(q / p), axis=1).tolist()
        m = 0.5 * (p_sh + q_sh)
        with np.errstate(divide="ignore", invalid="ignore"):
            kl_p = np.where(p_sh > 0, p_sh * np.log2(p_sh / m), 0.0)
            kl_q = np.where(q_sh > 0, q_sh * np.log2(q_sh / m), 0.0)
        d = (0.5 * (kl_p.sum(axis=1) + kl_q.sum(axis=1))).tolist()
        for j, i in enumerate(idx):
            out[i] = (psis[j], math.sqrt(max(d[j], 0.0)), ks[i], ks_pvalue(ks[i], n2i[i], refs[i].n))
    return out
