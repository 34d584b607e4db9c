"""The columnar fast path: one group of predictions (one model version, one window) straight from the
flat columns of :class:`inferwatch.native.prediction_columns.PredictionColumns` to the accumulator's
:class:`~inferwatch.processor.core.event_arrays.Columns` and the label join's records, with numpy work per
batch and per distinct name/value — no Python object per event or per field.

Input: a batch decoded by :func:`inferwatch.native.prediction_columns.decode_predictions` (``prediction.v1``
JSON values → flat columns; keys index ``names``, string values index ``strings``).

It gives exactly what :func:`~inferwatch.processor.core.event_arrays.build_columns` and the engine's join
give for the same events (the parity tests compare both paths on mixed traffic). Where the exact path
has a quirk that flat columns cannot reproduce cheaply — a feature with both numbers and strings in
one group (the exact path turns such a column into strings), or a string feature whose every value
parses as a number (the exact path makes it numeric) — :func:`group_columns` returns None and the
caller takes the exact path for that group.
"""

from __future__ import annotations

from itertools import repeat
from operator import is_not
from typing import Any

import numpy as np
import numpy.typing as npt

from inferwatch.native.prediction_columns import CAT, NUM, PredictionColumns
from inferwatch.processor.core.event_arrays import Coded, Columns

I64 = npt.NDArray[np.int64]
_NUMERIC_STRINGS: dict[str, bool] = {}


class Batch:
    """Per-batch lookups shared by the groups of one decoded batch (computed once, lazily)."""

    def __init__(self, cols: PredictionColumns) -> None:
        self.cols = cols
        self._rank: I64 | None = None
        self._err: npt.NDArray[np.bool_] | None = None
        self._names_obj: np.ndarray | None = None
        self._strings_obj: np.ndarray | None = None
        self._numstr: npt.NDArray[np.bool_] | None = None
        self._name_index: dict[str, int] | None = None

    @property
    def name_rank(self) -> I64:
        """Position of every ``names`` entry in sorted (Python string) order."""
        if self._rank is None:
            names = self.cols.names
            order = sorted(range(len(names)), key=names.__getitem__)
            rank = np.empty(len(names), dtype=np.int64)
            rank[order] = np.arange(len(names))
            self._rank = rank
        return self._rank

    @property
    def numeric_strings(self) -> npt.NDArray[np.bool_]:
        """Whether numpy turns each ``strings`` entry into a float (what the exact path tries on a
        column); cached across batches per string."""
        if self._numstr is None:
            cache = _NUMERIC_STRINGS
            if len(cache) > 100_000:  # bounded memory when values are unbounded
                cache.clear()
            flags = []
            for v in self.cols.strings:
                f = cache.get(v)
                if f is None:
                    f = cache[v] = _parses_as_numbers([v])
                flags.append(f)
            self._numstr = np.array(flags, dtype=np.bool_)
        return self._numstr

    @property
    def has_error(self) -> npt.NDArray[np.bool_]:
        """Whether each row carries an ``error``."""
        if self._err is None:
            c = self.cols
            self._err = np.fromiter(map(is_not, c.error, repeat(None)), np.bool_, c.n)
        return self._err

    @property
    def name_index(self) -> dict[str, int]:
        """``names`` entry -> its index."""
        if self._name_index is None:
            self._name_index = {v: i for i, v in enumerate(self.cols.names)}
        return self._name_index

    def names_obj(self) -> np.ndarray:
        """``names`` followed by None, as an object array (index -1 gives None)."""
        if self._names_obj is None:
            self._names_obj = np.array([*self.cols.names, None], dtype=object)
        return self._names_obj

    def strings_obj(self) -> np.ndarray:
        """``strings`` followed by None, as an object array (index -1 gives None)."""
        if self._strings_obj is None:
            self._strings_obj = np.array([*self.cols.strings, None], dtype=object)
        return self._strings_obj


