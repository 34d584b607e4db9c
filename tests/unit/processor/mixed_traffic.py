"""Mixed prediction/feedback traffic for the fast-path parity tests: rows the columnar fast path takes
(wide events, classifiers with probabilities, regressions, errors, missing and null features, ints
and bools), rows it refuses but the exact path accepts (llm, embedding, lineage blocks), and rows
nobody accepts (garbage, missing fields, invalid names), interleaved, with labels in both orders."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import orjson

from inferwatch.processor.core.raw_events import Raw

T0 = 1_764_140_040_000


def _pred(rng: np.random.Generator, i: int, ts: int, shift: float) -> dict[str, object]:
    kind = int(rng.integers(12))
    model = ("wide", "cls", "reg")[i % 3]
    version = "1" if ts < T0 + 150_000 or model != "cls" else "2"
    inputs: dict[str, object] = {f"x{j}": float(rng.normal(shift if j == 0 else 0.0, 1.0)) for j in range(4)}
    inputs["n_int"] = int(rng.integers(0, 1000))
    inputs["flag"] = bool(rng.random() < 0.3)
    inputs["c0"] = ("a", "b", "c")[int(rng.integers(3))]
    inputs["c1"] = None if rng.random() < 0.2 else ("u", "v")[int(rng.integers(2))]
    if rng.random() < 0.1:
        del inputs["x3"]  # a missing key
    if rng.random() < 0.1:
        inputs["x2"] = None  # a null numeric
    if model == "cls" and rng.random() < 0.05:
        inputs["rare"] = float(rng.random())  # a feature only some events carry
    ev: dict[str, object] = {
        "schema_version": "prediction.v1", "event_id": f"e{i}", "prediction_id": f"p{i}", "ts": ts,
        "model": model, "model_version": version, "inputs": inputs,
        "segment": {"device": f"d{int(rng.integers(5))}", "region": ("eu", "us")[i % 2]},
    }
    if rng.random() < 0.9:
        ev["latency_ms"] = float(rng.lognormal(2.0, 0.5))
    if model == "reg":
        ev["outputs"] = {"value": float(rng.normal(10, 2))}
    else:
        p = float(rng.random())
        ev["outputs"] = {"label": "yes" if p > 0.5 else "no", "score": max(p, 1 - p)}
        if model == "cls":
            ev["outputs"]["probabilities"] = {"yes": p, "no": 1 - p}  # type: ignore[index]
    odd = (ts - T0) // 30_000 % 2 == 1  # every other 30 s: no llm/embedding/lineage blocks (all fast)
    if model == "wide" and (ts - T0) // 30_000 % 5 == 3:  # an odd (all-fast) one
        # the exact path's quirks: a column of numbers and strings becomes strings, and a string
        # column whose values all parse as numbers becomes numeric
        inputs["mixed"] = "s" if rng.random() < 0.3 else float(rng.random())
        inputs["numstr"] = str(int(rng.integers(3)))
    if kind == 0:
        ev["error"] = "timeout"
        if rng.random() < 0.5:
            del ev["outputs"]
    elif odd:
        pass
    elif kind == 1 and model == "wide":
        ev["llm"] = {"completion": "Grade: B" if rng.random() < 0.5 else "I'm sorry", "prompt_hash": f"h{i % 7}",
                     "token_logprobs": [-0.1, -float(rng.random())]}
    elif kind == 2 and model == "cls":
        ev["embedding"] = [float(x) for x in rng.normal(0, 1, 4)]
    elif kind == 3 and model == "reg":
        ev["lineage"] = [{"model": "reg", "model_version": "1", "share": 0.5}]
    elif kind == 4:
        ev["tags"] = {"team": "a"}
    if rng.random() < 0.05:
        ev["segment"] = {"device": f"d{int(rng.integers(5))}"}  # a segment key missing
    return ev


def _bad(rng: np.random.Generator, i: int, ts: int) -> bytes:
    k = int(rng.integers(6))
    if k == 0:
        return b"not json"
    if k == 1:
        return orjson.dumps({"schema_version": "prediction.v1", "event_id": f"b{i}", "ts": ts})
    if k == 2:
        return orjson.dumps({"schema_version": "prediction.v1", "event_id": f"b{i}", "prediction_id": f"q{i}",
                             "ts": ts, "model": "bad\n", "model_version": "1", "outputs": {"label": "x"}})
    if k == 3:
        return orjson.dumps({"schema_version": "prediction.v1", "event_id": f"b{i}", "prediction_id": f"q{i}",
                             "ts": ts, "model": "wide", "model_version": "1", "outputs": {"label": "x"},
                             "inputs": {"bad key": 1.0}})
    if k == 4:
        return orjson.dumps({"schema_version": "prediction.v1", "event_id": f"b{i}", "prediction_id": f"q{i}",
                             "ts": ts, "model": "wide", "model_version": "1"})
    return b'{"schema_version": "prediction.v1", "event_id": "x", "ts": -5}'


def mixed_batches(seed: int = 0, n: int = 6000, batch: int = 700, rate_per_s: int = 20,
                  bad_share: float = 0.03) -> Iterator[tuple[str, list[Raw]]]:
    """``("p" | "f", raws)`` batches: predictions and their labels (some before, most after them)."""
    rng = np.random.default_rng(seed)
    preds: list[bytes] = []
    fbs: list[tuple[int, bytes]] = []
    for i in range(n):
        ts = T0 + int(i * 1000 / rate_per_s)
        if rng.random() < bad_share:
            preds.append(_bad(rng, i, ts))
            continue
        ev = _pred(rng, i, ts, shift=1.0 if i > n // 2 else 0.0)
        preds.append(orjson.dumps(ev))
        if rng.random() < 0.7:
            fb: dict[str, object] = {"schema_version": "feedback.v1", "event_id": f"f{i}", "prediction_id": f"p{i}",
                                     "ts": ts + 2000, "model": ev["model"]}
            if ev["model"] == "reg":
                fb["value"] = float(rng.normal(10, 2))
            else:
                fb["label"] = "yes" if rng.random() < 0.6 else "no"
            fbs.append((i, orjson.dumps(fb)))
    fb_pos = 0
    for b0 in range(0, n, batch):
        # a few labels of the next batch arrive before their predictions
        early = [v for i, v in fbs if b0 + batch <= i < b0 + batch + 20]
        yield "p", [Raw(v, "pred", 0, b0 + j) for j, v in enumerate(preds[b0:b0 + batch])]
        due = []
        while fb_pos < len(fbs) and fbs[fb_pos][0] < b0 + batch:
            due.append(fbs[fb_pos][1])
            fb_pos += 1
        yield "f", [Raw(v, "fb", 0, b0 * 2 + j) for j, v in enumerate(due + early)]
