"""Columnar view of a group of predictions (one model version, one window): numpy arrays per field.

This is the one place that walks events in Python; everything after it is vectorised.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter, methodcaller

import numpy as np
import numpy.typing as npt

from inferwatch.processor.core.cbpe import predicted_confidence
from inferwatch.processor.core.raw_events import Prediction

F64 = npt.NDArray[np.float64]
NAN = math.nan


@dataclass
class LLMCols:
    """Per-event LLM signals (NaN where absent); ``has`` marks events with an llm block."""

    has: npt.NDArray[np.bool_]
    lp_sum: F64
    lp_n: F64
    lp_min: F64
    ent_sum: F64
    ent_n: F64
    out_tokens: F64
    chars: F64
    empty: npt.NDArray[np.bool_]
    refusal: npt.NDArray[np.bool_]
    prompt_hash: list[str | None]
    completion_hash: list[str | None]


@dataclass(frozen=True)
class Coded:
    """A string column as integer codes into ``values`` (-1 where missing): what the columnar fast
    path builds instead of a list of strings, so per-value work is once per distinct value."""

    codes: npt.NDArray[np.int32]
    values: list[str]

    def __len__(self) -> int:
        return len(self.codes)

    def first_seen(self) -> list[int]:
        """The distinct codes (``-1`` included when present) in order of first appearance."""
        c = self.codes
        if not len(c):
            return []
        present = np.bincount(c.astype(np.int64) + 1, minlength=len(self.values) + 1)
        distinct = np.flatnonzero(present) - 1
        if len(distinct) <= 32:  # the usual case: a few values, one vectorised scan each
            first = {int(np.argmax(c == v)): v for v in distinct.tolist()}
            return [first[i] for i in sorted(first)]
        u, pos = np.unique(c, return_index=True)
        return u[np.argsort(pos, kind="stable")].tolist()  # type: ignore[no-any-return]


StrCol = list[str | None] | Coded
"""A string column: a list of values (None where missing) or their :class:`Coded` form."""


@dataclass
class Columns:
    """One group's columns. ``num``/``cat`` hold features plus the outputs (``@score``, ``@value``, ``@class``)."""

    n: int
    ts: npt.NDArray[np.int64]
    segments: dict[str, StrCol]
    latency: F64
    error: npt.NDArray[np.bool_]
    num: dict[str, F64]
    cat: dict[str, StrCol]
    pos_name: list[str | None]
    pos_score: F64
    llm: LLMCols | None = None
    embedding: F64 | None = None
    embedding_rows: npt.NDArray[np.int64] | None = None
    lineage: list[dict[str, float]] | None = None
    lineage_self: F64 | None = None
    extra: dict[str, object] = field(default_factory=dict)
    matrix: tuple[list[str], F64] | None = None
    """Numeric input features as one ``[n, F]`` array (names in column order) when they could be
    built at once; ``num`` then holds column views of it. Lets the accumulator bin every feature
    with a few whole-array operations instead of a few per feature."""
    conf: F64 | None = None
    """Per event, how sure the model is of its predicted class (NaN where it did not say; None when
    no event did): :func:`inferwatch.processor.core.cbpe.predicted_confidence`."""


def _num_or_cat(vals: Sequence[object]) -> tuple[F64 | None, list[str | None] | None]:
    try:
        return np.array(vals, dtype=np.float64), None  # None -> NaN (missing), bool -> 0/1
    except (TypeError, ValueError):
        return None, [None if v is None else str(v) for v in vals]


def _dict_columns(dicts: list[dict[str, object]], keys: list[str]) -> list[Sequence[object]]:
    """Per key, the values of every dict (None where absent), built by C-level maps: when every dict
    has every key (the usual case) one ``itemgetter`` call per dict and a transpose, else one
    ``dict.get`` map per key."""
    if not keys:
        return []
    if len(keys) > 1:
        try:
            return list(zip(*map(itemgetter(*keys), dicts), strict=True)) if dicts else [() for _ in keys]
        except KeyError:
            pass
    return [list(map(methodcaller("get", k), dicts)) for k in keys]


