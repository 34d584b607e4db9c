"""Accuracy before labels: confidence-based performance estimation (CBPE), pure numpy on mergeable counts.

A classifier that logs how sure it is of its predicted class (``outputs.probabilities`` or
``outputs.score``, see :func:`predicted_confidence`) gives, per event, a confidence ``c``. If the
scores are calibrated — among predictions made with confidence ``c`` a share ``c`` is right — the
expected accuracy of a window is the mean of ``c``, known as soon as the predictions arrive. Scores
are rarely calibrated, so the reference (where labels were joined) supplies the map
``g(c) = P(right | c)``, and the estimate is the mean of ``g(c)`` over the window's events
(the idea of NannyML's CBPE; this is our own code on the accumulator's counts).

State, per slot (arrays of ``CONF_BINS`` equal-width bins of ``c`` on [0, 1], merged by addition):

* ``cbpe_n`` / ``cbpe_csum``: events with a confidence and the sum of their confidences;
* ``cbpe_lab`` / ``cbpe_lsum`` / ``cbpe_hit``: of the events whose label has been joined, how many,
  the sum of their confidences, and how many were predicted right.

On the reference, ``cbpe_lab``/``cbpe_hit``/``cbpe_lsum`` are the calibration: per bin, the mean
confidence and the share right; made increasing by isotonic regression (scipy's
``isotonic_regression``, weighted by the labelled counts: it pools noisy neighbouring bins), then
read between bins by linear interpolation at a window bin's own mean confidence.

Errors (what :class:`Estimate.se` states): the realised accuracy of a window of ``n`` events whose
right-probabilities are ``g_i`` spreads around the estimate by ``sum g_i (1 - g_i) / n²`` (each
event is a coin), plus the calibration's own error (each pooled block of ``M`` labelled reference
events is a share, ``y (1 - y) / M``, carried through the interpolation weights). A window then
lies within ``3 se`` of its realised accuracy unless the premise breaks — see *Where it fails*.

The alert threshold (:func:`threshold`) is the reference's own estimated accuracy (on a
calibrated reference equal to its realised accuracy up to the binning) minus ``Z_ALERT`` times the
spread of the estimate over reference-like windows of the window's count:
``sqrt(var_ref(g(c)) * (1/n + 1/n_ref))``. With ``Z_ALERT = 3`` a window of unchanged traffic falls
below it with probability ~0.13% (one-sided normal tail) per window and segment.

Where it fails (each shown by ``tests/unit/processor/test_cbpe.py``):

* **concept drift** — ``P(right | c)`` itself changes (the world moved, the inputs did not): the
  confidences stay, so the estimate stays while realised accuracy falls. Only labels show it; the
  realised ``perf.accuracy`` and ``perf.estimation_error`` do.
* **uncalibrated scores without a labelled reference** — the map falls back to ``g(c) = c`` and
  the estimate is as biased as the scores (an over-confident model looks better than it is).
* **label shift** with class-dependent calibration, and confidences that do not rank correctness:
  the same premise, broken differently.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import isotonic_regression

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

CONF_BINS = 40
"""Equal-width bins of the predicted-class confidence on [0, 1]."""
Z_ALERT = 3.0
"""Standard deviations below the reference's level at which :func:`threshold` is set."""
MIN_CALIBRATION_LABELS = 100
"""Labelled reference events (with a confidence) needed before the reference calibrates the scores."""

# The accumulator's array names (``Kind.TOTAL``, shape ``[slots, CONF_BINS]``).
HIST, CSUM, LAB, LSUM, HIT = "cbpe_n", "cbpe_csum", "cbpe_lab", "cbpe_lsum", "cbpe_hit"

# Snapshot metric names.
ESTIMATED = "perf.estimated_accuracy"
ESTIMATED_SE = "perf.estimated_accuracy_se"
THRESHOLD = "perf.estimated_accuracy_threshold"
CALIBRATED = "perf.estimate_calibrated"
ESTIMATION_ERROR = "perf.estimation_error"


def predicted_confidence(label: str | None, score: float | None,
                         probabilities: Mapping[str, float] | None) -> float:
    """How sure the model is of its predicted class, NaN when it did not say.

    The predicted label's probability when ``probabilities`` has it; without a label, the largest
    probability (the argmax is the prediction); else ``score`` when a label is given and the score
    is in [0, 1] (the contract: "score or confidence of the predicted label")."""
    if probabilities:
        if label is None:
            return float(max(probabilities.values()))
        p = probabilities.get(label)
        if p is not None:
            return float(p)
    if label is not None and score is not None and 0.0 <= score <= 1.0:
        return float(score)
    return math.nan


def conf_bin(conf: F64) -> I64:
    """The bin of each confidence in [0, 1] (1.0 falls in the last bin)."""
    return np.clip((np.asarray(conf, dtype=np.float64) * CONF_BINS).astype(np.int64), 0, CONF_BINS - 1)


@dataclass(frozen=True)
class Counts:
    """One slot's CBPE counts (see the module docstring), each ``[CONF_BINS]``."""

    hist: F64
    csum: F64
    lab: F64
    lsum: F64
    hit: F64

    @classmethod
    def of(cls, hist: object, csum: object, lab: object, lsum: object, hit: object) -> Counts:
        """From arrays or scalar zeros (an array the slot never touched)."""
        z = np.zeros(CONF_BINS)
        return cls(*(z + np.asarray(a, dtype=np.float64) for a in (hist, csum, lab, lsum, hit)))

    @property
    def labelled(self) -> float:
        return float(self.lab.sum())


