"""Metrics of one slot of a window accumulator, drift against a reference slot, findings and the
segment contributions that localise them. Pure numpy; names as in ``schemas/METRICS.md``."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from inferwatch.processor.core import cbpe, drift_stats, performance
from inferwatch.processor.core.accumulator import Kind, WindowAcc
from inferwatch.processor.core.embedding import mmd_test
from inferwatch.processor.core.logbins import LATENCY_BINS
from inferwatch.processor.settings import ProcessorSettings

_OUT_NUM = {"@score": "output.score", "@value": "output.value"}


def metric_base(feature: str) -> str:
    """The metric prefix of a feature column: ``input.<f>``, ``output.score``, ``output.value``, ``output.class``."""
    if feature == "@class":
        return "output.class"
    return _OUT_NUM.get(feature, f"input.{feature}")


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def summary(acc: WindowAcc, slot: int, span_s: float) -> dict[str, float | None]:
    """Every metric of ``slot`` that needs no reference."""
    m: dict[str, float | None] = {}
    n = float(acc.get("count", slot))
    m["count"] = n
    m["throughput_per_s"] = n / span_s if span_s > 0 else None
    m["error_rate"] = _ratio(float(acc.get("errors", slot)), n)
    lat_n = float(acc.get("lat_n", slot))
    if lat_n > 0:
        q = LATENCY_BINS.quantiles(acc.get("lat_hist", slot), [0.5, 0.95, 0.99])
        m["latency_p50_ms"], m["latency_p95_ms"], m["latency_p99_ms"] = (float(x) for x in q)
        m["latency_mean_ms"] = float(acc.get("lat_sum", slot)) / lat_n
    for f in acc.names(Kind.COUNT):
        base = metric_base(f)
        k = float(acc.get(f, slot, Kind.COUNT))
        miss = float(acc.get(f, slot, Kind.MISSING))
        if acc.has(f, Kind.SUM) and k > 0:
            m[f"{base}_mean" if f.startswith("@") else f"{base}.mean"] = float(acc.get(f, slot, Kind.SUM)) / k
        if not f.startswith("@"):
            m[f"{base}.missing_rate"] = _ratio(miss, k + miss)
    if acc.has("@class", Kind.CAT):
        c = acc.get("@class", slot, Kind.CAT)
        tot = float(c.sum())
        if tot > 0:
            for lab, v in zip(acc.cats.get("@class", []), c.tolist(), strict=False):
                m[f"output.class_share.{lab}"] = v / tot
    labeled = float(acc.get("labeled", slot))
    if labeled > 0 or acc.has("labeled"):
        m["perf.label_coverage"] = _ratio(labeled, n)
    if acc.has("", Kind.CONF):
        m.update(performance.classification(acc.get("", slot, Kind.CONF)))
        if acc.has("auc_pos") and acc.has("auc_neg"):
            auc = performance.auc_from_hist(acc.get("auc_pos", slot), acc.get("auc_neg", slot))
            if auc is not None:
                m["perf.roc_auc"] = auc
    if acc.has("reg_n"):
        m.update(performance.regression(float(acc.get("reg_n", slot)), float(acc.get("reg_abs", slot)), float(acc.get("reg_sq", slot))))
    llm_n = float(acc.get("llm_n", slot))
    if llm_n > 0:
        lp_n = float(acc.get("lp_n", slot))
        if lp_n > 0:
            m["llm.logprob_mean"] = float(acc.get("lp_sum", slot)) / lp_n
            m["llm.logprob_min"] = float(acc.get("lp", slot, Kind.MIN))
        ent_n = float(acc.get("ent_n", slot))
        if ent_n > 0:
            m["llm.entropy_mean"] = float(acc.get("ent_sum", slot)) / ent_n
        if float(acc.get("tok_n", slot)) > 0:
            m["llm.output_tokens_mean"] = float(acc.get("tok_sum", slot)) / float(acc.get("tok_n", slot))
        if float(acc.get("chr_n", slot)) > 0:
            m["llm.output_chars_mean"] = float(acc.get("chr_sum", slot)) / float(acc.get("chr_n", slot))
        m["llm.empty_rate"] = float(acc.get("empty", slot)) / llm_n
        m["llm.refusal_rate"] = float(acc.get("refusal", slot)) / llm_n
        d = acc.incons.get(slot, {})
        rep = [e for e in d.values() if e[1] >= 2]
        m["llm.inconsistency_rate"] = sum(1 for e in rep if e[2]) / len(rep) if rep else 0.0
    if acc.has("lin_self") and n > 0:
        m["lineage.self_share"] = float(acc.get("lin_self", slot)) / n
        for name in acc.names(Kind.LINEAGE):
            m[f"lineage.share.{name}"] = float(acc.get(name, slot, Kind.LINEAGE)) / n
    return m


def _cbpe_counts(acc: WindowAcc, slot: int) -> cbpe.Counts:
    return cbpe.Counts.of(*(acc.get(n, slot) for n in (cbpe.HIST, cbpe.CSUM, cbpe.LAB, cbpe.LSUM, cbpe.HIT)))


def estimated_performance(acc: WindowAcc, slot: int, ref: WindowAcc | None,
                          ref_slot: int) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """Accuracy estimated from the predictions' confidences (:mod:`.cbpe`) for ``slot``, and the
    reference's: calibrated on ``ref_slot`` of the reference when it has enough labelled events
    with a confidence, else on the whole version's reference, else not at all."""
    if not acc.has(cbpe.HIST):
        return {}, {}
    rc = None
    if ref is not None and ref.has(cbpe.HIST):
        rc = _cbpe_counts(ref, ref_slot)
        if ref_slot != 0 and rc.labelled < cbpe.MIN_CALIBRATION_LABELS:
            rc = _cbpe_counts(ref, 0)
    m, r = cbpe.snapshot_metrics(_cbpe_counts(acc, slot), rc)
    return dict(m), dict(r)