def _numeric_matrix(dicts: list[dict[str, object]], keys: list[str]) -> tuple[list[str], F64] | None:
    """The keys whose first present value is a number, as one ``[n, F]`` float array built by one C
    call, or None when that is not possible (a key missing somewhere, a string in such a column):
    the caller then builds columns one by one."""
    if not dicts or not keys:
        return None
    first = dicts[0]
    names = [k for k in keys if isinstance(first.get(k), (int, float))]
    if len(names) < 2:
        return None
    try:
        m = np.array(list(map(itemgetter(*names), dicts)), dtype=np.float64)  # None -> NaN
    except (KeyError, TypeError, ValueError):
        return None
    return names, m


def _entropy(top: list[list[float]]) -> tuple[float, int]:
    s = 0.0
    for alts in top:
        if not alts:
            continue
        p = np.exp(np.asarray(alts))
        p = p / p.sum()  # the top-k renormalised: entropy of the truncated distribution
        s += float(-(p * np.log(np.maximum(p, 1e-300))).sum())
    return s, len(top)


def _text_hash(text: str | None) -> str | None:
    """A short stable hash of an LLM prompt or completion (equal texts, equal hashes)."""
    if text is None:
        return None
    return "t:" + hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def llm_columns(events: Sequence[Prediction], refusal: list[re.Pattern[str]]) -> LLMCols | None:
    """LLM signals per event, or None when no event has an llm block."""
    if not any(map(attrgetter("llm"), events)):
        return None
    n = len(events)
    out = {k: np.full(n, NAN) for k in ("lp_sum", "lp_n", "lp_min", "ent_sum", "ent_n", "out_tokens", "chars")}
    has = np.zeros(n, bool)
    empty = np.zeros(n, bool)
    refu = np.zeros(n, bool)
    ph: list[str | None] = [None] * n
    ch: list[str | None] = [None] * n
    for i, e in enumerate(events):
        b = e.llm
        if b is None:
            continue
        has[i] = True
        if b.token_logprobs:
            lp = b.token_logprobs
            out["lp_sum"][i] = sum(lp)
            out["lp_n"][i] = len(lp)
            out["lp_min"][i] = min(lp)
        if b.top_logprobs:
            s, k = _entropy(b.top_logprobs)
            out["ent_sum"][i] = s
            out["ent_n"][i] = k
        tokens = b.output_tokens if b.output_tokens is not None else (len(b.token_logprobs) if b.token_logprobs else None)
        if tokens is not None:
            out["out_tokens"][i] = tokens
        chars = b.completion_chars if b.completion_chars is not None else (len(b.completion) if b.completion is not None else None)
        if chars is not None:
            out["chars"][i] = chars
        empty[i] = chars == 0 or tokens == 0
        r = bool(b.refusal)
        if not r and b.completion:
            r = any(p.search(b.completion) for p in refusal)
        refu[i] = r
        # Callers that log the text but no hashes still get the consistency signal: hash the text here.
        ph[i] = b.prompt_hash if b.prompt_hash is not None else _text_hash(b.prompt)
        ch[i] = b.completion_hash if b.completion_hash is not None else _text_hash(b.completion)
    return LLMCols(has, out["lp_sum"], out["lp_n"], out["lp_min"], out["ent_sum"], out["ent_n"],
                   out["out_tokens"], out["chars"], empty, refu, ph, ch)


def positive_class(probs: dict[str, float] | None) -> tuple[str | None, float]:
    """For binary probabilities, the positive class (the larger name; AUC is symmetric) and its probability."""
    if not probs or len(probs) != 2:
        return None, NAN
    name = max(probs)
    return name, probs[name]


def _attr(objs: Sequence[object], name: str) -> list[object]:
    """``getattr(o, name)`` for every object, None for None objects."""
    if None in objs:  # type: ignore[operator]
        return [None if o is None else getattr(o, name) for o in objs]
    return list(map(attrgetter(name), objs))


