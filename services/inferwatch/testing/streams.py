"""Replayable drift streams with a known answer, for the detection-quality benchmark (``make bench``,
``bench/bench_detect.py``) and its tests.

Every stream is built only from data that installed packages ship — scikit-learn's bundled
datasets (iris, wine, breast_cancer, diabetes; nothing downloaded) and numpy generators — and holds
two models as raw ``prediction.v1``/``feedback.v1`` JSON bytes in event-time order:

* the *drifted* model: traffic over several values of one segment key; at ``drift_start_ms``
  (half-way, deliberately not on a window boundary) one segment value (the *affected* one)
  changes — its inputs, its labels (seen only through delayed feedback), its embeddings or its
  LLM token log-probabilities — or appears for the first time (a new segment); the other values
  (the *clean* segments) keep their distribution;
* the *control* model: the same data and segments, never drifting.

The model making the predictions is fitted once on the bundled dataset (a scaled logistic
regression), so predictions on shifted inputs change the way a deployed model's would. Embeddings
are computed locally: a fixed random projection of the standardised features plus noise. LLM
token log-probabilities are synthetic (a gamma-distributed surprisal per token).

``build(name)`` is deterministic: the same name and seed give the same bytes. ``Stream.truth``
records what the generator did (drift start, segment), which the tests check against the bytes.

(scikit-learn's digits and river's SEA generator are left out on purpose: they are reserved for an
independent evaluation.)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from inferwatch.testing.scenarios import Event

T0_MS = 1_764_140_040_000  # on a minute boundary
DURATION_S = 960  # the drift starts half-way
DRIFT_OFFSET_S = 17  # after half-way: a drift does not wait for a window boundary
RATE_PER_S = 15  # predictions per second per model

FloatArr = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Truth:
    """The known answer of a stream: which model drifted, where, from when, and how."""

    kind: str  # input | concept | new_segment | embedding | llm
    model: str
    control: str
    segment_key: str
    affected: str
    clean: tuple[str, ...]
    drift_start_ms: int
    label_delay_s: float | None  # None: the stream carries no labels
    label_only: bool  # the drift shows only in the labels
    description: str
    # what the drift moves, as substrings of metric or column names (``input.alcohol``, ``emb.3``):
    # an alarm on the affected segment for another signal is chance, not detection; empty: any signal
    signals: tuple[str, ...] = ()

    @property
    def segment(self) -> str:
        """The affected segment as alerts name it (``key=value``)."""
        return f"{self.segment_key}={self.affected}"


@dataclass
class Stream:
    """A scenario's events (both models, event-time order) and its known answer."""

    name: str
    truth: Truth
    events: list[Event] = field(default_factory=list)


@dataclass(frozen=True)
class Dataset:
    """A bundled dataset, standardised, with a fitted classifier (or regressor) of it."""

    name: str
    x: FloatArr  # raw feature values
    y: npt.NDArray[Any]  # class names (str) or target values (float)
    features: tuple[str, ...]
    mean: FloatArr
    std: FloatArr
    classes: tuple[str, ...]  # empty for regression
    predict: Callable[[FloatArr], tuple[npt.NDArray[Any], FloatArr]]  # -> (label or value, score)


def _feature_name(s: str) -> str:
    out = "".join(c if c.isalnum() else "_" for c in str(s).strip()).strip("_").lower()
    while "__" in out:
        out = out.replace("__", "_")
    return out


@functools.cache
def dataset(name: str) -> Dataset:
    """One of scikit-learn's bundled datasets with a model fitted on it (deterministic)."""
    from sklearn import datasets
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    loaders = {"iris": datasets.load_iris, "wine": datasets.load_wine,
               "breast_cancer": datasets.load_breast_cancer, "diabetes": datasets.load_diabetes}
    if name not in loaders:
        raise ValueError(f"unknown dataset {name!r}; one of {sorted(loaders)}")
    b = loaders[name]()
    x = np.asarray(b.data, dtype=np.float64)
    feats = tuple(_feature_name(f) for f in b.feature_names)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-12
    if name == "diabetes":
        reg = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(x, b.target)

        def predict_reg(rows: FloatArr) -> tuple[npt.NDArray[Any], FloatArr]:
            v = reg.predict(rows)
            return v, np.zeros(len(rows))

        return Dataset(name, x, np.asarray(b.target, dtype=np.float64), feats, mean, std, (), predict_reg)
    classes = tuple(str(c) for c in b.target_names)
    y = np.asarray([classes[int(t)] for t in b.target], dtype=object)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5)).fit(x, b.target)

    def predict(rows: FloatArr) -> tuple[npt.NDArray[Any], FloatArr]:
        p = clf.predict_proba(rows)
        k = p.argmax(axis=1)
        return np.asarray([classes[int(i)] for i in k], dtype=object), p.max(axis=1)

    return Dataset(name, x, y, feats, mean, std, classes, predict)


