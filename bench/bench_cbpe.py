"""Accuracy before labels (``cbpe.*``): how far the processor's estimated accuracy is from the
realised accuracy, per window, on labelled streams with a known answer
(:mod:`inferwatch.testing.cbpe_streams`: scikit-learn's bundled breast_cancer data, a calibrated
logistic regression).

Every stream goes through the real core (``ProcessorCore``, raw ``prediction.v1``/``feedback.v1``
bytes): the first window is the pinned reference with its labels, the analysis windows carry no
label, and each analysis window's ``perf.estimated_accuracy`` is compared with the accuracy
its events really had.

* ``cbpe.covariate_shift.mae`` — inputs move, ``P(y | x)`` stays (the premise holds): small;
* ``cbpe.concept_drift.mae`` — ``P(y | x)`` changes (the documented failure): large, on purpose;
* ``cbpe.covariate_shift.within_3se`` — share of windows whose realised accuracy lies within 3
  stated standard errors of the estimate;
* ``cbpe.uncalibrated.bias`` — over-confident scores and a reference without labels (no
  calibration): mean estimated minus realised; ``baseline_value`` is the same with the labelled
  reference's calibration.

Peer, same streams, same run: NannyML's CBPE (fit on the same reference, estimated in chunks of the
window's size) when ``.venv-nannyml`` exists — see ``bench/cbpe_nannyml.py`` for why ``make bench``
does not create it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from bench.context import BenchContext
from inferwatch.processor.core import cbpe
from inferwatch.processor.settings import ProcessorSettings
from inferwatch.testing import cbpe_streams as cs

ROOT = Path(__file__).resolve().parents[1]
NANNYML_PY = Path(os.environ.get("INFERWATCH_NANNYML_PYTHON", ROOT / ".venv-nannyml" / "bin" / "python"))
CFG = ProcessorSettings(window_s=60, lateness_s=0, label_wait_s=0, baseline_s=60, embedding_permutations=10)


def estimates(stream: cs.CbpeStream, labels: str) -> list[dict[str, float]]:
    """The whole-version metrics of each analysis window, through the core (labels joined as they come)."""
    snaps = cs.through_core(stream, CFG, labels=labels, fast=True, chunk=1000)
    whole = sorted((s for s in snaps if s.segment_key is None), key=lambda s: s.window_start)
    return [{k: v for k, v in s.metrics.items() if v is not None} for s in whole[1:]]


def _nannyml(streams: list[cs.CbpeStream], chunk: int, scratch: Path) -> dict[str, Any] | None:
    if not NANNYML_PY.exists():
        print(f"  (NannyML baseline skipped: {NANNYML_PY} does not exist; see bench/cbpe_nannyml.py)")
        return None

    def part(w: cs.Window) -> dict[str, list[float]]:
        return {"p": w.positive.tolist(), "y_pred": w.pred.tolist(), "y_true": w.truth.tolist()}

    doc = {"chunk": chunk, "streams": [
        {"reference": part(s.reference),
         "analysis": part(cs.Window(np.concatenate([w.conf for w in s.windows]),
                                    np.concatenate([w.pred for w in s.windows]),
                                    np.concatenate([w.truth for w in s.windows]),
                                    np.concatenate([w.positive for w in s.windows])))}
        for s in streams]}
    path = scratch / "cbpe-streams.json"
    path.write_text(json.dumps(doc))
    out = subprocess.run([str(NANNYML_PY), str(ROOT / "bench" / "cbpe_nannyml.py"), str(path)],
                         capture_output=True, text=True, timeout=1800, check=True)
    res: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return res


def run(ctx: BenchContext) -> None:
    """``cbpe.*`` (see the module docstring)."""
    seeds = range(1) if ctx.quick else range(3)
    windows, size = 8, 500
    params: dict[str, Any] = dict(seeds=len(seeds), windows=windows, window_events=size, reference_events=4000,
                  data="sklearn breast_cancer, logistic regression on 3 features")
    for kind, name in (("covariate", "covariate_shift"), ("concept", "concept_drift")):
        streams = [cs.build(kind, windows=windows, window_events=size, seed=s) for s in seeds]
        errs: list[float] = []
        within: list[bool] = []
        for s in streams:
            for m, w in zip(estimates(s, "reference"), s.windows, strict=True):
                e = m[cbpe.ESTIMATED] - w.accuracy
                errs.append(abs(e))
                within.append(abs(e) <= 3 * m[cbpe.ESTIMATED_SE])
        mae = float(np.mean(errs))
        peer = _nannyml(streams, size, ctx.scratch)
        if peer is not None:
            p_err = [abs(v - w.accuracy) for s, est in zip(streams, peer["estimates"], strict=True)
                     for v, w in zip(est, s.windows, strict=True)]
            ctx.record(f"cbpe.{name}.mae", mae, "accuracy", baseline=f"nannyml {peer['nannyml']} CBPE",
                       baseline_value=float(np.mean(p_err)), peer_seconds=peer["seconds"], **params)
        else:
            ctx.record(f"cbpe.{name}.mae", mae, "accuracy", note="NannyML not installed", **params)
        if kind == "covariate":
            ctx.record("cbpe.covariate_shift.within_3se", float(np.mean(within)), "share", **params)
    over = [cs.build("overconfident", windows=windows, window_events=size, seed=s) for s in seeds]
    raw = [m[cbpe.ESTIMATED] - w.accuracy for s in over for m, w in zip(estimates(s, "none"), s.windows, strict=True)]
    cal = [m[cbpe.ESTIMATED] - w.accuracy for s in over
           for m, w in zip(estimates(s, "reference"), s.windows, strict=True)]
    ctx.record("cbpe.uncalibrated.bias", float(np.mean(raw)), "accuracy",
               baseline="calibrated on the labelled reference", baseline_value=float(np.mean(cal)), **params)