RefCache = dict[tuple[int, int, str], drift_stats.RefHist]
"""Per (reference object, reference slot, feature): what drift needs from the reference histogram,
shared by every snapshot of a window (see :func:`drift`)."""


def drift(acc: WindowAcc, slot: int, ref: WindowAcc, ref_slot: int, features: set[str] | None = None,
          cache: RefCache | None = None) -> dict[str, float | None]:
    """Drift of ``slot``'s distributions against ``ref_slot`` of the reference: PSI, JS, KS, chi-square.

    The numeric features' statistics are computed together (:func:`drift_stats.hist_drift_many`); ``cache``
    (one dict per window's snapshots) keeps the reference side of each feature across calls."""
    m: dict[str, float | None] = {}
    max_psi = None
    cache = {} if cache is None else cache
    hist_names: list[str] = []
    refs: list[drift_stats.RefHist] = []
    curs: list[np.ndarray] = []
    for name in acc.names(Kind.HIST):
        if (features is not None and name not in features) or not ref.has(name, Kind.HIST):
            continue
        cur = acc.get(name, slot, Kind.HIST)
        if cur.sum() == 0:
            continue
        key = (id(ref), ref_slot, name)
        rh = cache.get(key)
        if rh is None:
            rh = cache[key] = drift_stats.RefHist(ref.get(name, ref_slot, Kind.HIST))
        if rh.n == 0:
            continue
        hist_names.append(name)
        refs.append(rh)
        curs.append(cur)
    hist = dict(zip(hist_names, drift_stats.hist_drift_many(refs, curs), strict=True))
    # histograms and category counts in order of creation (the metrics' order in the snapshot)
    for kind, f in acc.order:
        if kind is Kind.HIST:
            h = hist.get(f)
            if h is None:
                continue
            base = metric_base(f)
            p = h[0]
            m[f"{base}.psi"] = p
            m[f"{base}.js"] = h[1]
            m[f"{base}.ks"], m[f"{base}.ks_pvalue"] = h[2], h[3]
            if not f.startswith("@"):
                max_psi = p if max_psi is None else max(max_psi, p)
        elif kind is Kind.CAT:
            if features is not None and f not in features:
                continue
            cur = acc.get(f, slot, Kind.CAT)
            if not ref.has(f, Kind.CAT) or cur.sum() == 0:
                continue
            names = acc.cats.get(f, [])
            rnames = ref.cats.get(f, [])
            rrow = ref.get(f, ref_slot, Kind.CAT)
            rmap = dict(zip(rnames, rrow.tolist(), strict=False))
            allnames = list(dict.fromkeys([*names, *rnames]))
            cmap = dict(zip(names, cur.tolist(), strict=False))
            rc = np.array([rmap.get(x, 0) for x in allnames], dtype=float)
            cc = np.array([cmap.get(x, 0) for x in allnames], dtype=float)
            if rc.sum() == 0:
                continue
            base = metric_base(f)
            p = drift_stats.psi(rc, cc)
            m[f"{base}.psi"] = p
            m[f"{base}.chi2_pvalue"] = drift_stats.chi2_pvalue(rc, cc)[1]
            if not f.startswith("@"):
                max_psi = p if max_psi is None else max(max_psi, p)
    if max_psi is not None and features is None:
        m["input.max_psi"] = max_psi
    return m