@dataclass(frozen=True)
class Spec:
    """How one scenario is generated (see :data:`SCENARIOS`)."""

    kind: str
    data: str
    segment_key: str
    values: tuple[str, ...]  # segment values; the first is the affected one
    description: str
    shift_std: dict[str, float] = field(default_factory=dict)  # input feature -> shift in its std units
    scale: dict[str, float] = field(default_factory=dict)  # input feature -> multiplicative change
    flip: float = 0.0  # share of the affected segment's labels replaced by another class after the drift
    label_delay_s: float | None = 5.0
    category_after: tuple[float, ...] | None = None  # the categorical input's new mix
    embedding_shift: float = 0.0  # mean shift of the embedding, in units of its per-dimension std
    logprob_drop_nats: float = 0.0
    new_segment: bool = False


CATEGORY_VALUES = ("a", "b", "c")
CATEGORY_BEFORE = (0.6, 0.3, 0.1)
EMBED_DIM = 16

SCENARIOS: dict[str, Spec] = {
    "input_shift_wine": Spec(
        "input", "wine", "region", ("eu", "us", "apac"),
        "wine: alcohol and proline rise by 1 std in region=eu",
        shift_std={"alcohol": 1.0, "proline": 1.0}),
    "input_scale_breast_cancer": Spec(
        "input", "breast_cancer", "clinic", ("north", "south", "east"),
        "breast_cancer: a unit change scales mean_area and worst_area by 1.5 in clinic=north",
        scale={"mean_area": 1.5, "worst_area": 1.5}),
    "input_category_iris": Spec(
        "input", "iris", "site", ("s1", "s2", "s3"),
        "iris: the categorical input 'instrument' moves from a/b/c 60/30/10% to 20/30/50% at site=s1",
        category_after=(0.2, 0.3, 0.5)),
    "concept_delayed_breast_cancer": Spec(
        "concept", "breast_cancer", "clinic", ("north", "south", "east"),
        "breast_cancer: 30% of clinic=south's true labels flip; inputs unchanged; labels 120 s late",
        flip=0.3, label_delay_s=120.0),
    "concept_delayed_wine_10pts": Spec(
        "concept", "wine", "region", ("eu", "us", "apac"),
        "wine: accuracy in region=apac falls by ~10 points (labels flip); inputs unchanged; labels 60 s late",
        flip=0.1, label_delay_s=60.0),
    "new_segment_iris": Spec(
        "new_segment", "iris", "device", ("cam-new", "cam-a", "cam-b"),
        "iris: device=cam-new appears with inputs +0.5 std and accuracy ~10 points lower",
        shift_std={"sepal_length_cm": 0.5, "sepal_width_cm": 0.5, "petal_length_cm": 0.5, "petal_width_cm": 0.5},
        flip=0.1, new_segment=True),
    "new_segment_diabetes": Spec(
        "new_segment", "diabetes", "clinic", ("clinic-new", "clinic-a", "clinic-b"),
        "diabetes (regression): clinic=clinic-new appears with older, heavier patients (age, bmi +1 std)",
        shift_std={"age": 1.0, "bmi": 1.0}, new_segment=True),
    "embedding_tenant_breast_cancer": Spec(
        "embedding", "breast_cancer", "tenant", ("t-blue", "t-green", "t-red"),
        "breast_cancer embeddings (16-d random projection): tenant=t-blue's embeddings shift by 0.5 std",
        embedding_shift=0.5, label_delay_s=None),
    "embedding_tenant_wine": Spec(
        "embedding", "wine", "tenant", ("t-blue", "t-green", "t-red"),
        "wine embeddings (16-d random projection): tenant=t-green's embeddings shift by 1 std",
        embedding_shift=1.0, label_delay_s=None),
    "llm_confidence_customer": Spec(
        "llm", "iris", "customer", ("acme", "globex", "initech"),
        "LLM grader: customer=acme's mean token log-probability falls by 0.4 nats",
        logprob_drop_nats=0.4, label_delay_s=None),
}
# the affected value of each scenario: the first, except where the description says otherwise
_AFFECTED = {"concept_delayed_breast_cancer": "south", "concept_delayed_wine_10pts": "apac",
             "embedding_tenant_wine": "t-green"}


