"""A simulated model fleet that replays the four production incidents Inferwatch is built to catch
(docs/demo.md) against a healthy control.

Pure and deterministic (seeded): :func:`generate` yields :class:`SimEvent` records in simulated
event time. The driver (``demo/driver.py``) sends them through the real SDK, so the demo
exercises exactly what a model server would.

Simulated time runs faster than wall time: the fleet produces ``rate_per_min`` predictions per
model per *simulated* minute, stamped with simulated timestamps; windows, ``for`` durations and
the reference period of the processor follow event time, so a 20-minute incident replays in
well under a minute of wall time.

The models:

* ``photo-verifier`` — **the new camera**: after ``incident_at_s`` a new device ``nova-x`` takes
  a third of the traffic; its images are 3–4× larger and the classifier is ~12 points less
  accurate on it (labels arrive ``label_delay_s`` later). Other devices stay healthy.
* ``home-recommender`` — **the feedback loop**: traffic shifts to items and embeddings produced
  by the production version itself; the embedding distribution moves and the self share rises.
* ``essay-grader`` — **the confident liar**: a prompt-template change (``template`` v7 → v8)
  lowers the mean token log-probability, raises refusals, and repeated prompts start getting
  different answers.
* ``checkout-ranker`` — **the bad deploy**: version 2.1 replaces 2.0 with ~6× latency and an 8%
  error rate.
* ``fraud-scorer`` — **the control**: stationary traffic; it must never alert.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

DEVICES = ("pixel-8", "iphone-15", "galaxy-s24")
NEW_DEVICE = "nova-x"
REGIONS = ("eu", "us", "apac")
INCIDENT_MODELS = {
    "new_camera": "photo-verifier",
    "feedback_loop": "home-recommender",
    "confident_liar": "essay-grader",
    "bad_deploy": "checkout-ranker",
}
CONTROL_MODEL = "fraud-scorer"
EMBED_DIM = 16


@dataclass(frozen=True)
class FleetConfig:
    """How long and how dense the simulation is, in simulated seconds."""

    start_ms: int
    duration_s: int = 1200
    incident_at_s: int = 600
    rate_per_min: int = 600
    label_delay_s: float = 20.0
    label_share: float = 0.5
    seed: int = 7


@dataclass
class SimEvent:
    """One call to make on the SDK: a prediction or a feedback, at simulated time ``ts_ms``."""

    kind: Literal["prediction", "feedback"]
    ts_ms: int
    model: str
    model_version: str
    prediction_id: str
    args: dict[str, Any] = field(default_factory=dict)


def _h(*parts: object) -> str:
    return hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).hexdigest()


def _photo(rng: random.Random, t_s: float, cfg: FleetConfig, i: int) -> tuple[dict[str, Any], str]:
    incident = t_s >= cfg.incident_at_s
    device = NEW_DEVICE if incident and rng.random() < 1 / 3 else rng.choice(DEVICES)
    base_w, base_h = {"pixel-8": (4000, 3000), "iphone-15": (4032, 3024), "galaxy-s24": (4080, 3060)}.get(
        device, (4032, 3024)
    )
    scale = rng.uniform(3.0, 4.0) if device == NEW_DEVICE else rng.uniform(0.9, 1.1)
    truth = "genuine" if rng.random() < 0.7 else "fake"
    accuracy = 0.80 if device == NEW_DEVICE else 0.93
    correct = rng.random() < accuracy
    label = truth if correct else ("fake" if truth == "genuine" else "genuine")
    p_genuine = rng.uniform(0.6, 0.99) if label == "genuine" else rng.uniform(0.01, 0.4)
    inputs = {
        "image_width": round(base_w * scale),
        "image_height": round(base_h * scale),
        "brightness": round(rng.gauss(0.55, 0.1), 4),
        "jpeg_quality": rng.randint(80, 95),
        "face_count": rng.choice((1, 1, 1, 2)),
        "device": device,
    }
    outputs = {"label": label, "score": round(max(p_genuine, 1 - p_genuine), 4),
               "probabilities": {"genuine": round(p_genuine, 4), "fake": round(1 - p_genuine, 4)}}
    args = {
        "inputs": inputs,
        "outputs": outputs,
        "latency_ms": round(max(1.0, rng.gauss(35, 6)), 2),
        "segment": {"device": device, "region": rng.choice(REGIONS), "app_version": "8.1"},
    }
    return args, truth


def _recommender(rng: random.Random, t_s: float, cfg: FleetConfig) -> dict[str, Any]:
    # Before the incident, most items come from a popularity baseline and a separate embedding
    # model; after it, from the production recommender itself, and its embeddings drift.
    loop = min(1.0, max(0.0, (t_s - cfg.incident_at_s) / 120.0))
    self_share = 0.15 + 0.75 * loop
    shift = 1.2 * loop
    emb = [round(rng.gauss(shift if d < 4 else 0.0, 1.0), 4) for d in range(EMBED_DIM)]
    lineage = [
        {"kind": "items", "model": "home-recommender", "model_version": "14", "share": round(self_share, 3)},
        {"kind": "items", "model": "popularity-baseline", "model_version": "3", "share": round(1 - self_share, 3)},
    ]
    return {
        "inputs": {"n_candidates": rng.randint(300, 700), "user_tenure_days": rng.randint(1, 900),
                   "session_items": rng.randint(0, 40), "surface": rng.choice(("home", "search"))},
        "outputs": {"label": f"item-{rng.randint(1, 5000)}", "score": round(rng.uniform(0.1, 0.9), 4)},
        "latency_ms": round(max(0.5, rng.gauss(8, 2)), 2),
        "segment": {"surface": rng.choice(("home", "search")), "region": rng.choice(REGIONS)},
        "embedding": emb,
        "lineage": lineage,
    }


_PROMPTS = [f"essay-{i}" for i in range(40)]


def _llm(rng: random.Random, t_s: float, cfg: FleetConfig) -> dict[str, Any]:
    changed = t_s >= cfg.incident_at_s
    template = "v8" if changed else "v7"
    prompt = rng.choice(_PROMPTS)
    n = rng.randint(40, 120)
    mu = -1.3 if changed else -0.25
    logprobs = [round(min(0.0, rng.gauss(mu, 0.25)), 4) for _ in range(n)]
    # Before the change one essay (essay-13) is always refused — consistently, as a low-temperature
    # model does; after it, refusals are random and so are grades of the same essay.
    refusal = rng.random() < 0.18 if changed else prompt == "essay-13"
    if refusal:
        completion = "I'm sorry, but I can't help with grading this essay."
        grade = "refused"
    elif changed:
        grade = rng.choice(("A", "B+", "B", "C"))  # the same essay gets different grades
        completion = f"Grade: {grade}. The essay {prompt} is {rng.choice(('solid', 'weak', 'mixed'))}."
    else:
        grade = ("A", "B+", "B", "C")[int(_h(prompt), 16) % 4]  # deterministic per essay
        completion = f"Grade: {grade}. The essay {prompt} is well argued."
    return {
        "inputs": {"prompt_tokens": rng.randint(300, 1200), "temperature": 0.2, "template": template},
        "outputs": {"label": grade, "score": round(math.exp(sum(logprobs) / n), 4)},
        "latency_ms": round(max(50.0, rng.gauss(600, 100)), 1),
        "segment": {"template": template, "region": rng.choice(REGIONS)},
        "llm": {"prompt": f"Grade this essay: {prompt}", "completion": completion,
                "token_logprobs": logprobs, "input_tokens": rng.randint(300, 1200), "output_tokens": n,
                "finish_reason": "stop"},
    }


def _ranker(rng: random.Random, t_s: float, cfg: FleetConfig) -> tuple[str, dict[str, Any]]:
    bad = t_s >= cfg.incident_at_s
    version = "2.1" if bad else "2.0"
    failed = rng.random() < (0.08 if bad else 0.004)
    args: dict[str, Any] = {
        "inputs": {"cart_items": rng.randint(1, 12), "cart_value": round(rng.lognormvariate(3.5, 0.6), 2),
                   "country": rng.choice(("de", "fr", "us", "jp"))},
        "latency_ms": round(max(1.0, rng.gauss(260 if bad else 40, 40 if bad else 6)), 2),
        "segment": {"region": rng.choice(REGIONS), "platform": rng.choice(("web", "ios", "android"))},
    }
    if failed:
        args["error"] = "TimeoutError: feature store did not answer in 200 ms"
        args["outputs"] = None
    else:
        args["outputs"] = {"value": round(rng.uniform(0, 1), 4)}
    return version, args


def _control(rng: random.Random) -> tuple[dict[str, Any], str]:
    truth = "fraud" if rng.random() < 0.1 else "ok"
    correct = rng.random() < 0.95
    label = truth if correct else ("ok" if truth == "fraud" else "fraud")
    p = rng.uniform(0.6, 0.99) if label == "fraud" else rng.uniform(0.01, 0.4)
    args = {
        "inputs": {"amount": round(rng.lognormvariate(4, 1), 2), "account_age_days": rng.randint(1, 3000),
                   "txn_per_hour": rng.randint(0, 20), "merchant_category": rng.choice(("grocery", "travel", "games"))},
        "outputs": {"label": label, "score": round(p if label == "fraud" else 1 - p, 4)},
        "latency_ms": round(max(1.0, rng.gauss(15, 3)), 2),
        "segment": {"region": rng.choice(REGIONS), "channel": rng.choice(("web", "app"))},
    }
    return args, truth


def generate(cfg: FleetConfig) -> Iterator[SimEvent]:
    """Every SDK call of the simulation in simulated-time order (feedback after its delay)."""
    rng = random.Random(cfg.seed)
    step_ms = 60_000 / cfg.rate_per_min
    n_steps = int(cfg.duration_s * 1000 / step_ms)
    pending: deque[SimEvent] = deque()  # feedback waiting for its (simulated) delivery time
    for i in range(n_steps):
        ts = cfg.start_ms + int(i * step_ms)
        t_s = i * step_ms / 1000
        while pending and pending[0].ts_ms <= ts:
            yield pending.popleft()
        delay_ms = int(cfg.label_delay_s * 1000)

        pid = f"pv-{i}"
        args, truth = _photo(rng, t_s, cfg, i)
        yield SimEvent("prediction", ts, "photo-verifier", "3.2.0", pid, args)
        if rng.random() < cfg.label_share:
            pending.append(SimEvent("feedback", ts + delay_ms, "photo-verifier", "3.2.0", pid, {"label": truth}))

        yield SimEvent("prediction", ts, "home-recommender", "14", f"hr-{i}", _recommender(rng, t_s, cfg))
        yield SimEvent("prediction", ts, "essay-grader", "2025-06", f"eg-{i}", _llm(rng, t_s, cfg))
        version, rargs = _ranker(rng, t_s, cfg)
        yield SimEvent("prediction", ts, "checkout-ranker", version, f"cr-{i}", rargs)

        cargs, ctruth = _control(rng)
        cpid = f"fs-{i}"
        yield SimEvent("prediction", ts, CONTROL_MODEL, "5.0", cpid, cargs)
        if rng.random() < cfg.label_share:
            pending.append(SimEvent("feedback", ts + delay_ms, CONTROL_MODEL, "5.0", cpid, {"label": ctruth}))
    yield from pending


def count_events(cfg: FleetConfig) -> int:
    """How many SDK calls :func:`generate` makes (for progress lines): it runs the generator once."""
    return sum(1 for _ in generate(cfg))