def embedding_drift(acc: WindowAcc, ref: WindowAcc, permutations: int) -> dict[str, float | None]:
    """``embedding.drift`` (MMD²) and its permutation threshold, whole version only."""
    if acc.emb_rows is None or ref.emb_rows is None:
        return {}
    seed = (acc.start_ms // 1000) & 0xFFFFFFFF  # deterministic: a recomputed snapshot is identical
    r = mmd_test(acc.emb_rows, ref.emb_rows, permutations, seed=seed)
    if r is None:
        return {}
    return {"embedding.drift": r[0], "embedding.drift_threshold": r[1]}


@dataclass(frozen=True)
class Rule:
    """How a metric is judged: direction, and the test of a (current, reference) pair."""

    kind: str
    worse_if_higher: bool
    test: Callable[[float, float | None, ProcessorSettings], tuple[bool, float | None]]


def _abs_rise(attr: str) -> Callable[[float, float | None, ProcessorSettings], tuple[bool, float | None]]:
    def t(cur: float, ref: float | None, c: ProcessorSettings) -> tuple[bool, float | None]:
        if ref is None:
            return False, None
        th = ref + getattr(c, attr)
        return cur >= th, th
    return t


def _abs_drop(attr: str) -> Callable[[float, float | None, ProcessorSettings], tuple[bool, float | None]]:
    def t(cur: float, ref: float | None, c: ProcessorSettings) -> tuple[bool, float | None]:
        if ref is None:
            return False, None
        th = ref - getattr(c, attr)
        return cur <= th, th
    return t


def _rel_rise(attr: str) -> Callable[[float, float | None, ProcessorSettings], tuple[bool, float | None]]:
    def t(cur: float, ref: float | None, c: ProcessorSettings) -> tuple[bool, float | None]:
        if ref is None or ref <= 0:
            return False, None
        th = ref * (1 + getattr(c, attr))
        return cur >= th, th
    return t


def _psi(cur: float, ref: float | None, c: ProcessorSettings) -> tuple[bool, float | None]:
    return cur >= c.psi_threshold, c.psi_threshold


def _self_share(cur: float, ref: float | None, c: ProcessorSettings) -> tuple[bool, float | None]:
    return cur >= c.self_share_threshold, c.self_share_threshold


PERF_METRICS = ("perf.accuracy", "perf.precision", "perf.recall", "perf.f1", "perf.roc_auc")


def rule_for(name: str) -> Rule | None:
    """The judging rule of metric ``name``, or None when it is not judged."""
    if name.endswith(".psi") and name != "input.max_psi":
        return Rule("drift", True, _psi)
    if name in PERF_METRICS:
        return Rule("degradation", False, _abs_drop("accuracy_drop"))
    if name in ("perf.mae", "perf.rmse"):
        return Rule("degradation", True, _rel_rise("regression_rise"))
    if name == "error_rate":
        return Rule("degradation", True, _abs_rise("error_rate_rise"))
    if name == "latency_p95_ms":
        return Rule("degradation", True, _rel_rise("latency_rise"))
    if name in ("llm.refusal_rate", "llm.empty_rate"):
        return Rule("degradation", True, _abs_rise("refusal_rise"))
    if name == "llm.logprob_mean":
        return Rule("degradation", False, _abs_drop("logprob_drop_nats"))
    if name == "lineage.self_share":
        return Rule("anomaly", True, _self_share)
    return None


def judge(metrics: dict[str, float | None], reference: dict[str, float | None], count: float, labeled: float,
          cfg: ProcessorSettings) -> list[tuple[str, str, float, float | None, float | None]]:
    """``(metric, kind, value, reference, threshold)`` for every metric that crosses its rule."""
    out = []
    for name, v in metrics.items():
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        r = rule_for(name)
        if r is None:
            continue
        need = labeled if name.startswith("perf.") else count
        if need < cfg.min_count:
            continue
        ref = None if name.endswith(".psi") or name == "lineage.self_share" else reference.get(name)
        hit, th = r.test(v, ref, cfg)
        if hit:
            out.append((name, r.kind, v, ref, th))
    e, et = metrics.get("embedding.drift"), metrics.get("embedding.drift_threshold")
    if e is not None and et is not None and e > et:
        out.append(("embedding.drift", "drift", e, None, et))
    return out


def badness(name: str, value: float | None, ref: float | None) -> float | None:
    """How far ``value`` is from ``ref`` in the metric's bad direction (PSI: its value)."""
    if value is None:
        return None
    r = rule_for(name)
    if r is None:
        return None
    if ref is None:
        return value
    return value - ref if r.worse_if_higher else ref - value


def without(acc: WindowAcc, slot: int) -> WindowAcc:
    """A one-slot accumulator holding the whole version minus segment ``slot`` (for leave-one-out)."""
    out = WindowAcc(acc.model, acc.version, acc.start_ms, acc.end_ms)
    for kind, name, arr in acc.arrays():
        if kind is Kind.MIN:
            continue  # a minimum cannot be un-merged
        row = arr[slot] if slot < arr.shape[0] else np.zeros(arr.shape[1:], arr.dtype)
        out.put(kind, name, (arr[0] - row)[None, ...])
    out.cats = acc.cats
    out.labels = acc.labels
    return out


def feature_of(metric: str) -> str | None:
    """The accumulator column behind a drift metric (``input.x.psi`` → ``x``)."""
    for col, base in (("@score", "output.score"), ("@value", "output.value"), ("@class", "output.class")):
        if metric.startswith(base + "."):
            return col
    if metric.startswith("input.") and metric.count(".") >= 2:
        return metric[len("input."): metric.rindex(".")]
    return None
