"""The window accumulator: every metric's mergeable state for one model version over one span of time,
for the whole version (slot 0) and each tracked segment value (one slot each).

State is numpy arrays whose first axis is the slot, held in typed parts (one dict per
:class:`Kind`), so growing, merging, collapsing rare segments into ``other`` and serialising are one
generic operation each, and what differs between kinds (start value, merge) follows from the kind:

* ``TOTAL``: ``count, errors, lat_n, lat_sum`` … ``[S]`` sums, ``lat_hist [S, LATENCY_BINS.size]``
  log-bucket counts, ``auc_pos/auc_neg [S, AUC_BINS]`` positive-class score histograms by true class;
* per feature: ``COUNT`` (values present), ``MISSING``, ``SUM``, ``HIST [S, FEATURE_BINS.size]``
  log-bucket counts, ``CAT [S, M]`` category counts over ``cats[feature]``;
* CBPE's ``cbpe_*`` ``[S, cbpe.CONF_BINS]`` confidence-bin counts and sums (``TOTAL``; see
  :mod:`~inferwatch.processor.core.cbpe`);
* ``CONF [S, L, L]`` confusion over ``labels``; ``MIN`` arrays merge by minimum; ``LINEAGE`` shares;
* inconsistency maps per slot, a bottom-k embedding sample (whole version only);
* ``hw``: the last source offset absorbed per topic-partition, so a replay after a crash is skipped
  (the acc and its high-water marks are persisted together, atomically, as one value).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from functools import partial
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from inferwatch.processor.core import cbpe
from inferwatch.processor.core.embedding import bottom_k
from inferwatch.processor.core.event_arrays import Coded, Columns, StrCol
from inferwatch.processor.core.logbins import FEATURE_BINS, LATENCY_BINS
from inferwatch.processor.core.performance import AUC_BINS, auc_bin

OTHER = "__other__"
WHOLE: tuple[str, str] = ("", "")
I64 = npt.NDArray[np.int64]
_LLM_SUMS = ("llm_n", "lp_sum", "lp_n", "ent_sum", "ent_n", "tok_sum", "tok_n", "chr_sum", "chr_n", "empty", "refusal")
_INCONS_CAP = 5000  # distinct prompt hashes tracked per slot per window
_DTYPE_NAMES: dict[np.dtype[Any], str] = {}  # str(dtype) is slow and asked for every array of every state write


class Kind(Enum):
    """What a state array holds. The value is the array's name prefix in the stored bytes (the
    changelog's format): only :func:`wire_name` and :func:`parse_wire_name` use it."""

    TOTAL = ""  # fixed-name sums and histograms of the slot (count, errors, lat_hist, LLM sums, …)
    COUNT = "n:"  # per feature: values present
    MISSING = "miss:"  # per feature: values missing
    SUM = "sum:"  # per numeric feature: sum of values
    HIST = "h:"  # per numeric feature: log-bin counts
    CAT = "c:"  # per categorical feature: counts over ``cats[feature]``
    CONF = "conf"  # the confusion matrix over ``labels`` (one array, named "")
    MIN = "min:"  # minima (start at +inf, merge by minimum)
    LINEAGE = "lin:"  # per upstream model: summed share


_BY_PREFIX = {k.value: k for k in Kind if k.value.endswith(":")}


def wire_name(kind: Kind, name: str) -> str:
    """The name of array ``name`` of ``kind`` in the stored bytes (``h:x``, ``count``, ``conf``)."""
    return kind.value + name


def parse_wire_name(wire: str) -> tuple[Kind, str]:
    """Inverse of :func:`wire_name`. Fixed names have no ``:``; a feature's name may (split at the first)."""
    head, sep, rest = wire.partition(":")
    if sep:
        kind = _BY_PREFIX.get(head + sep)
        if kind is None:
            raise ValueError(f"stored window state: unknown array kind in {wire!r}")
        return kind, rest
    if wire == Kind.CONF.value:
        return Kind.CONF, ""
    return Kind.TOTAL, wire


def _fill(kind: Kind) -> float:
    """The value of a cell never touched."""
    return np.inf if kind is Kind.MIN else 0.0