def affected_value(name: str) -> str:
    """The segment value that drifts in scenario ``name``."""
    return _AFFECTED.get(name, SCENARIOS[name].values[0])


def _seed(name: str, seed: int) -> int:
    return int.from_bytes(name.encode()[:8].ljust(8, b"\0"), "little") % (2**31) + seed


def build(name: str, seed: int = 0, duration_s: int = DURATION_S, rate_per_s: int = RATE_PER_S) -> Stream:
    """The events of scenario ``name`` (drifted model + control), deterministic for ``seed``."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; one of {sorted(SCENARIOS)}")
    spec = SCENARIOS[name]
    aff = affected_value(name)
    drift_start = T0_MS + (duration_s // 2 + DRIFT_OFFSET_S) * 1000
    model = name.replace("_", "-")
    truth = Truth(kind=spec.kind, model=model, control=f"{model}-control", segment_key=spec.segment_key,
                  affected=aff, clean=tuple(v for v in spec.values if v != aff), drift_start_ms=drift_start,
                  label_delay_s=spec.label_delay_s, label_only=spec.kind == "concept",
                  description=spec.description, signals=_signals(spec))
    events: list[Event] = []
    for drifted, m in ((True, truth.model), (False, truth.control)):
        rng = np.random.default_rng(_seed(name, seed) + (0 if drifted else 1_000_003))
        events += _model_events(spec, truth, m, drifted, rng, duration_s, rate_per_s)
    events.sort(key=lambda e: (e.ts, e.kind != "prediction"))  # stable: a model's order is kept
    return Stream(name, truth, events)


def _signals(spec: Spec) -> tuple[str, ...]:
    if spec.kind == "new_segment":
        return ()  # a segment never seen before: any signal of it is news
    if spec.kind == "concept":
        return ("perf.", "label.")
    if spec.kind == "embedding":
        return ("embedding.", "emb.")
    if spec.kind == "llm":
        return ("llm.logprob",)
    feats = [*spec.shift_std, *spec.scale] + (["instrument"] if spec.category_after is not None else [])
    # the processor's metric names (input.<f>.psi) and the peer's column names (in.<f>)
    return tuple(f"input.{f}." for f in feats) + tuple(f"in.{f}" for f in feats)


def _model_events(spec: Spec, truth: Truth, model: str, drifted: bool, rng: np.random.Generator,
                  duration_s: int, rate_per_s: int) -> list[Event]:
    ds = dataset(spec.data)
    n = duration_s * rate_per_s
    ts = T0_MS + (np.arange(n) * 1000 // rate_per_s).astype(np.int64)
    post = ts >= truth.drift_start_ms
    new_segment = spec.new_segment and drifted  # the control never drifts: no new segment either
    old_values = [v for v in spec.values if v != truth.affected] if spec.new_segment else list(spec.values)
    seg = np.asarray([old_values[i] for i in rng.integers(len(old_values), size=n)], dtype=object)
    if new_segment:  # the new value takes an equal share of the traffic from the drift on
        seg[post] = np.asarray([spec.values[i] for i in rng.integers(len(spec.values), size=int(post.sum()))],
                               dtype=object)
    hit = post & (seg == truth.affected) & drifted
    rows = rng.integers(len(ds.x), size=n)
    x = ds.x[rows] + rng.normal(0.0, 0.05, size=(n, len(ds.features))) * ds.std  # no two rows alike
    y = ds.y[rows].copy()
    for f, k in spec.shift_std.items():
        j = ds.features.index(f)
        x[hit, j] += k * ds.std[j]
    for f, k in spec.scale.items():
        j = ds.features.index(f)
        x[hit, j] *= k
    out, score = ds.predict(x)
    if spec.flip and ds.classes:
        flip = hit & (rng.random(n) < spec.flip)
        other = rng.integers(1, len(ds.classes), size=n)
        idx = np.asarray([ds.classes.index(c) for c in y])
        y = np.where(flip, np.asarray(ds.classes, dtype=object)[(idx + other) % len(ds.classes)], y)
    cat = None
    if spec.category_after is not None:
        before = rng.choice(len(CATEGORY_VALUES), size=n, p=CATEGORY_BEFORE)
        after = rng.choice(len(CATEGORY_VALUES), size=n, p=spec.category_after)
        cat = np.where(hit, after, before)
    emb = None
    if spec.kind == "embedding":
        proj = np.random.default_rng(_seed(spec.data, 99)).normal(size=(len(ds.features), EMBED_DIM))
        emb = ((x - ds.mean) / ds.std) @ proj / np.sqrt(len(ds.features)) + rng.normal(0, 0.3, (n, EMBED_DIM))
        direction = np.random.default_rng(_seed(spec.data, 7)).normal(size=EMBED_DIM)
        direction /= np.linalg.norm(direction)
        emb[hit] += spec.embedding_shift * emb.std(axis=0).mean() * direction
    evs: list[Event] = []
    key = model.encode()
    latency = np.round(rng.lognormal(3.0, 0.25, size=n), 2).tolist()
    xs = np.round(x, 5).tolist()
    embs = np.round(emb, 5).tolist() if emb is not None else None
    outs = out.tolist()
    scores = score.tolist()
    labels = y.tolist()
    segs = seg.tolist()
    for i in range(n):
        t = int(ts[i])
        ev: dict[str, Any] = {
            "schema_version": "prediction.v1", "event_id": f"{model}-e{i}", "prediction_id": f"{model}-p{i}",
            "ts": t, "model": model, "model_version": "1", "latency_ms": latency[i],
            "segment": {spec.segment_key: segs[i]},
        }
        if spec.kind == "llm":
            ev["outputs"] = {"label": str(outs[i]), "score": scores[i]}
            ev["llm"] = _llm_block(rng, bool(hit[i]), spec.logprob_drop_nats, i)
        elif embs is not None:
            ev["outputs"] = {"label": str(outs[i]), "score": scores[i]}
            ev["embedding"] = embs[i]
        else:
            inputs: dict[str, Any] = dict(zip(ds.features, xs[i], strict=True))
            if cat is not None:
                inputs["instrument"] = CATEGORY_VALUES[int(cat[i])]
            ev["inputs"] = inputs
            ev["outputs"] = {"value": outs[i]} if not ds.classes else {"label": str(outs[i]), "score": scores[i]}
        evs.append(Event("prediction", key, orjson.dumps(ev), t))
        if spec.label_delay_s is not None:
            ft = t + int(spec.label_delay_s * 1000)
            fb: dict[str, Any] = {"schema_version": "feedback.v1", "event_id": f"{model}-f{i}",
                                  "prediction_id": f"{model}-p{i}", "ts": ft, "model": model}
            if ds.classes:
                fb["label"] = str(labels[i])
            else:
                fb["value"] = float(labels[i])
            evs.append(Event("feedback", key, orjson.dumps(fb), ft))
    return evs


def _llm_block(rng: np.random.Generator, hit: bool, drop: float, i: int) -> dict[str, Any]:
    """One response's token log-probabilities: surprisal ~ gamma (mean 0.35 nats), ``drop`` more when hit."""
    k = int(rng.integers(20, 60))
    mean = 0.35 + (drop if hit else 0.0)
    lps = -rng.gamma(0.6, mean / 0.6, size=k)
    lps = np.maximum(lps, -30.0)
    return {"token_logprobs": [round(float(v), 4) for v in lps], "output_tokens": k,
            "completion_chars": 4 * k, "prompt_hash": f"h{i}", "completion_hash": f"c{i}"}