def _ranges(off: np.ndarray, rows: I64) -> tuple[I64, I64]:
    """The flat entry indices of ``rows`` (their ``[off[r], off[r+1])`` spans, in row order) and, for
    each entry, the position of its row in ``rows``."""
    lo = off[rows]
    lens = off[rows + 1] - lo
    total = int(lens.sum())
    pos = np.repeat(np.arange(len(rows), dtype=np.int64), lens)
    if total == 0:
        return np.zeros(0, np.int64), pos
    if int(rows[-1]) - int(rows[0]) + 1 == len(rows) and (np.diff(rows) == 1).all():  # consecutive rows: one span
        return np.arange(int(lo[0]), int(lo[0]) + total, dtype=np.int64), pos
    starts = np.cumsum(lens) - lens  # where each row's span begins in the output
    ent = np.arange(total, dtype=np.int64) + np.repeat(lo - starts, lens)
    return ent, pos


def _sorted_keys(b: Batch, keys: np.ndarray) -> I64:
    """Distinct name indices of ``keys`` in sorted name order."""
    u = np.flatnonzero(np.bincount(keys, minlength=len(b.cols.names)))  # names are few: no sort/hash of keys
    return u[np.argsort(b.name_rank[u], kind="stable")]


def _parses_as_numbers(values: list[str]) -> bool:
    """Whether numpy turns every one of these strings into a float (what the exact path tries)."""
    try:
        np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return True


_Layout = tuple[I64, npt.NDArray[np.bool_], I64, I64, I64, npt.NDArray[np.float64], npt.NDArray[np.int32] | None]
"""A group's inputs: feature name indices (sorted by name), which are categorical, their indices,
the stacked numeric features, the numeric features in accumulator order, the ``[rows, numeric]``
values (NaN: missing) and the ``[rows, categorical]`` codes (-1: missing)."""


def _uniform_span(c: PredictionColumns, rows: I64) -> tuple[Any, int, I64] | None:
    """``(entry indices or slice, k, the keys of a row)`` when every row of ``rows`` has the same ``k`` distinct input
    keys in the same order (the usual layout: one schema per model), else None."""
    g = len(rows)
    lo = c.in_off[rows]
    lens = c.in_off[rows + 1] - lo
    k = int(lens[0])
    if k == 0 or not (lens == k).all():
        return None
    r0 = int(rows[0])
    if int(rows[-1]) - r0 + 1 == g and (np.diff(rows) == 1).all():  # consecutive rows: one span, no gather
        ent: Any = slice(int(lo[0]), int(lo[0]) + g * k)
    else:
        ent = (lo[:, None] + np.arange(k, dtype=np.int64)).ravel()
    keys = c.in_key[ent].reshape(g, k)
    row0 = keys[0]
    if not (keys == row0).all() or len(np.unique(row0)) != k:  # a duplicate key: the last one wins
        return None
    return ent, k, row0.astype(np.int64)


def _group_uniform(b: Batch, rows: I64, ent: Any, k: int, row0: I64, max_features: int) -> _Layout | None:
    """:func:`_layout` of rows that all have the same keys in the same order: the value matrices are
    the entries reshaped to ``[rows, k]`` and taken by column (no scatter)."""
    c = b.cols
    g = len(rows)
    feat = _sorted_keys(b, row0)[:max_features]  # name indices, sorted by name (as build_columns)
    where = np.full(len(c.names), -1, dtype=np.int64)
    where[row0] = np.arange(k)
    fpos = where[feat]  # each feature's position in a row
    kinds = c.in_kind[ent].reshape(g, k)
    n_cat = (kinds == CAT).sum(axis=0)[fpos]
    n_num = (kinds == NUM).sum(axis=0)[fpos]
    is_cat = n_cat > 0
    if (is_cat & (n_num > 0)).any():
        return None  # numbers and strings in one column: the exact path makes strings of them
    cat_j = np.flatnonzero(is_cat)
    codes = None
    if len(cat_j):
        codes = np.take(c.in_cat[ent].reshape(g, k), fpos[cat_j], axis=1)
        not_num = ((codes >= 0) & ~b.numeric_strings[codes]).sum(axis=0)
        if (not_num == 0).any():
            return None  # every value of a string column parses as a number: the exact path makes it numeric
    first_num = kinds[0][fpos] == NUM
    stacked = np.flatnonzero(first_num) if first_num.sum() >= 2 else np.zeros(0, np.int64)  # every row has them
    num_order = _num_order(is_cat, stacked)
    x = np.take(c.in_num[ent].reshape(g, k), fpos[num_order], axis=1)
    return feat, is_cat, cat_j, stacked, num_order, x, codes


