"""Processor benchmarks.

* ``processor.core``: events/s of the pure core on one core, from raw event bytes (15 numeric + 5
  categorical features, 3 segment keys), decoding included, windows closed and snapshots built.
  Baseline in the same run, as the issue asks: Evidently's ``DataDriftPreset`` computing the same
  drift statistics (PSI, Jensen-Shannon, KS for numeric features, chi-square for categorical ones)
  whole and per segment value over the same windows, from the same bytes (JSON decoding included)
  — see ``bench/evidently_baseline.py``; it runs in its own virtualenv ``.venv-evidently`` that
  ``make bench`` creates. Evidently needs seconds per report (it renders its plotly widgets inside
  ``Report.run``), so it runs over the first ``EVIDENTLY_EVENTS`` events (one full window: 16
  reports, the same per-window work as every other window), and its rate is events/s over those.
  Also measured in the same run and recorded beside it: a hand-written scipy/pandas version of the
  same statistics (``scipy_pandas_events_per_s``, ``ratio_vs_scipy``) — the baseline when Evidently
  is not installed.

``processor.faust`` (one faust worker end to end) is in ``bench_faust.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as st
from scipy.spatial.distance import jensenshannon

from bench.context import BenchContext
from inferwatch.processor.core.state_machine import ProcessorCore
from inferwatch.processor.settings import ProcessorSettings
from inferwatch.testing.scenarios import wide_event

WINDOW_S = 60
EVIDENTLY_EVENTS = 30_000  # one 60 s window at 500 events/s
ROOT = Path(__file__).resolve().parents[1]
EVIDENTLY_PY = Path(os.environ.get("INFERWATCH_EVIDENTLY_PYTHON", ROOT / ".venv-evidently" / "bin" / "python"))


def make_events(n: int, rate_per_s: int, seed: int = 1) -> list[bytes]:
    rng = np.random.default_rng(seed)
    t0 = 1_764_140_040_000
    return [wide_event(i, t0 + int(i * 1000 / rate_per_s), rng, shift=0.5 if i > n // 2 else 0.0) for i in range(n)]


def run_core(raws: list[bytes], batch: int = 5000, detect: bool = False) -> int:
    cfg = ProcessorSettings(window_s=WINDOW_S, lateness_s=0, baseline_s=WINDOW_S, embedding_permutations=10,
                            detect_enabled=detect)
    core = ProcessorCore(cfg)
    n_snap = 0
    for i in range(0, len(raws), batch):
        # the worker's batches are one topic-partition's values and offsets (no Raw object per message)
        out = core.process_prediction_values(raws[i:i + batch], "p", 0, range(i, i + len(raws[i:i + batch])))
        n_snap += len(out.snapshots)
    return n_snap + len(core.flush_all().snapshots)


def run_baseline(raws: list[bytes]) -> int:
    """scipy/pandas: decode, frame, then per window × (whole + each segment value) × feature the stats."""
    rows = []
    for v in raws:
        e = json.loads(v)
        r: dict[str, Any] = dict(e["inputs"])
        r.update({f"seg.{k}": s for k, s in e["segment"].items()})
        r["ts"] = e["ts"]
        rows.append(r)
    df = pd.DataFrame(rows)
    df["w"] = df["ts"] // (WINDOW_S * 1000)
    num = [c for c in df.columns if c.startswith("x")]
    cat = [c for c in df.columns if c.startswith("c")]
    segs = [c for c in df.columns if c.startswith("seg.")]
    ref = df[df["w"] == df["w"].min()]
    n_stats = 0
    edges = {f: np.unique(np.quantile(ref[f].dropna(), np.linspace(0, 1, 11))) for f in num}
    for _, win in df.groupby("w"):
        parts = [win] + [g for s in segs for _, g in win.groupby(s)]
        for part in parts:
            for f in num:
                e = edges[f]
                rc = np.histogram(np.clip(ref[f], e[0], e[-1]), e)[0] + 1e-4
                cc = np.histogram(np.clip(part[f], e[0], e[-1]), e)[0] + 1e-4
                p, q = rc / rc.sum(), cc / cc.sum()
                _ = np.sum((q - p) * np.log(q / p)), jensenshannon(p, q, base=2), st.ks_2samp(ref[f], part[f])
                n_stats += 1
            for f in cat:
                rv = ref[f].value_counts()
                cv = part[f].value_counts().reindex(rv.index, fill_value=0)
                exp = rv / rv.sum() * cv.sum()
                _ = st.chisquare(cv, exp)
                n_stats += 1
    return n_stats


def bench_core(ctx: BenchContext) -> None:
    n = 30_000 if ctx.quick else 200_000
    raws = make_events(n, rate_per_s=500)
    run_core(raws[:5000])  # warm-up (imports, caches)
    t = time.perf_counter()
    run_core(raws)
    ours = n / (time.perf_counter() - t)
    t = time.perf_counter()
    run_baseline(raws)
    scipy_rate = n / (time.perf_counter() - t)
    common = dict(events=n, numeric=15, categorical=5, segment_keys=3, window_s=WINDOW_S,
                  scipy_pandas_events_per_s=scipy_rate, ratio_vs_scipy=ours / scipy_rate,
                  load_avg_1m=os.getloadavg()[0])
    # The sequential detectors are off by default (processor settings: detect_enabled); their cost on
    # the same stream, beside the default core's rate measured just above.
    run_core(raws[:5000], detect=True)
    t = time.perf_counter()
    run_core(raws, detect=True)
    ctx.record("processor.core_detect", n / (time.perf_counter() - t), "events/s", baseline="processor.core",
               baseline_value=ours, note="the same stream with detect_enabled=True (off by default)", **common)
    ev = run_evidently(ctx, raws[:EVIDENTLY_EVENTS])
    if ev is None:
        ctx.record("processor.core", ours, "events/s", baseline="scipy+pandas", baseline_value=scipy_rate,
                   note=f"Evidently not installed at {EVIDENTLY_PY} (make bench creates it)", **common)
        return
    ctx.record("processor.core", ours, "events/s", baseline=f"evidently {ev['evidently']} DataDriftPreset",
               baseline_value=ev["events"] / ev["seconds"], evidently_events=ev["events"],
               evidently_reports=ev["reports"], evidently_seconds=ev["seconds"], **common)


def run_evidently(ctx: BenchContext, raws: list[bytes]) -> dict[str, Any] | None:
    """Evidently's drift preset over ``raws`` in its own virtualenv; None when it is not installed."""
    if not EVIDENTLY_PY.exists():
        print(f"  (Evidently baseline skipped: {EVIDENTLY_PY} does not exist; `make bench` creates it)")
        return None
    path = ctx.scratch / "evidently-events.jsonl"
    path.write_bytes(b"\n".join(raws))
    out = subprocess.run([str(EVIDENTLY_PY), str(ROOT / "bench" / "evidently_baseline.py"), str(path), str(WINDOW_S)],
                         capture_output=True, text=True, timeout=1800, check=True)
    res: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return res


def run(ctx: BenchContext) -> None:
    """``processor.core`` (the faust worker's ``processor.faust`` is in bench_faust.py)."""
    bench_core(ctx)
