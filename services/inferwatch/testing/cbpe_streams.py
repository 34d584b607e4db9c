"""Labelled classifier streams with a known answer for accuracy-before-labels (CBPE): tests and ``bench cbpe``.

Built only from scikit-learn's bundled ``breast_cancer`` data (nothing downloaded) and numpy:
a logistic regression on three weak features is the deployed model, and — so that its scores are
calibrated by construction — the truth is drawn from that same model, ``y ~ Bernoulli(p(x))``.
The reference period is plain resampling of the dataset; the analysis windows then change, one
kind per stream:

* ``covariate``: the inputs move (rows near the decision boundary become more frequent, more so
  each window) while ``P(y | x)`` stays — accuracy falls and the confidences show it;
* ``concept``: the inputs stay while ``P(y | x)`` changes (a growing share of the truth is
  flipped) — accuracy falls and the confidences do not show it;
* ``overconfident``: nothing changes, but the model reports sharpened scores (its logit times 3)
  — uncalibrated scores;
* ``stable``: nothing changes.

A window is arrays (confidence of the predicted class, predicted class, true class); ``events``
turns a stream into ``prediction.v1``/``feedback.v1`` JSON bytes for the processor core.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

KINDS = ("covariate", "concept", "overconfident", "stable")
CLASSES = ("benign", "malignant")
FEATURES = (2, 4, 9)  # mean perimeter, mean smoothness, mean fractal dimension: a model right ~85-90%
T0_MS = 1_764_140_040_000

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Window:
    """One period of predictions with their truth."""

    conf: F64  # the reported confidence of the predicted class
    pred: npt.NDArray[np.int64]  # predicted class index
    truth: npt.NDArray[np.int64]  # true class index
    positive: F64  # the reported probability of class 1 (for peers that want it)

    @property
    def accuracy(self) -> float:
        """The realised accuracy."""
        return float((self.pred == self.truth).mean())


@dataclass(frozen=True)
class CbpeStream:
    """A reference period and analysis windows of one kind."""

    kind: str
    reference: Window
    windows: list[Window]


@functools.cache
def _model() -> tuple[F64, F64]:
    """Standardised features of the bundled data and the logit of a fitted logistic regression."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    b = load_breast_cancer()
    x = np.asarray(b.data, dtype=np.float64)[:, FEATURES]
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    clf = LogisticRegression(C=1.0, max_iter=1000).fit(x, b.target)
    logit = clf.decision_function(x)
    return x, np.asarray(logit, dtype=np.float64)


def _window(rng: np.random.Generator, n: int, *, near_boundary: float = 0.0, flip: float = 0.0,
            sharpen: float = 1.0) -> Window:
    _, logit = _model()
    # a covariate shift: rows drawn with weight exp(-near_boundary * |logit|) (near the boundary)
    w = np.exp(-near_boundary * np.abs(logit))
    rows = rng.choice(len(logit), size=n, p=w / w.sum())
    z = logit[rows] + rng.normal(0.0, 0.3, size=n)  # no two events alike
    p_true = 1.0 / (1.0 + np.exp(-z))
    truth = (rng.random(n) < p_true).astype(np.int64)
    if flip:
        truth = np.where(rng.random(n) < flip, 1 - truth, truth)
    p_rep = 1.0 / (1.0 + np.exp(-sharpen * z))
    pred = (p_rep >= 0.5).astype(np.int64)
    conf = np.where(pred == 1, p_rep, 1.0 - p_rep)
    return Window(conf, pred, truth, p_rep)


def build(kind: str, *, n_reference: int = 4000, windows: int = 8, window_events: int = 500,
          seed: int = 0) -> CbpeStream:
    """A stream of ``kind`` (one of :data:`KINDS`), deterministic for ``seed``."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; one of {KINDS}")
    rng = np.random.default_rng(seed + KINDS.index(kind) * 1009)
    sharpen = 3.0 if kind == "overconfident" else 1.0
    ref = _window(rng, n_reference, sharpen=sharpen)
    out = []
    for i in range(windows):
        step = (i + 1) / windows
        if kind == "covariate":
            out.append(_window(rng, window_events, near_boundary=1.5 * step))
        elif kind == "concept":
            out.append(_window(rng, window_events, flip=0.3 * step))
        else:
            out.append(_window(rng, window_events, sharpen=sharpen))
    return CbpeStream(kind, ref, out)


def events(stream: CbpeStream, model: str = "cbpe", *, window_s: int = 60, labels: str = "all",
           probabilities: bool = False) -> tuple[list[bytes], list[bytes]]:
    """``(predictions, feedback)`` JSON bytes: the reference in the first window of ``window_s``
    seconds, each analysis window in the next ones. ``labels``: ``all`` (every prediction gets its
    label), ``reference`` (only the reference's), ``none``. With ``probabilities`` the outputs carry
    both classes' probabilities, else ``label`` + ``score`` (the confidence)."""
    preds: list[bytes] = []
    fbs: list[bytes] = []
    k = 0
    for w_i, w in enumerate([stream.reference, *stream.windows]):
        n = len(w.conf)
        t0 = T0_MS + w_i * window_s * 1000
        ts = t0 + (np.arange(n) * (window_s * 1000 - 1) // max(n, 1))
        for i in range(n):
            label = CLASSES[int(w.pred[i])]
            out: dict[str, object] = {"label": label}
            if probabilities:
                p1 = float(w.positive[i])
                out["probabilities"] = {CLASSES[1]: p1, CLASSES[0]: 1.0 - p1}
            else:
                out["score"] = float(w.conf[i])
            pid = f"{model}-p{k}"
            preds.append(orjson.dumps({
                "schema_version": "prediction.v1", "event_id": f"{model}-e{k}", "prediction_id": pid,
                "ts": int(ts[i]), "model": model, "model_version": "1", "outputs": out,
                "segment": {"site": "a" if i % 2 else "b"},
            }))
            if labels == "all" or (labels == "reference" and w_i == 0):
                fbs.append(orjson.dumps({
                    "schema_version": "feedback.v1", "event_id": f"{model}-f{k}", "prediction_id": pid,
                    "ts": int(ts[i]), "model": model, "label": CLASSES[int(w.truth[i])],
                }))
            k += 1
    return preds, fbs


def through_core(stream: CbpeStream, cfg: Any, *, labels: str = "all", probabilities: bool = False,
                 fast: bool = True, chunk: int = 1000) -> list[Any]:
    """Every snapshot the real processor core (:class:`ProcessorCore` with ``cfg``) makes of ``stream``:
    predictions in chunks of ``chunk``, each chunk's labels right after it (as a feedback stream a
    little behind would deliver them), then the last windows flushed. Unsorted."""
    from inferwatch.processor.core.raw_events import Raw
    from inferwatch.processor.core.state_machine import ProcessorCore

    preds, fbs = events(stream, labels=labels, probabilities=probabilities)
    label_of = {orjson.loads(v)["prediction_id"]: v for v in fbs}
    core = ProcessorCore(cfg, fast=fast)
    snaps: list[Any] = []
    done = 0
    for i in range(0, len(preds), chunk):
        part = preds[i:i + chunk]
        snaps += core.process_prediction_values(part, "p", 0, range(i, i + len(part)), now=0.0).snapshots
        mine = [label_of[p] for p in (orjson.loads(v)["prediction_id"] for v in part) if p in label_of]
        snaps += core.process_feedback([Raw(v, "f", 0, done + j) for j, v in enumerate(mine)], now=0.0).snapshots
        done += len(mine)
    return snaps + core.flush_all().snapshots
