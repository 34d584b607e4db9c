"""Synthetic incident traffic as raw ``prediction.v1``/``feedback.v1`` JSON bytes, for tests, the bench
and demos. Deterministic for a given seed; event time is simulated (``t0_ms`` + offsets)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import orjson

DEVICES = ("pixel-8", "iphone-15", "galaxy-s24")
NEW_DEVICE = "pixel-10-pro"


@dataclass(frozen=True)
class Event:
    """One message: topic kind (``prediction``/``feedback``), key, value bytes, event ts."""

    kind: str
    key: bytes
    value: bytes
    ts: int


def new_camera(t0_ms: int = 1_764_140_040_000, baseline_s: int = 300, incident_s: int = 300, rate_per_s: int = 20,
               new_share: float = 0.25, seed: int = 7, model: str = "photo-verifier",
               version: str = "3.2.0") -> Iterator[Event]:
    """"The new camera": after ``baseline_s``, a new device sends images ~2.5x wider and taller; the
    model's accuracy on it falls from ~92% to ~55%, while other devices stay unchanged. Every
    prediction gets its label a few seconds later."""
    rng = np.random.default_rng(seed)
    total = (baseline_s + incident_s) * rate_per_s
    key = model.encode()
    for i in range(total):
        ts = t0_ms + int(i * 1000 / rate_per_s)
        incident = i >= baseline_s * rate_per_s
        new = incident and rng.random() < new_share
        device = NEW_DEVICE if new else DEVICES[int(rng.integers(len(DEVICES)))]
        width = float(rng.normal(10000 if new else 4000, 400 if new else 300))
        height = float(rng.normal(7500 if new else 3000, 300 if new else 250))
        acc = 0.55 if new else 0.92
        truth = "genuine" if rng.random() < 0.7 else "fake"
        correct = rng.random() < acc
        pred = truth if correct else ("fake" if truth == "genuine" else "genuine")
        p_gen = float(np.clip(rng.beta(8, 2) if pred == "genuine" else rng.beta(2, 8), 0.0, 1.0))
        ev = {
            "schema_version": "prediction.v1", "event_id": f"e{i}", "prediction_id": f"p{i}", "ts": ts,
            "model": model, "model_version": version, "latency_ms": float(rng.lognormal(3.0, 0.3)),
            "inputs": {"image_width": round(width), "image_height": round(height),
                       "brightness": float(rng.beta(5, 3)), "has_face": bool(rng.random() < 0.9),
                       "exif_iso": None if rng.random() < 0.1 else int(rng.choice([100, 200, 400, 800]))},
            "outputs": {"label": pred, "score": max(p_gen, 1 - p_gen),
                        "probabilities": {"genuine": p_gen, "fake": 1 - p_gen}},
            "segment": {"device": device, "region": ("eu", "us", "apac")[i % 3], "app_version": ("8.1", "8.2")[i % 2]},
        }
        yield Event("prediction", key, orjson.dumps(ev), ts)
        fb = {"schema_version": "feedback.v1", "event_id": f"f{i}", "prediction_id": f"p{i}", "ts": ts + 2000,
              "model": model, "label": truth}
        yield Event("feedback", key, orjson.dumps(fb), ts + 2000)


def wide_event(i: int, ts: int, rng: np.random.Generator, n_num: int = 15, n_cat: int = 5, shift: float = 0.0) -> bytes:
    """A prediction with ``n_num`` numeric and ``n_cat`` categorical features and 3 segment keys (bench)."""
    inputs: dict[str, object] = {f"x{j}": float(rng.normal(shift if j == 0 else 0.0, 1.0)) for j in range(n_num)}
    for j in range(n_cat):
        inputs[f"c{j}"] = ("a", "b", "c", "d", "e")[int(rng.integers(5))]
    ev = {
        "schema_version": "prediction.v1", "event_id": f"e{i}", "prediction_id": f"p{i}", "ts": ts,
        "model": "bench-model", "model_version": "1", "latency_ms": float(rng.lognormal(2.0, 0.5)),
        "inputs": inputs, "outputs": {"label": "yes" if rng.random() < 0.5 else "no", "score": float(rng.random())},
        "segment": {"device": f"d{int(rng.integers(8))}", "region": f"r{int(rng.integers(4))}", "plan": f"p{int(rng.integers(3))}"},
    }
    return orjson.dumps(ev)