def _parts() -> dict[Kind, dict[str, np.ndarray]]:
    return {k: {} for k in Kind}


@dataclass
class Joined:
    """Labels joined to predictions of one window: per prediction, its slots and both sides."""

    slots: list[list[tuple[str, str]]]
    pred_label: list[str | None]
    true_label: list[str | None]
    pos_name: list[str | None]
    pos_score: npt.NDArray[np.float64]
    pred_value: npt.NDArray[np.float64]
    true_value: npt.NDArray[np.float64]
    conf: npt.NDArray[np.float64] | None = None
    """The prediction's confidence in its predicted class (NaN unknown): CBPE's calibration."""


@dataclass
class SlotBlock:
    """Events and their slots for one part of the slot space: ``rows`` (None = every event, in
    order) and ``slot`` (one per listed event)."""

    rows: I64 | None
    slot: I64


@dataclass
class WindowAcc:
    """Mergeable metric state of one model version over one window (or a reference period)."""

    model: str
    version: str
    start_ms: int
    end_ms: int
    max_tracked: int = 50
    max_categories: int = 64
    emb_k: int = 256
    slots: dict[tuple[str, str], int] = field(default_factory=lambda: {WHOLE: 0})
    parts: dict[Kind, dict[str, np.ndarray]] = field(default_factory=_parts)
    # (kind, name) of every array in order of creation: the order of the stored bytes
    order: list[tuple[Kind, str]] = field(default_factory=list)
    cats: dict[str, list[str]] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    incons: dict[int, dict[str, list[Any]]] = field(default_factory=dict)
    emb_u: np.ndarray | None = None
    emb_rows: np.ndarray | None = None
    hw: dict[str, int] = field(default_factory=dict)
    late: int = 0
    late_labels: int = 0

    # ---- shape management -------------------------------------------------------------------
    @property
    def n_slots(self) -> int:
        return len(self.slots)

    def _arr(self, kind: Kind, name: str, tail: tuple[int, ...] = (), dtype: Any = np.float64) -> np.ndarray:
        """Array ``name`` of ``kind`` with at least ``n_slots`` rows and ``tail`` trailing dims, grown in
        place; new cells hold the kind's start value (0, or +inf for ``MIN``)."""
        part = self.parts[kind]
        arr = part.get(name)
        s = self.n_slots
        fill = np.inf if kind is Kind.MIN else 0.0
        if arr is None:
            arr = np.full((s, *tail), fill, dtype=dtype)
            part[name] = arr
            self.order.append((kind, name))
            return arr
        want_tail = tuple(max(x, y) for x, y in zip(arr.shape[1:], tail, strict=True)) if tail else arr.shape[1:]
        want = (max(s, arr.shape[0]), *want_tail)
        if want != arr.shape:
            grown = np.full(want, fill, dtype=arr.dtype)
            grown[tuple(slice(0, d) for d in arr.shape)] = arr
            arr = grown
            part[name] = arr
        return arr

    def get(self, name: str, slot: int, kind: Kind = Kind.TOTAL) -> Any:
        """Row ``slot`` of array ``name`` of ``kind`` (zeros, or inf for ``MIN``, when it was never touched)."""
        arr = self.parts[kind].get(name)
        if arr is None or slot >= arr.shape[0]:
            if arr is None or arr.ndim == 1:
                return _fill(kind)
            return np.full(arr.shape[1:], _fill(kind), dtype=arr.dtype)
        return arr[slot]

    def has(self, name: str, kind: Kind = Kind.TOTAL) -> bool:
        """Whether array ``name`` of ``kind`` was ever touched."""
        return name in self.parts[kind]

    def names(self, kind: Kind) -> Iterable[str]:
        """The names of the arrays of ``kind``, in order of creation."""
        return self.parts[kind].keys()

    def arrays(self) -> Iterator[tuple[Kind, str, np.ndarray]]:
        """Every array with its kind and name, in order of creation (the stored order)."""
        parts = self.parts
        for kind, name in self.order:
            yield kind, name, parts[kind][name]

    def put(self, kind: Kind, name: str, arr: np.ndarray) -> None:
        """Set array ``name`` of ``kind`` (its first axis is the slot)."""
        part = self.parts[kind]
        if name not in part:
            self.order.append((kind, name))
        part[name] = arr

    def slot_of(self, key: str, value: str, create: bool = True) -> int:
        """The slot of segment ``key=value``; past ``max_tracked`` values of a key it is ``key=__other__``."""
        s = self.slots.get((key, value))
        if s is not None:
            return s
        if not create:
            return self.slots.get((key, OTHER), -1)
        tracked = sum(1 for k, _ in self.slots if k == key)
        if tracked >= self.max_tracked - 1 and value != OTHER:
            value = OTHER
            s = self.slots.get((key, value))
            if s is not None:
                return s
        s = len(self.slots)
        self.slots[(key, value)] = s
        return s

    def _cat_index(self, feature: str, value: str) -> int:
        vals = self.cats.setdefault(feature, [])
        try:
            return vals.index(value)
        except ValueError:
            pass
        if len(vals) >= self.max_categories - 1 and value != OTHER:
            return self._cat_index(feature, OTHER)
        vals.append(value)
        return len(vals) - 1

    def _label_index(self, label: str) -> int:
        try:
            return self.labels.index(label)
        except ValueError:
            if len(self.labels) >= self.max_categories - 1 and label != OTHER:
                return self._label_index(OTHER)
            self.labels.append(label)
            return len(self.labels) - 1

    def expand(self, segments: dict[str, StrCol], n: int) -> tuple[I64, I64]:
        """``(rows, slot)``: each event once for the whole version and once per segment key it has."""
        blocks = self.slot_blocks(segments, n)
        rows = [np.arange(n, dtype=np.int64) if b.rows is None else b.rows for b in blocks]
        return np.concatenate(rows), np.concatenate([b.slot for b in blocks])

    def slot_blocks(self, segments: dict[str, StrCol], n: int) -> list[SlotBlock]:
        """The events' slots as blocks: the whole version (every event, slot 0), then per segment key
        the events that have it with their slot. Slots of different blocks never overlap."""
        blocks = [SlotBlock(None, np.zeros(n, dtype=np.int64))]
        for key, vals in segments.items():
            # one slot lookup per distinct value (in order of first appearance, so slot numbers and
            # which values overflow into __other__ are deterministic), then a C-level map over the events
            if isinstance(vals, Coded):
                codes, missing = self._lookup(vals, partial(self.slot_of, key))
            else:
                table: dict[str | None, int] = {v: -1 if v is None else self.slot_of(key, v) for v in dict.fromkeys(vals)}
                codes = np.fromiter(map(table.__getitem__, vals), np.int64, len(vals))
                missing = None in table
            if missing:
                idx = np.flatnonzero(codes >= 0)
                blocks.append(SlotBlock(idx, codes[idx]))
            else:
                blocks.append(SlotBlock(None, codes))
        return blocks

    @staticmethod
    def _lookup(col: Coded, index: Callable[[str], int]) -> tuple[I64, bool]:
        """``index(value)`` of every entry of a coded column (-1 where missing), calling ``index``
        once per distinct value in order of first appearance; and whether any entry is missing."""
        lut = np.full(len(col.values) + 1, -1, dtype=np.int64)  # lut[code + 1]
        missing = False
        for c in col.first_seen():
            if c < 0:
                missing = True
            else:
                lut[c + 1] = index(col.values[c])
        return lut[col.codes.astype(np.int64) + 1], missing

    def cat_codes(self, name: str, vals: StrCol) -> I64:
        """Category index of every value of feature ``name`` (-1 for missing)."""
        if isinstance(vals, Coded):
            return self._lookup(vals, partial(self._cat_index, name))[0]
        table: dict[str | None, int] = {v: -1 if v is None else self._cat_index(name, v) for v in dict.fromkeys(vals)}
        return np.fromiter(map(table.__getitem__, vals), np.int64, len(vals))

    # ---- accumulation ----------------------------------------------------------------------
    def _add(self, name: str, slot: I64, weights: np.ndarray | None = None, kind: Kind = Kind.TOTAL) -> None:
        arr = self._arr(kind, name)
        arr += np.bincount(slot, weights=weights, minlength=self.n_slots)[: self.n_slots]

    def _add_hist(self, name: str, slot: I64, idx: I64, width: int, kind: Kind = Kind.TOTAL) -> None:
        arr = self._arr(kind, name, (width,), np.int64)
        width = arr.shape[1]
        flat = np.bincount(slot * width + idx, minlength=self.n_slots * width)
        arr += flat.reshape(self.n_slots, width)

    def _add_binned(self, name: str, slot: I64, idx: I64, weights: np.ndarray | None = None) -> None:
        """CBPE's per-confidence-bin arrays: counts (int) or, with ``weights``, sums (float)."""
        if weights is None:
            self._add_hist(name, slot, idx, cbpe.CONF_BINS)
            return
        w = cbpe.CONF_BINS
        arr = self._arr(Kind.TOTAL, name, (w,))
        arr += np.bincount(slot * w + idx, weights=weights, minlength=self.n_slots * w).reshape(self.n_slots, w)

    def _add_joined_conf(self, j: Joined, has_cls: npt.NDArray[np.bool_], rows: I64, slot: I64) -> None:
        """CBPE's calibration counts: per confidence bin, labelled predictions and how many were right."""
        assert j.conf is not None
        ok = has_cls & ~np.isnan(j.conf)
        if not ok.any():
            return
        m = ok[rows]
        conf = j.conf[rows][m]
        b = cbpe.conf_bin(conf)
        sl = slot[m]
        right = np.fromiter(map(operator.eq, j.pred_label, j.true_label), np.bool_, len(j.pred_label))[rows][m]
        self._add_binned(cbpe.LAB, sl, b)
        self._add_binned(cbpe.LSUM, sl, b, conf)
        self._add_binned(cbpe.HIT, sl[right], b[right])

    def add_columns(self, cols: Columns, rng: np.random.Generator | None = None) -> None:
        """Absorb one group's columns (all events of this model version and window)."""
        blocks = self.slot_blocks(cols.segments, cols.n)
        rows = np.concatenate([np.arange(cols.n, dtype=np.int64) if b.rows is None else b.rows for b in blocks])
        slot = np.concatenate([b.slot for b in blocks])
        s = self.n_slots
        self._add("count", slot)
        self._add("errors", slot, cols.error[rows].astype(np.float64))
        lat = cols.latency[rows]
        ok = ~np.isnan(lat)
        if ok.any():
            self._add("lat_n", slot[ok])
            self._add("lat_sum", slot[ok], lat[ok])
            li = LATENCY_BINS.index(cols.latency[~np.isnan(cols.latency)])
            full = np.zeros(cols.n, dtype=np.int64)
            full[~np.isnan(cols.latency)] = li
            self._add_hist("lat_hist", slot[ok], full[rows][ok], LATENCY_BINS.size)
        fb = FEATURE_BINS.size
        stacked: set[str] = set()
        if cols.matrix is not None:
            self._add_matrix(cols.matrix[0], cols.matrix[1], blocks)
            stacked = set(cols.matrix[0])
        for name, x in cols.num.items():
            if name in stacked:
                continue
            miss = np.isnan(x)
            good = ~miss[rows]
            self._add(name, slot[good], kind=Kind.COUNT)
            self._add(name, slot[~good], kind=Kind.MISSING)
            xr = x[rows][good]
            self._add(name, slot[good], xr, Kind.SUM)
            bi = np.zeros(cols.n, dtype=np.int64)
            bi[~miss] = FEATURE_BINS.index(x[~miss])
            self._add_hist(name, slot[good], bi[rows][good], fb, Kind.HIST)
        for name, vals in cat_items(cols.cat):
            cr = self.cat_codes(name, vals)[rows]
            good = cr >= 0
            m = len(self.cats.get(name, ())) or 1
            if name != "@class":
                self._add(name, slot[good], kind=Kind.COUNT)
                self._add(name, slot[~good], kind=Kind.MISSING)
            self._add_hist(name, slot[good], cr[good], m, Kind.CAT)
        if cols.llm is not None:
            self._add_llm(cols, rows, slot)
        if cols.conf is not None:
            conf = cols.conf[rows]
            ok = ~np.isnan(conf)
            b = cbpe.conf_bin(conf[ok])
            self._add_binned(cbpe.HIST, slot[ok], b)
            self._add_binned(cbpe.CSUM, slot[ok], b, conf[ok])
        if cols.lineage is not None and cols.lineage_self is not None:
            self._add("lin_self", slot, cols.lineage_self[rows])
            keys = sorted({k for d in cols.lineage for k in d})
            for k in keys:
                share = np.array([d.get(k, 0.0) for d in cols.lineage])
                self._add(k, slot, share[rows], Kind.LINEAGE)
        if cols.embedding is not None and cols.embedding_rows is not None:
            rng = rng or np.random.default_rng()
            u = rng.random(len(cols.embedding))
            self._add_embeddings(u, cols.embedding)
        assert self.n_slots == s

    def _add_matrix(self, names: list[str], x: np.ndarray, blocks: list[SlotBlock]) -> None:
        """Numeric features ``x [n, F]`` at once: counts, missing, sums and log-bin histograms of all
        features per slot. Each event's bins are computed once (as ``feature * bins + bin`` keys)
        and counted for each block of slots (whole version, then each segment key) by one
        ``bincount`` over the block's own slots; every cell sees its values in event order, as a
        single ``bincount`` over all (slot, feature[, bin]) keys would."""
        s, nf, fb = self.n_slots, len(names), FEATURE_BINS.size
        miss = np.isnan(x)
        anymiss = bool(miss.any())
        fcol = np.arange(nf, dtype=np.int64)
        h = FEATURE_BINS.index(np.where(miss, 0.0, x) if anymiss else x)  # [n, F]
        h += fcol * fb
        good_all = ~miss
        cnt = np.zeros((s, nf), dtype=np.int64)
        tot = np.zeros((s, nf), dtype=np.int64)
        sums = np.zeros((s, nf))
        hist = np.zeros((s, nf, fb), dtype=np.int64)
        for b in blocks:
            # the block's slots as local numbers 0..k-1, so each bincount spans only its own slots
            present = np.bincount(b.slot, minlength=s).astype(bool)
            slots = np.flatnonzero(present)
            k = len(slots)
            if k == 0:
                continue
            lo = int(slots[0])
            # a block's slots are usually consecutive (numbered as first seen): local numbers by a
            # subtraction and a slice of the totals instead of a rank lookup and a fancy index
            dense = int(slots[-1]) - lo + 1 == k
            sel: slice | I64 = slice(lo, lo + k) if dense else slots
            if k == 1:
                local = np.zeros(len(b.slot), dtype=np.int64)
            else:
                local = b.slot - lo if dense else (np.cumsum(present) - 1)[b.slot]
            xb = x if b.rows is None else x[b.rows]
            hb = h if b.rows is None else h[b.rows]
            if not anymiss:
                n_per = np.bincount(local, minlength=k)
                cnt[sel] += n_per[:, None]
                tot[sel] += n_per[:, None]
                key = (local * nf)[:, None] + fcol
                sums[sel] += np.bincount(key.ravel(), weights=xb.ravel(), minlength=k * nf).reshape(k, nf)
                hkey = hb if k == 1 else (local * (nf * fb))[:, None] + hb  # one slot: the bins are the keys
                hist[sel] += np.bincount(hkey.ravel(), minlength=k * nf * fb).reshape(k, nf, fb)
                continue
            gb = good_all if b.rows is None else good_all[b.rows]
            key = (local * nf)[:, None] + fcol
            kg = key[gb]
            cnt[sel] += np.bincount(kg, minlength=k * nf).reshape(k, nf)
            tot[sel] += np.bincount(key.ravel(), minlength=k * nf).reshape(k, nf)
            sums[sel] += np.bincount(kg, weights=xb[gb], minlength=k * nf).reshape(k, nf)
            hkey = hb if k == 1 else (local * (nf * fb))[:, None] + hb
            hist[sel] += np.bincount(hkey[gb], minlength=k * nf * fb).reshape(k, nf, fb)
        self._add_matrix_sums(names, cnt, tot, sums, hist)

    def _add_matrix_sums(self, names: list[str], cnt: np.ndarray, tot: np.ndarray, sums: np.ndarray,
                         hist: np.ndarray) -> None:
        s, fb = self.n_slots, FEATURE_BINS.size
        for j, name in enumerate(names):
            self._arr(Kind.COUNT, name)[:s] += cnt[:, j]
            self._arr(Kind.MISSING, name)[:s] += tot[:, j] - cnt[:, j]
            self._arr(Kind.SUM, name)[:s] += sums[:, j]
            self._arr(Kind.HIST, name, (fb,), np.int64)[:s] += hist[:, j]

    def _add_embeddings(self, u: np.ndarray, rows: np.ndarray) -> None:
        if self.emb_rows is not None:
            if self.emb_rows.shape[1] != rows.shape[1]:
                return  # a different dimension than this window's first: not comparable, ignored
            u = np.concatenate([self.emb_u, u])  # type: ignore[list-item]
            rows = np.vstack([self.emb_rows, rows])
        self.emb_u, self.emb_rows = bottom_k(u, rows, self.emb_k)

    def _add_llm(self, cols: Columns, rows: I64, slot: I64) -> None:
        llm = cols.llm
        assert llm is not None
        has = llm.has[rows]
        sl = slot[has]
        r = rows[has]
        self._add("llm_n", sl)
        for name, vals in (("lp", llm.lp_sum), ("ent", llm.ent_sum)):
            v = vals[r]
            ok = ~np.isnan(v)
            self._add(f"{name}_sum", sl[ok], v[ok])
            self._add(f"{name}_n", sl[ok], (llm.lp_n if name == "lp" else llm.ent_n)[r][ok])
        for name, vals in (("tok", llm.out_tokens), ("chr", llm.chars)):
            v = vals[r]
            ok = ~np.isnan(v)
            self._add(f"{name}_sum", sl[ok], v[ok])
            self._add(f"{name}_n", sl[ok])
        self._add("empty", sl, llm.empty[r].astype(np.float64))
        self._add("refusal", sl, llm.refusal[r].astype(np.float64))
        mins = llm.lp_min[r]
        ok = ~np.isnan(mins)
        arr = self._arr(Kind.MIN, "lp")
        np.minimum.at(arr, sl[ok], mins[ok])
        for i, s in zip(r.tolist(), sl.tolist(), strict=True):
            ph, ch = llm.prompt_hash[i], llm.completion_hash[i]
            if ph is None or ch is None:
                continue
            d = self.incons.setdefault(s, {})
            ent = d.get(ph)
            if ent is None:
                if len(d) < _INCONS_CAP:
                    d[ph] = [ch, 1, 0]
            else:
                ent[1] += 1
                if ent[0] != ch:
                    ent[2] = 1

    def add_joined(self, j: Joined) -> None:
        """Absorb labels joined to predictions of this window."""
        n = len(j.slots)
        if n == 0:
            return
        rows_l: list[int] = []
        slot_l: list[int] = []
        for i, names in enumerate(j.slots):
            for key, value in names:
                s = 0 if (key, value) == WHOLE else self.slot_of(key, value, create=False)
                if s >= 0:
                    rows_l.append(i)
                    slot_l.append(s)
        rows = np.array(rows_l, dtype=np.int64)
        slot = np.array(slot_l, dtype=np.int64)
        self._add("labeled", slot)
        has_cls = np.array([p is not None and t is not None for p, t in zip(j.pred_label, j.true_label, strict=True)])
        if has_cls.any():
            pi = np.array([self._label_index(p) if h and p is not None else 0
                           for p, h in zip(j.pred_label, has_cls, strict=True)])
            ti = np.array([self._label_index(t) if h and t is not None else 0
                           for t, h in zip(j.true_label, has_cls, strict=True)])
            L = len(self.labels)
            m = has_cls[rows]
            arr = self._arr(Kind.CONF, "", (L, L), np.int64)
            np.add.at(arr, (slot[m], ti[rows][m], pi[rows][m]), 1)
            okp = has_cls & ~np.isnan(j.pos_score)
            if okp.any():
                is_pos = np.array([t is not None and t == p for t, p in zip(j.true_label, j.pos_name, strict=True)])
                b = auc_bin(np.nan_to_num(j.pos_score))
                mrow = okp[rows]
                pos_m = mrow & is_pos[rows]
                neg_m = mrow & ~is_pos[rows]
                self._add_hist("auc_pos", slot[pos_m], b[rows][pos_m], AUC_BINS)
                self._add_hist("auc_neg", slot[neg_m], b[rows][neg_m], AUC_BINS)
            if j.conf is not None:
                self._add_joined_conf(j, has_cls, rows, slot)
        err = j.pred_value - j.true_value
        ok = ~np.isnan(err)
        if ok.any():
            m = ok[rows]
            self._add("reg_n", slot[m])
            self._add("reg_abs", slot[m], np.abs(err[rows][m]))
            self._add("reg_sq", slot[m], (err[rows][m]) ** 2)

    # ---- merge / collapse -----------------------------------------------------------------
    def _absorb(self, other: WindowAcc, slot_map: I64) -> None:
        catmap = {f: np.array([self._cat_index(f, v) for v in vals], dtype=np.int64) for f, vals in other.cats.items()}
        labmap = np.array([self._label_index(v) for v in other.labels], dtype=np.int64)
        for kind, name, src in other.arrays():
            sm = slot_map[: src.shape[0]]
            if kind is Kind.CAT:
                cm = catmap.get(name, np.zeros(0, np.int64))
                dst = self._arr(kind, name, (len(self.cats.get(name, ())),), np.int64)
                np.add.at(dst, (sm[:, None], cm[None, : src.shape[1]]), src[:, : len(cm)])
            elif kind is Kind.CONF:
                L = len(self.labels)
                dst = self._arr(kind, name, (L, L), np.int64)
                lm = labmap[: src.shape[1]]
                np.add.at(dst, (sm[:, None, None], lm[None, :, None], lm[None, None, :]), src)
            elif kind is Kind.MIN:
                dst = self._arr(kind, name, src.shape[1:], src.dtype)
                np.minimum.at(dst, sm, src)
            else:
                dst = self._arr(kind, name, src.shape[1:], src.dtype)
                np.add.at(dst, sm, src)
        for s, d in other.incons.items():
            mine = self.incons.setdefault(int(slot_map[s]), {})
            for ph, (ch, cnt, diff) in d.items():
                ent = mine.get(ph)
                if ent is None:
                    if len(mine) < _INCONS_CAP:
                        mine[ph] = [ch, cnt, diff]
                else:
                    ent[1] += cnt
                    ent[2] = int(ent[2] or diff or ent[0] != ch)
        if other.emb_rows is not None and other.emb_u is not None:
            self._add_embeddings(other.emb_u, other.emb_rows)
        self.late += other.late
        self.late_labels += other.late_labels
        for k, v in other.hw.items():
            self.hw[k] = max(self.hw.get(k, -1), v)

    def merge(self, other: WindowAcc) -> None:
        """Add ``other``'s state into this one (segments matched by name)."""
        names = sorted(other.slots, key=other.slots.__getitem__)
        slot_map = np.array([0 if nm == WHOLE else self.slot_of(*nm) for nm in names], dtype=np.int64)
        self._absorb(other, slot_map)

    def collapsed(self, top_k: int) -> WindowAcc:
        """A copy keeping, per segment key, the ``top_k`` values by count; the rest merged into ``other``."""
        count = self.parts[Kind.TOTAL].get("count", np.zeros(self.n_slots))
        keep: dict[tuple[str, str], int] = {}
        by_key: dict[str, list[tuple[str, str]]] = {}
        for nm in self.slots:
            if nm != WHOLE:
                by_key.setdefault(nm[0], []).append(nm)
        out = WindowAcc(self.model, self.version, self.start_ms, self.end_ms, self.max_tracked,
                        self.max_categories, self.emb_k)
        targets: list[tuple[str, str]] = []
        for nms in by_key.values():
            ranked = sorted(nms, key=lambda nm: (-count[self.slots[nm]], nm[1]))
            for nm in ranked[:top_k]:
                keep[nm] = 1
        for nm in sorted(self.slots, key=self.slots.__getitem__):
            if nm == WHOLE:
                targets.append(WHOLE)
            elif nm in keep:
                targets.append(nm)
            else:
                targets.append((nm[0], OTHER))
        slot_map = np.array([0 if t == WHOLE else out.slot_of(*t) for t in targets], dtype=np.int64)
        out._absorb(self, slot_map)
        return out

    def segment_names(self) -> Iterable[tuple[str, str]]:
        """Every tracked segment (not the whole version), in slot order."""
        return (nm for nm in sorted(self.slots, key=self.slots.__getitem__) if nm != WHOLE)

    # ---- serialisation ---------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """Compact msgpack: arrays stored sparse (non-zero positions and values), in order of
        creation, each under its :func:`wire_name`."""
        arrays = {}
        names = _DTYPE_NAMES
        for kind, name, arr in self.arrays():
            flat = arr.ravel()
            fill = np.inf if kind is Kind.MIN else 0
            nz = np.flatnonzero(flat != fill)
            vals = flat[nz]
            # counts fit in int32 in practice; keep the exact dtype when they do not
            if vals.dtype == np.int64 and (len(vals) == 0 or vals.max() < 2**31):
                vals = vals.astype(np.int32)
            dt, vdt = arr.dtype, vals.dtype
            arrays[wire_name(kind, name)] = [list(arr.shape), names.get(dt) or names.setdefault(dt, str(dt)),
                            nz.astype(np.int32).tobytes(), names.get(vdt) or names.setdefault(vdt, str(vdt)),
                            vals.tobytes()]
        doc = {
            "m": self.model, "v": self.version, "s": self.start_ms, "e": self.end_ms,
            "cfg": [self.max_tracked, self.max_categories, self.emb_k],
            "slots": [[k, v, i] for (k, v), i in self.slots.items()],
            "a": arrays, "cats": self.cats, "labels": self.labels,
            "incons": {str(k): v for k, v in self.incons.items()},
            "emb": None if self.emb_rows is None else [list(self.emb_rows.shape), self.emb_u.tobytes(),  # type: ignore[union-attr]
                                                       self.emb_rows.tobytes()],
            "hw": self.hw, "late": self.late, "late_labels": self.late_labels,
        }
        return msgspec.msgpack.encode(doc)

    @classmethod
    def from_bytes(cls, data: bytes) -> WindowAcc:
        """Inverse of :meth:`to_bytes`."""
        d = msgspec.msgpack.decode(data)
        acc = cls(d["m"], d["v"], d["s"], d["e"], *d["cfg"])
        acc.slots = {(k, v): i for k, v, i in d["slots"]}
        for wire, (shape, dtype, nz, vdtype, vals) in d["a"].items():
            kind, name = parse_wire_name(wire)
            arr = np.full(int(np.prod(shape)), _fill(kind), dtype=np.dtype(dtype))
            arr[np.frombuffer(nz, np.int32)] = np.frombuffer(vals, np.dtype(vdtype))
            acc.put(kind, name, arr.reshape(shape))
        acc.cats = d["cats"]
        acc.labels = d["labels"]
        acc.incons = {int(k): v for k, v in d["incons"].items()}
        if d["emb"] is not None:
            shape, u, rows = d["emb"]
            acc.emb_u = np.frombuffer(u, np.float64).copy()
            acc.emb_rows = np.frombuffer(rows, np.float64).reshape(shape).copy()
        acc.hw = d["hw"]
        acc.late = d["late"]
        acc.late_labels = d["late_labels"]
        return acc


def cat_items(cat: dict[str, StrCol]) -> Iterable[tuple[str, StrCol]]:
    """Categorical columns in a stable order."""
    return sorted(cat.items())