def build_columns(events: Sequence[Prediction], refusal: list[re.Pattern[str]] | None = None,
                  max_features: int = 256) -> Columns:
    """Columns of ``events`` (all of one model version)."""
    n = len(events)
    ts = np.fromiter(map(attrgetter("ts"), events), np.int64, n)
    seg_dicts = list(map(attrgetter("segment"), events))
    in_dicts = list(map(attrgetter("inputs"), events))
    seg_keys = sorted(set().union(*seg_dicts)) if n else []
    in_keys = sorted(set().union(*in_dicts))[:max_features] if n else []
    segments: dict[str, StrCol] = {
        k: list(c) for k, c in zip(seg_keys, _dict_columns(seg_dicts, seg_keys), strict=True)  # type: ignore[arg-type]  # segment values are str or None
    }
    num: dict[str, F64] = {}
    cat: dict[str, StrCol] = {}
    matrix = _numeric_matrix(in_dicts, in_keys)
    if matrix is not None:
        for j, k in enumerate(matrix[0]):
            num[k] = matrix[1][:, j]
    rest = [k for k in in_keys if k not in num]
    for k, col in zip(rest, _dict_columns(in_dicts, rest), strict=True):
        x, c = _num_or_cat(col)
        if x is not None:
            num[k] = x
        else:
            assert c is not None
            cat[k] = c
    outs = list(map(attrgetter("outputs"), events))
    scores = _attr(outs, "score")
    if any(v is not None for v in scores):
        num["@score"] = np.array(scores, dtype=np.float64)
    values = _attr(outs, "value")
    if any(v is not None for v in values):
        num["@value"] = np.array(values, dtype=np.float64)
    labels = _attr(outs, "label")
    if any(v is not None for v in labels):
        cat["@class"] = labels  # type: ignore[assignment]
    probs = _attr(outs, "probabilities")
    if any(p is not None for p in probs):
        pos = [positive_class(p) for p in probs]  # type: ignore[arg-type]
        pos_name: list[str | None] = [p[0] for p in pos]
        pos_score = np.array([p[1] for p in pos], dtype=np.float64)
    else:
        pos_name = [None] * n
        pos_score = np.full(n, NAN)
    conf = np.fromiter(map(predicted_confidence, labels, scores, probs), np.float64, n)  # type: ignore[arg-type]
    lat = _attr(events, "latency_ms")  # type: ignore[arg-type]
    errs = _attr(events, "error")  # type: ignore[arg-type]
    cols = Columns(
        n=n,
        ts=ts,
        segments=segments,
        latency=np.array(lat, dtype=np.float64),
        error=np.array([e is not None for e in errs], dtype=bool) if n else np.zeros(0, bool),
        num=num,
        cat=cat,
        pos_name=pos_name,
        pos_score=pos_score,
        llm=llm_columns(events, refusal or []),
        matrix=matrix,
        conf=None if np.isnan(conf).all() else conf,
    )
    embs = list(map(attrgetter("embedding"), events))
    emb_idx = [i for i, e in enumerate(embs) if e is not None]
    if emb_idx:
        dim = len(embs[emb_idx[0]] or [])
        emb_idx = [i for i in emb_idx if len(embs[i] or []) == dim]
        cols.embedding = np.array([embs[i] for i in emb_idx], dtype=np.float64)
        cols.embedding_rows = np.array(emb_idx, dtype=np.int64)
    if any(map(attrgetter("lineage"), events)):
        lin: list[dict[str, float]] = []
        self_share = np.zeros(n)
        for i, e in enumerate(events):
            d: dict[str, float] = {}
            for ref in e.lineage or ():
                key = f"{ref.model}@{ref.model_version}"
                d[key] = min(1.0, d.get(key, 0.0) + ref.share)
                if ref.model == e.model:
                    self_share[i] += ref.share
            lin.append(d)
        cols.lineage = lin
        cols.lineage_self = np.minimum(self_share, 1.0)
    return cols