def _group_scatter(b: Batch, rows: I64, max_features: int) -> _Layout | None:
    """:func:`_layout` of rows of any layout: each entry scattered to its (row, feature) cell."""
    c = b.cols
    g = len(rows)
    ent, pos = _ranges(c.in_off, rows)
    keys = c.in_key[ent]
    kinds = c.in_kind[ent]
    feat = _sorted_keys(b, keys)[:max_features]  # name indices, sorted by name (as build_columns)
    nf = len(feat)
    col = np.full(len(c.names), -1, dtype=np.int64)
    col[feat] = np.arange(nf)
    ecol = col[keys]
    keep = ecol >= 0
    if not keep.all():
        ent, pos, kinds, ecol = ent[keep], pos[keep], kinds[keep], ecol[keep]
    n_cat = np.bincount(ecol, weights=kinds == CAT, minlength=nf)
    n_num = np.bincount(ecol, weights=kinds == NUM, minlength=nf)
    is_cat = n_cat > 0
    if (is_cat & (n_num > 0)).any():
        return None  # numbers and strings in one column: the exact path makes strings of them
    cat_j = np.flatnonzero(is_cat)
    if len(cat_j):
        ce = is_cat[ecol]
        cat_vals = c.in_cat[ent[ce]]
        cat_col = ecol[ce]
        # nulls (code -1) do not count: numpy turns None into NaN
        not_num = np.bincount(cat_col, weights=(cat_vals >= 0) & ~b.numeric_strings[cat_vals], minlength=nf)
        if (not_num[cat_j] == 0).any():
            return None  # every value of a string column parses as a number: the exact path makes it numeric
    first = pos == 0
    first_num = np.zeros(nf, dtype=bool)
    first_num[ecol[first & (kinds == NUM)]] = True
    present = np.bincount(ecol, minlength=nf)
    stacked = np.flatnonzero(first_num) if first_num.sum() >= 2 and (present[first_num] == g).all() else np.zeros(0, np.int64)
    num_order = _num_order(is_cat, stacked)
    ncol = np.full(nf, -1, dtype=np.int64)
    ncol[num_order] = np.arange(len(num_order))
    x = np.full((g, len(num_order)), np.nan)
    ne = ncol[ecol]
    m = ne >= 0
    x[pos[m], ne[m]] = c.in_num[ent[m]]  # NULL entries carry NaN: missing
    codes = None
    if len(cat_j):
        ccol = np.full(nf, -1, dtype=np.int64)
        ccol[cat_j] = np.arange(len(cat_j))
        codes = np.full((g, len(cat_j)), -1, dtype=np.int32)
        codes[pos[ce], ccol[cat_col]] = cat_vals
    return feat, is_cat, cat_j, stacked, num_order, x, codes


def _num_order(is_cat: npt.NDArray[np.bool_], stacked: I64) -> I64:
    """The numeric features in the order the exact path creates their arrays: stacked ones first."""
    num_j = np.flatnonzero(~is_cat)
    rest = num_j[~np.isin(num_j, stacked)]
    return np.concatenate([stacked, rest]).astype(np.int64)


def group_columns(b: Batch, rows: I64, max_features: int) -> Columns | None:
    """The accumulator columns of ``rows`` (indices of ok rows of one model version and window, in
    batch order), equal to ``build_columns`` of their events; None when the group needs the exact path."""
    c = b.cols
    g = len(rows)
    # The exact path stacks into one matrix the features whose first event's value is a number,
    # when there are at least two and every event has them; the rest go one by one (same values,
    # but the accumulator's arrays are created in that order, so keep it).
    span = _uniform_span(c, rows) if g else None
    lay = _group_uniform(b, rows, *span, max_features) if span is not None else \
        _group_scatter(b, rows, max_features)
    if lay is None:
        return None
    feat, is_cat, cat_j, stacked, num_order, x, codes = lay
    names = [c.names[k] for k in feat.tolist()]
    num: dict[str, Any] = {names[j]: x[:, i] for i, j in enumerate(num_order.tolist())}
    matrix = ([names[j] for j in stacked.tolist()], x[:, : len(stacked)]) if len(stacked) else None
    cat: dict[str, Any] = {}
    if codes is not None:
        for i, j in enumerate(cat_j.tolist()):
            cat[names[j]] = Coded(codes[:, i], c.strings)
    score = c.out_score[rows]
    if not np.isnan(score).all():
        num["@score"] = score
    value = c.out_value[rows]
    if not np.isnan(value).all():
        num["@value"] = value
    label = c.out_label[rows]
    if (label >= 0).any():
        cat["@class"] = Coded(label, c.strings)
    conf = confidence(b, rows)
    return Columns(
        n=g, ts=c.ts[rows], segments=segment_columns(b, rows), latency=c.latency_ms[rows],
        error=b.has_error[rows], num=num, cat=cat, pos_name=[None] * g, pos_score=np.full(g, np.nan),
        matrix=matrix, conf=None if np.isnan(conf).all() else conf,
    )


