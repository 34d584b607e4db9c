"""The ``cbpe.*`` peer: NannyML's CBPE on the same streams, in its own virtualenv (``.venv-nannyml``).

Not created by ``make bench``: NannyML pulls ~100 packages (lightgbm, FLAML, plotly, cloud
filesystems …), took over 5 minutes to install here, and its import needs ``statsmodels``, which
its dependencies do not declare. Create it by hand to get the baseline::

    python3 -m venv .venv-nannyml && .venv-nannyml/bin/pip install nannyml==0.13.1 statsmodels

Reads a JSON file (argument): ``{"chunk": n, "streams": [{"reference": {...}, "analysis": {...}}]}``
where each part holds ``p`` (the reported probability of class 1), ``y_pred`` and ``y_true``. Fits
CBPE (binary, accuracy) on each reference and estimates the analysis in chunks of ``chunk`` rows.
Prints one JSON line: the estimated accuracy per chunk per stream, seconds, nannyml's version.
"""

from __future__ import annotations

import json
import sys
import time
import warnings


def main(path: str) -> None:
    import nannyml as nml
    import pandas as pd

    warnings.filterwarnings("ignore")
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    out = []
    t0 = time.perf_counter()
    for s in doc["streams"]:
        ref = pd.DataFrame(s["reference"])
        ana = pd.DataFrame({k: v for k, v in s["analysis"].items() if k != "y_true"})
        est = nml.CBPE(y_pred_proba="p", y_pred="y_pred", y_true="y_true", problem_type="classification_binary",
                       metrics=["accuracy"], chunk_size=doc["chunk"])
        est.fit(ref)
        df = est.estimate(ana).filter(period="analysis").to_df()
        out.append([float(v) for v in df[("accuracy", "value")].tolist()])
    print(json.dumps({"estimates": out, "seconds": time.perf_counter() - t0, "nannyml": nml.__version__}))


if __name__ == "__main__":
    main(sys.argv[1])
