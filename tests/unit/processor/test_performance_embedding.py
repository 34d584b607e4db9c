"""Performance metrics against direct computations; embedding MMD detects a shift and not noise."""

from __future__ import annotations

import numpy as np
import pytest

from inferwatch.processor.core import performance
from inferwatch.processor.core.embedding import bottom_k, mmd_test


def test_classification_matches_direct_counts() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 500)
    p = np.where(rng.random(500) < 0.8, y, rng.integers(0, 3, 500))
    conf = np.zeros((3, 3), dtype=np.int64)
    np.add.at(conf, (y, p), 1)
    m = performance.classification(conf)
    assert m["perf.accuracy"] == pytest.approx(np.mean(y == p))
    prec = [np.mean(y[p == k] == k) for k in range(3)]
    rec = [np.mean(p[y == k] == k) for k in range(3)]
    f1 = [2 * a * b / (a + b) for a, b in zip(prec, rec, strict=True)]
    assert m["perf.precision"] == pytest.approx(np.mean(prec))
    assert m["perf.recall"] == pytest.approx(np.mean(rec))
    assert m["perf.f1"] == pytest.approx(np.mean(f1))


def test_auc_from_hist_equals_pairwise_definition() -> None:
    rng = np.random.default_rng(4)
    pos = rng.beta(5, 2, 300)
    neg = rng.beta(2, 5, 400)
    hp = np.bincount(performance.auc_bin(pos), minlength=performance.AUC_BINS)
    hn = np.bincount(performance.auc_bin(neg), minlength=performance.AUC_BINS)
    bp, bn = performance.auc_bin(pos), performance.auc_bin(neg)
    want = (np.sum(bp[:, None] > bn[None, :]) + 0.5 * np.sum(bp[:, None] == bn[None, :])) / (300 * 400)
    assert performance.auc_from_hist(hp, hn) == pytest.approx(want)
    assert performance.auc_from_hist(hp, np.zeros_like(hn)) is None


def test_regression_metrics() -> None:
    err = np.array([1.0, -2.0, 3.0])
    m = performance.regression(3, float(np.abs(err).sum()), float((err**2).sum()))
    assert m["perf.mae"] == pytest.approx(2.0)
    assert m["perf.rmse"] == pytest.approx(np.sqrt(14 / 3))


def test_mmd_flags_shift_not_same_distribution() -> None:
    rng = np.random.default_rng(5)
    ref = rng.normal(0, 1, (200, 8))
    same = rng.normal(0, 1, (200, 8))
    shifted = rng.normal(0.5, 1, (200, 8))
    s_same, th_same = mmd_test(same, ref, 100)  # type: ignore[misc]
    s_shift, th_shift = mmd_test(shifted, ref, 100)  # type: ignore[misc]
    assert s_same <= th_same
    assert s_shift > th_shift


def test_bottom_k_is_mergeable() -> None:
    rng = np.random.default_rng(6)
    u = rng.random(100)
    rows = np.arange(100, dtype=float)[:, None]
    ua, ra = bottom_k(u[:50], rows[:50], 10)
    ub, rb = bottom_k(u[50:], rows[50:], 10)
    um, rm = bottom_k(np.concatenate([ua, ub]), np.vstack([ra, rb]), 10)
    uw, rw = bottom_k(u, rows, 10)
    assert set(rm[:, 0]) == set(rw[:, 0])