def confidence(b: Batch, rows: I64) -> npt.NDArray[np.float64]:
    """Per row, :func:`~inferwatch.processor.core.cbpe.predicted_confidence` from the flat columns:
    the label's probability, else (no label) the largest probability, else (a label) a score in [0, 1]."""
    c = b.cols
    lab = c.out_label[rows]
    score = c.out_score[rows]
    has_lab = lab >= 0
    conf = np.where(has_lab & (score >= 0.0) & (score <= 1.0), score, np.nan)  # NaN compares False
    ent, pos = _ranges(c.prob_off, rows)
    if not len(ent):
        return conf
    keys, vals = c.prob_key[ent], c.prob_val[ent]
    # the label's probability: the label (a string) as a name index, once per distinct label
    lut = np.full(len(c.strings) + 1, -1, dtype=np.int64)  # lut[string code + 1]
    where = b.name_index
    for code in np.unique(lab[has_lab]).tolist():
        lut[code + 1] = where.get(c.strings[code], -1)
    m = keys == lut[lab.astype(np.int64) + 1][pos]
    conf[pos[m]] = vals[m]
    nolab = ~has_lab[pos]
    if nolab.any():
        top = np.full(len(rows), -np.inf)
        np.maximum.at(top, pos[nolab], vals[nolab])
        got = np.isfinite(top)
        conf[got] = top[got]
    return conf


def segment_columns(b: Batch, rows: I64) -> dict[str, Any]:
    """Per segment key (sorted), the coded value of every row (-1 where the row lacks the key)."""
    c = b.cols
    ent, pos = _ranges(c.seg_off, rows)
    if not len(ent):
        return {}
    keys = c.seg_key[ent]
    sk = _sorted_keys(b, keys)
    col = np.full(len(c.names), -1, dtype=np.int64)
    col[sk] = np.arange(len(sk))
    codes = np.full((len(rows), len(sk)), -1, dtype=np.int32)
    codes[pos, col[keys]] = c.seg_val[ent]
    return {c.names[k]: Coded(codes[:, i], c.strings) for i, k in enumerate(sk.tolist())}


