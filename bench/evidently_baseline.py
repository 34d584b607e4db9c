"""The ``processor.core`` baseline with Evidently: its data-drift preset over the same windows.

Runs in its own virtualenv (``make bench`` creates ``.venv-evidently``: Evidently pins pandas and
pulls ~80 packages, which must not leak into Inferwatch's own environment). Reads the bench's
events (one JSON object per line) from the file given as argument, then — timed, JSON decoding
included, like our core — builds the frame and, for every window × (whole traffic + each segment
value), runs Evidently's ``DataDriftPreset`` against the first window (the reference, as our
``baseline_s`` pin does) with the statistics our core computes: PSI, Jensen-Shannon and KS for
the numeric features, chi-square for the categorical ones. Prints one JSON line: seconds, events,
reports, evidently version.
"""

from __future__ import annotations

import json
import sys
import time
import warnings


def main(path: str, window_s: int) -> None:
    import evidently
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    warnings.filterwarnings("ignore")
    with open(path, "rb") as f:
        raws = f.read().splitlines()
    t0 = time.perf_counter()
    rows = []
    for v in raws:
        e = json.loads(v)
        r = dict(e["inputs"])
        r.update({f"seg.{k}": s for k, s in e["segment"].items()})
        r["ts"] = e["ts"]
        rows.append(r)
    df = pd.DataFrame(rows)
    df["w"] = df["ts"] // (window_s * 1000)
    num = [c for c in df.columns if c.startswith("x")]
    cat = [c for c in df.columns if c.startswith("c")]
    segs = [c for c in df.columns if c.startswith("seg.")]
    definition = DataDefinition(numerical_columns=num, categorical_columns=cat)
    ref = Dataset.from_pandas(df[df["w"] == df["w"].min()][num + cat], data_definition=definition)
    report = Report([
        DataDriftPreset(columns=num + cat, num_method="psi", cat_method="chisquare"),
        DataDriftPreset(columns=num, num_method="jensenshannon"),
        DataDriftPreset(columns=num, num_method="ks"),
    ])
    n_reports = 0
    for _, win in df.groupby("w"):
        parts = [win] + [g for s in segs for _, g in win.groupby(s)]
        for part in parts:
            cur = Dataset.from_pandas(part[num + cat], data_definition=definition)
            snapshot = report.run(current_data=cur, reference_data=ref)
            snapshot.dict()  # the computed values, as a user reads them
            n_reports += 1
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "events": len(raws), "reports": n_reports,
                      "evidently": evidently.__version__}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