@dataclass(frozen=True)
class Calibration:
    """``g(c) = P(right | c)`` from a labelled reference: increasing points ``(x, y)``, the pooled
    block of each point, and each block's variance."""

    x: F64
    y: F64
    block: I64
    block_var: F64
    labels: float
    accuracy: float

    def weights(self, conf: F64) -> F64:
        """``[len(conf), len(x)]`` linear-interpolation weights: ``g(conf) = weights @ y``."""
        k = len(self.x)
        w = np.zeros((len(conf), k))
        if k == 1:
            w[:, 0] = 1.0
            return w
        c = np.clip(conf, self.x[0], self.x[-1])  # flat beyond the outer points, as np.interp
        hi = np.clip(np.searchsorted(self.x, c, side="right"), 1, k - 1)
        lo = hi - 1
        span = self.x[hi] - self.x[lo]
        t = np.where(span > 0, (c - self.x[lo]) / np.where(span > 0, span, 1.0), 0.0)
        rows = np.arange(len(conf))
        np.add.at(w, (rows, lo), 1.0 - t)
        np.add.at(w, (rows, hi), t)
        return w

    def __call__(self, conf: F64) -> F64:
        return np.interp(conf, self.x, self.y)


def fit_calibration(c: Counts) -> Calibration | None:
    """The calibration of a labelled reference slot, None with fewer than
    :data:`MIN_CALIBRATION_LABELS` labelled events that carried a confidence."""
    m = c.labelled
    if m < MIN_CALIBRATION_LABELS:
        return None
    nz = c.lab > 0
    w = c.lab[nz]
    x = c.lsum[nz] / w
    share = c.hit[nz] / w
    res = isotonic_regression(share, weights=w, increasing=True)
    starts = np.asarray(res.blocks, dtype=np.int64)
    block = np.repeat(np.arange(len(starts) - 1), np.diff(starts))
    big_m = np.add.reduceat(w, starts[:-1])
    hits = np.add.reduceat(c.hit[nz], starts[:-1])
    # Laplace-smoothed share: a block that was always right (or wrong) still has some doubt
    sm = (hits + 1.0) / (big_m + 2.0)
    block_var = sm * (1.0 - sm) / big_m
    # x is increasing (bins in order, each mean inside its bin); equal x cannot happen across bins
    return Calibration(x, np.asarray(res.x, dtype=np.float64), block, block_var, m, float(c.hit.sum() / m))


@dataclass(frozen=True)
class Estimate:
    """Estimated accuracy of ``n`` events and its standard error against their realised accuracy."""

    accuracy: float
    se: float
    n: float
    calibrated: bool
    var_g: float
    """Variance over the events of their right-probability ``g(c)`` (the spread of single events)."""


def _g(cal: Calibration | None, mean_conf: F64) -> F64:
    return mean_conf if cal is None else cal(mean_conf)


def estimate(hist: F64, csum: F64, cal: Calibration | None) -> Estimate | None:
    """The estimate over a confidence histogram (``hist`` counts, ``csum`` sums per bin); None without events."""
    n = float(hist.sum())
    if n <= 0:
        return None
    used = hist > 0
    h = hist[used]
    mc = csum[used] / h
    g = np.clip(_g(cal, mc), 0.0, 1.0)
    p = h / n
    acc = float(p @ g)
    var = float(h @ (g * (1.0 - g))) / n**2
    if cal is not None:
        # calibration error, blocks independent; points of a block share one value
        per_point = p @ cal.weights(mc)
        per_block = np.bincount(cal.block, weights=per_point, minlength=len(cal.block_var))
        var += float(per_block**2 @ cal.block_var)
    var_g = float(p @ (g - acc) ** 2)
    return Estimate(acc, math.sqrt(max(var, 0.0)), n, cal is not None, var_g)


def estimation_error(c: Counts, cal: Calibration | None) -> float | None:
    """Estimated minus realised accuracy over the window's labelled events (None without any)."""
    m = c.labelled
    if m <= 0:
        return None
    est = estimate(c.lab, c.lsum, cal)
    assert est is not None
    return est.accuracy - float(c.hit.sum()) / m


def threshold(ref: Estimate, n: float, z: float = Z_ALERT) -> float:
    """The level a window of ``n`` events must fall below to be an estimated drop (module docstring)."""
    sd = math.sqrt(ref.var_g * (1.0 / max(n, 1.0) + 1.0 / ref.n))
    return ref.accuracy - z * sd


def snapshot_metrics(cur: Counts, ref: Counts | None) -> tuple[dict[str, float], dict[str, float]]:
    """The window's CBPE metrics and the reference's (for the snapshot's ``reference`` map).

    ``ref`` calibrates when it has enough labelled events; without it (or without a reference) the
    estimate trusts the scores (``perf.estimate_calibrated`` = 0)."""
    cal = fit_calibration(ref) if ref is not None else None
    est = estimate(cur.hist, cur.csum, cal)
    if est is None:
        return {}, {}
    m = {ESTIMATED: est.accuracy, ESTIMATED_SE: est.se, CALIBRATED: float(est.calibrated)}
    err = estimation_error(cur, cal)
    if err is not None:
        m[ESTIMATION_ERROR] = err
    r: dict[str, float] = {}
    if ref is not None:
        ref_est = estimate(ref.hist, ref.csum, cal)
        if ref_est is not None:
            m[THRESHOLD] = threshold(ref_est, est.n)
            r[ESTIMATED] = ref_est.accuracy
    return m, r