def _row_dicts(b: Batch, off: np.ndarray, key: np.ndarray, val: np.ndarray, rows: I64) -> list[dict[str, str]]:
    """Each row's map (segment) as a dict in message key order; rows with the same map share one
    dict object (built once per distinct map)."""
    c = b.cols
    lens = off[rows + 1] - off[rows]
    if len(rows) == 0:
        return []
    k = int(lens[0])
    if (lens == k).all():
        if k == 0:
            d: dict[str, str] = {}
            return [d] * len(rows)
        ent, _ = _ranges(off, rows)
        kk = key[ent].reshape(-1, k)
        if (kk == kk[0]).all():
            # the same keys in every row (the usual case): a row's map is its values, one integer each
            vv = val[ent].reshape(-1, k).astype(np.int64)
            radix = int(vv.max()) + 1 if int(vv.min()) >= 0 else 0
            if radix and radix ** k < 1 << 62:
                code = vv @ (radix ** np.arange(k - 1, -1, -1, dtype=np.int64))
                u, inv = np.unique(code, return_inverse=True)
                rep = np.empty(len(u), dtype=np.int64)
                rep[inv] = np.arange(len(code))  # a row of each distinct map (any one: they are equal)
                names, strings = c.names, c.strings
                knames = [names[j] for j in kk[0].tolist()]
                dicts = [dict(zip(knames, map(strings.__getitem__, vv[r].tolist()), strict=True))
                         for r in rep.tolist()]
                return list(map(dicts.__getitem__, inv.ravel().tolist()))
        pairs = np.empty((len(rows), 2 * k), dtype=np.int32)
        pairs[:, 0::2] = key[ent].reshape(-1, k)
        pairs[:, 1::2] = val[ent].reshape(-1, k)
        flat = np.ascontiguousarray(pairs).view(np.dtype((np.void, 8 * k))).ravel()
        uniq, first, inv = np.unique(flat, return_index=True, return_inverse=True)
        del uniq
        dicts = []
        for r in first.tolist():
            p = pairs[r].tolist()
            dicts.append({c.names[p[i]]: c.strings[p[i + 1]] for i in range(0, 2 * k, 2)})
        return list(map(dicts.__getitem__, inv.ravel().tolist()))
    names, strings = c.names, c.strings
    out = []
    for lo, hi in zip(off[rows].tolist(), off[rows + 1].tolist(), strict=True):
        out.append({names[key[j]]: strings[val[j]] for j in range(lo, hi)})
    return out


def join_records(b: Batch, rows: I64, start: int) -> tuple[list[str], list[Any]]:
    """``(prediction ids, records)`` of the labelled rows of ``rows`` (outputs with a label or a
    value), in batch order: the engine's join record ``[version, window start, segment dict, label,
    positive class, its probability, value, predicted-class confidence, ts]``."""
    c = b.cols
    lab = c.out_label[rows]
    val = c.out_value[rows]
    sel = c.has_outputs[rows] & ((lab >= 0) | ~np.isnan(val))
    r = rows[sel]
    n = len(r)
    if n == 0:
        return [], []
    lab, val = lab[sel], val[sel]
    # positive class of binary probabilities: the larger name (as positive_class); none: None, other: NaN
    plo = c.prob_off[r]
    pn = c.prob_off[r + 1] - plo
    pos_code = np.full(n, -1, dtype=np.int64)
    pos_score = np.full(n, np.nan)
    two = np.flatnonzero(pn == 2)
    if len(two):
        k1, k2 = c.prob_key[plo[two]], c.prob_key[plo[two] + 1]
        second = b.name_rank[k2] > b.name_rank[k1]
        pos_code[two] = np.where(second, k2, k1)
        pos_score[two] = np.where(second, c.prob_val[plo[two] + 1], c.prob_val[plo[two]])
    none = pn == 0  # no probabilities: (None, None), as the exact path
    if none.all():
        pos_score_l: list[Any] = [None] * n
    elif none.any():
        ps = pos_score.astype(object)
        ps[none] = None
        pos_score_l = ps.tolist()
    else:
        pos_score_l = pos_score.tolist()
    labels = b.strings_obj()[lab].tolist()
    pos_names = b.names_obj()[pos_code].tolist()
    nan_v = np.isnan(val)
    if nan_v.all():
        values: list[Any] = [None] * n
    elif nan_v.any():
        vo = val.astype(object)
        vo[nan_v] = None
        values = vo.tolist()
    else:
        values = val.tolist()
    conf = confidence(b, r)
    nan_c = np.isnan(conf)
    if nan_c.all():
        confs: list[Any] = [None] * n
    elif nan_c.any():
        co = conf.astype(object)
        co[nan_c] = None
        confs = co.tolist()
    else:
        confs = conf.tolist()
    segs = _row_dicts(b, c.seg_off, c.seg_key, c.seg_val, r)
    ridx = r.tolist()
    version = c.model_version[ridx[0]]
    # tuples, not lists: msgpack stores both as arrays (the store's bytes are the same) and the join
    # only reads records
    recs: list[Any] = list(zip(repeat(version, n), repeat(start, n), segs, labels, pos_names, pos_score_l,
                               values, confs, c.ts[r].tolist(), strict=False))
    pids: list[str] = list(map(c.prediction_id.__getitem__, ridx))  # type: ignore[arg-type]
    return pids, recs
