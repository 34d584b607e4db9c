"""Embedding drift: unbiased MMD² with an RBF kernel between a window's embedding sample and the
reference sample, with a permutation threshold.

Samples are bottom-k samples (the k events with the smallest random priority), which are uniform
and mergeable: the bottom-k of a union is the bottom-k of the bottom-k's. The kernel bandwidth is
the median pairwise distance of the pooled sample (the median heuristic). The threshold is the
95th percentile of MMD² over random re-splits of the pooled sample (a permutation test): the
statistic exceeds it with probability 5% when both samples come from the same distribution.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArr = npt.NDArray[np.float64]


def _sqdist(x: FloatArr) -> FloatArr:
    sq = np.einsum("ij,ij->i", x, x)
    d = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
    return np.maximum(d, 0.0)


def _mmd2_from_kernel(k: FloatArr, idx_x: npt.NDArray[np.int64], idx_y: npt.NDArray[np.int64]) -> float:
    m, n = len(idx_x), len(idx_y)
    kxx = k[np.ix_(idx_x, idx_x)]
    kyy = k[np.ix_(idx_y, idx_y)]
    kxy = k[np.ix_(idx_x, idx_y)]
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def mmd_test(
    current: FloatArr, reference: FloatArr, permutations: int = 100, seed: int = 0
) -> tuple[float, float] | None:
    """``(mmd2, threshold)``: unbiased MMD² of the two samples and its 95% permutation threshold.

    None when a sample has fewer than 2 rows or the dimensions differ.
    """
    x = np.asarray(current, dtype=np.float64)
    y = np.asarray(reference, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or len(x) < 2 or len(y) < 2 or x.shape[1] != y.shape[1]:
        return None
    z = np.vstack([x, y])
    d2 = _sqdist(z)
    med = float(np.median(d2[np.triu_indices(len(z), k=1)]))
    k = np.exp(-d2 / (med if med > 0 else 1.0))
    m = len(x)
    all_idx = np.arange(len(z))
    stat = _mmd2_from_kernel(k, all_idx[:m], all_idx[m:])
    rng = np.random.default_rng(seed)
    null = np.empty(permutations)
    for i in range(permutations):
        p = rng.permutation(len(z))
        null[i] = _mmd2_from_kernel(k, p[:m], p[m:])
    return stat, float(np.quantile(null, 0.95))


def bottom_k(u: FloatArr, rows: FloatArr, k: int) -> tuple[FloatArr, FloatArr]:
    """Keep the ``k`` rows with the smallest priorities ``u`` (a uniform, mergeable sample)."""
    if len(u) <= k:
        return u, rows
    keep = np.argpartition(u, k - 1)[:k]
    return u[keep], rows[keep]
