"""The peer of ``bench/bench_detect.py``: Evidently's default drift detection over sliding windows.

Runs in Evidently's own virtualenv (``.venv-evidently``, created by ``make bench``). Reads the JSON
file given as argument: per scenario, per series (one model x one segment value), the prediction
rows and the label rows, each with the event time at which it became available (``ts``) and the
time of its prediction (``pts``). For every series and view, windows of ``window`` rows, sliding by
``step`` rows, are compared with the series' rows from before the drift (for a segment with no
such rows, a new one, the model's rows from before the drift), column by column, with the stattest
Evidently picks by default for the column (``get_stattest(..., stattest_func=None)``: the one
``DataDriftPreset()`` uses: K-S/chi-square/Z for references of at most 1,000 rows, normed
Wasserstein/Jensen-Shannon above) at its default threshold. A window alarms when any column
drifted. Only windows holding at least one row predicted after the drift start are evaluated (the
earlier ones overlap the reference). The affected series' scan stops at its first alarm naming a
signal the drift moved. ``DataDriftPreset`` inside a ``Report`` computes the same
tests but renders widgets for ~2 s per report, too slow for thousands of windows; the tests are
called directly. Prints one JSON line: evidently version, windows evaluated, alarms per scenario, and how many
windows of the series that never drift were evaluated and alarmed.
"""

from __future__ import annotations

import json
import sys
import warnings
from typing import Any


def main(path: str) -> None:
    import evidently
    import pandas as pd
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    warnings.filterwarnings("ignore")
    with open(path, "rb") as f:
        data = json.load(f)
    windows = 0
    healthy = [0, 0]  # windows of series that never drift (controls, clean segments), and how many alarmed
    alarms: dict[str, list[dict[str, Any]]] = {}
    for scenario, sc in data.items():
        start, w, step = sc["drift_start_ms"], sc["window"], sc["step"]
        stop: dict[str, list[str]] = sc["stop_after_first"]  # series -> the signals that end its scan
        out = alarms[scenario] = []
        for view in ("pred", "label"):
            model_ref: dict[str, pd.DataFrame] = {}
            for s in sc["series"]:
                rows = [r for r in s[view] if r["pts"] < start]
                if rows:
                    df = pd.DataFrame([r["row"] for r in rows])
                    model_ref[s["model"]] = pd.concat([model_ref[s["model"]], df]) if s["model"] in model_ref else df
            for s in sc["series"]:
                rows = sorted(s[view], key=lambda r: r["ts"])
                if not rows:
                    continue
                frame = pd.DataFrame([r["row"] for r in rows])
                pre = [i for i, r in enumerate(rows) if r["pts"] < start]
                ref = frame.iloc[pre] if len(pre) >= w else model_ref.get(s["model"])
                if ref is None or len(ref) < 2:
                    continue
                cols = [c for c in frame.columns if c in ref.columns]
                kinds = {c: (ColumnType.Numerical if pd.api.types.is_numeric_dtype(frame[c]) else ColumnType.Categorical)
                         for c in cols}
                series_id = f"{s['model']}|{s['segment']}"
                for end in range(w, len(rows) + 1, step):
                    if rows[end - 1]["pts"] < start and max(r["pts"] for r in rows[end - w:end]) < start:
                        continue
                    cur = frame.iloc[end - w:end]
                    windows += 1
                    healthy[0] += series_id not in stop
                    drifted = []
                    for c in cols:
                        r, q = ref[c].dropna(), cur[c].dropna()
                        if len(r) < 2 or len(q) < 2:
                            continue
                        test = get_stattest(r, q, kinds[c], None)
                        if test(r, q, kinds[c], None).drifted:
                            drifted.append(c)
                    if drifted:
                        healthy[1] += series_id not in stop
                        out.append({"model": s["model"], "segment": s["segment"], "view": view,
                                    "at_ms": rows[end - 1]["ts"], "first_pts": max(r["pts"] for r in rows[end - w:end]),
                                    "columns": drifted})
                        sig = stop.get(series_id)
                        if sig is not None and (not sig or any(x in c for c in drifted for x in sig)):
                            break  # the drift is found: later windows of this series change nothing
    print(json.dumps({"evidently": evidently.__version__, "reports": windows, "alarms": alarms,
                      "healthy_windows": healthy[0], "healthy_windows_alarming": healthy[1],
                      "method": "default per-column stattest (get_stattest), any column drifted"}))


if __name__ == "__main__":
    main(sys.argv[1])
