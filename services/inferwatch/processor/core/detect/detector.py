"""Sequential detectors of one model version, per segment value and for the whole version.

Life of a version's detectors (all in event time):

1. **Reference.** Until the version's baseline ends (the same ``baseline_end`` as the pinned
   window baseline), every event is sampled into a bounded, evenly thinned sample per slot (the
   whole version and each segment value): at most ``sample`` rows of the numeric values, the
   categories and the embedding. Labels of those predictions count the reference error rate.
2. **Freeze.** At the first event after ``baseline_end`` the samples become references: sorted values
   (for the normal scores), category probabilities, whitening matrices; the threshold ``h`` follows
   from the false-alarm budget and the number of tests (:mod:`.calibration`). A segment value with
   fewer than ``min_reference`` reference events, or one that appears later (``new_segment``), is
   compared with the whole version's reference.
3. **Detection.** Each event (each label, for performance) moves one adaptive CUSUM per signal and
   slot (:mod:`.sequential`). A crossing emits a ``detected`` :class:`DetectionV1`; the detector
   restarts, and once it has gone ``clear_events`` events of the slot without crossing again it emits
   ``cleared``.

State: two values per version in the caller's ``meta`` map (a faust table with a changelog in the
service), so it survives a rebalance like the window state: ``detref|model|version`` (the samples,
then the frozen reference, written while the reference is built and once at the freeze) and
``det|model|version`` (the running statistics, a few numbers per detector and slot). Memory is
bounded: ``sample`` rows per slot, at most ``max_values`` segment values per key (the rest share one
``__other__`` slot), at most ``max_categories`` categories per feature.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from inferwatch.contract.events import DetectionV1, Evidence, detection_id
from inferwatch.contract.limits import MAX_EVIDENCE
from inferwatch.processor.core.detect import sequential as sq
from inferwatch.processor.core.detect.calibration import rate_per_test, threshold
from inferwatch.processor.core.event_arrays import Coded, Columns, StrCol

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
OTHER = "__other__"
WHOLE = ""  # the slot name of the whole version; a segment slot is "key=value"
MIN_COLUMN = 20  # fewest reference values of one scalar for a slot's own sorted reference
MIN_LABELS = 50  # fewest reference labels before the error rate is tested
LAM_SCALAR, LAM_VECTOR, LAM_CAT = 0.15, 0.1, 0.1
RAW_CLIP = 1e150  # |value| summed for the reported mean: a million of them stay finite


@dataclass(frozen=True)
class DetectSettings:
    """What the detectors need from the processor settings."""

    false_alarm_rate: float = 1e-6  # per event of the model version, all tests together
    sample: int = 1024
    min_reference: int = 100
    max_values: int = 50
    max_categories: int = 16
    clear_events: int = 500
    enabled: bool = True


# ---- serialisation -------------------------------------------------------------------------------

_DTYPES: dict[Any, str] = {}  # str(dtype) is slow and asked for every array of every state write


def _pack(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        dt = x.dtype
        return {"__nd__": [_DTYPES.get(dt) or _DTYPES.setdefault(dt, str(dt)), list(x.shape), x.tobytes()]}
    if isinstance(x, dict):
        return {k: _pack(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_pack(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    return x


def _unpack(x: Any) -> Any:
    if isinstance(x, dict):
        nd = x.get("__nd__")
        if nd is not None and len(x) == 1:
            dt, shape, raw = nd
            return np.frombuffer(raw, dtype=np.dtype(dt)).reshape(shape).copy()
        return {k: _unpack(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_unpack(v) for v in x]
    return x


def encode(d: dict[str, Any]) -> bytes:
    """The stored bytes of a detector state dict (numpy arrays kept exactly)."""
    return msgspec.msgpack.encode(_pack(d))


def decode(b: bytes) -> dict[str, Any]:
    """Inverse of :func:`encode`."""
    out: dict[str, Any] = _unpack(msgspec.msgpack.decode(b))
    return out


# ---- one family of detectors in one slot -------------------------------------------------------

def _fam(d: int, m: int, a: int) -> dict[str, Any]:
    """Running state of ``d`` detectors: CUSUM ``s``, EWMA ``e [d, m]``, since-change count, start ts,
    accumulated values ``acc [d, a]``, detected flag and quiet count."""
    return {"s": np.zeros(d), "e": np.zeros((d, m)), "n": np.zeros(d, np.int64), "t": np.full(d, -1, np.int64),
            "acc": np.zeros((d, a)), "det": np.zeros(d, np.bool_), "quiet": np.zeros(d, np.int64)}


@dataclass
class Trip:
    """A detector decided: which, where (row of the batch), and the since-change summary."""

    col: int
    row: int
    status: str
    statistic: float
    n: int
    t: int
    acc: F64


def _step(f: dict[str, Any], inc: F64, contrib: F64, ts: I64, h: float, clear: int) -> list[Trip]:
    """Advance family ``f`` by increments ``inc [n, d]`` whose rows contribute ``contrib [n, d, a]``
    to the since-change values; return the detections and clearances, in row order."""
    n, d = inc.shape
    if n == 0:
        return []
    path, trips = sq.run(f["s"], inc, h)
    bound = path <= 0.0  # a CUSUM back at zero starts a new candidate change
    # running sums of the contributions are needed at crossings only; without one (the usual
    # case) the since-change sums below are one masked sum
    cs = np.cumsum(contrib, axis=0) if trips else None
    out: list[Trip] = []
    last_trip = np.full(d, -1, np.int64)

    def since(j: int, r: int) -> tuple[int, int, F64]:
        assert cs is not None
        prev = np.flatnonzero(bound[:r, j])
        if len(prev):
            lb = int(prev[-1])
            return r - lb, int(ts[lb + 1]), cs[r, j] - cs[lb, j]
        t0 = int(f["t"][j]) if f["n"][j] > 0 and f["t"][j] >= 0 else int(ts[0])
        return int(f["n"][j]) + r + 1, t0, f["acc"][j] + cs[r, j]

    for r, j in trips:
        cnt, t0, acc = since(j, r)
        if not f["det"][j]:
            out.append(Trip(j, r, "detected", float(path[r, j]), cnt, t0, acc))
            f["det"][j] = True
        f["quiet"][j] = 0
        last_trip[j] = r
        bound[r, j] = True
    # clearances: detected columns that went `clear` rows without crossing again
    for j in np.flatnonzero(f["det"]).tolist():
        lt = int(last_trip[j])
        before = 0 if lt >= 0 else int(f["quiet"][j])
        after = n - 1 - lt
        if before + after >= clear:
            r = lt + (clear - before)
            out.append(Trip(j, r, "cleared", float(path[r, j]), 0, int(ts[r]), np.zeros(contrib.shape[2])))
            f["det"][j] = False
            f["quiet"][j] = 0
        else:
            f["quiet"][j] = before + after
    # carry the since-change sums to the next batch
    anyb = bound.any(axis=0)
    lastb = n - 1 - np.argmax(bound[::-1], axis=0)
    cols = np.arange(d)
    fresh_t = np.where(lastb + 1 < n, ts[np.minimum(lastb + 1, n - 1)], -1)
    restart = (f["n"] == 0) | (f["t"] < 0)
    f["t"] = np.where(anyb, fresh_t, np.where(restart, ts[0], f["t"]))
    if cs is not None:
        f["acc"] = np.where(anyb[:, None], cs[-1] - cs[lastb, cols], f["acc"] + cs[-1])
    else:
        after = np.arange(n)[:, None] > np.where(anyb, lastb, -1)[None, :]  # rows since the last restart
        tail = np.einsum("nd,nda->da", after.astype(contrib.dtype), contrib)
        f["acc"] = np.where(anyb[:, None], tail, f["acc"] + tail)
    f["n"] = np.where(anyb, n - 1 - lastb, f["n"] + n)
    f["s"] = path[-1].copy()
    out.sort(key=lambda t: t.row)
    return out


# ---- the version ---------------------------------------------------------------------------------

@dataclass
class Found:
    """A decision before it becomes an event (the caller knows model and version)."""

    ts: int
    slot: str
    new_segment: bool
    signal: str
    metric: str
    status: str
    statistic: float
    threshold: float
    false_alarm_rate: float
    events: int
    labels: int | None
    change_ts: int | None
    value: float | None
    reference: float | None
    evidence: list[tuple[str, float]] = field(default_factory=list)


class VersionDetectors:
    """The detectors of one model version (see the module docstring)."""

    def __init__(self, cfg: DetectSettings, ref_end_ms: int, ref: dict[str, Any] | None = None,
                 live: dict[str, Any] | None = None) -> None:
        self.cfg = cfg
        self.ref: dict[str, Any] = ref or {
            "end": ref_end_ms, "frozen": False, "scalars": [], "cats": [], "vocab": {}, "emb_d": 0,
            "keys": [], "samples": {}, "refs": {}, "h": 0.0, "perf": {},
        }
        self.live: dict[str, Any] = live or {"slots": {}, "values": {}, "lhw": {}}
        self.ref_dirty = ref is None
        self._scores_cache: dict[str, Any] = {}

    # ---- slots ---------------------------------------------------------------------------------
    def _slot_names(self, cols: Columns) -> list[tuple[str, I64]]:
        """``(slot, rows)`` for the whole version and every segment value in ``cols`` (rows in order)."""
        out: list[tuple[str, I64]] = [(WHOLE, np.arange(cols.n, dtype=np.int64))]
        per_key: dict[str, list[str]] = self.live["values"]
        for key, vals in cols.segments.items():
            if isinstance(vals, Coded):
                codes = vals.codes.astype(np.int64)
                names = vals.values
                seen = [c for c in vals.first_seen() if c >= 0]
            else:
                table: dict[str | None, int] = {}
                names = []
                for v in vals:
                    if v is not None and v not in table:
                        table[v] = len(names)
                        names.append(v)
                codes = np.fromiter((-1 if v is None else table[v] for v in vals), np.int64, len(vals))
                seen = list(range(len(names)))
            if not len(codes):
                continue
            order = np.argsort(codes, kind="stable")
            sc = codes[order]
            cuts = np.flatnonzero(sc[1:] != sc[:-1]) + 1
            rows_of = {int(codes[part[0]]): part for part in np.split(order, cuts)}
            merged: dict[str, list[I64]] = {}
            # values in order of first appearance, so slots and overflow do not depend on the decoder
            for c in seen:
                part = rows_of[c]
                known = per_key.setdefault(key, [])
                v = names[c]
                if v not in known:
                    if len(known) >= self.cfg.max_values - 1:
                        v = OTHER
                    if v not in known:
                        known.append(v)
                merged.setdefault(f"{key}={v}", []).append(part)
            for slot, parts in merged.items():
                rows = np.sort(np.concatenate(parts)) if len(parts) > 1 else parts[0]
                out.append((slot, rows))
        return out

    # ---- columns -------------------------------------------------------------------------------
    def _scalar_matrix(self, cols: Columns, grow: bool) -> F64:
        """The scalar signals of ``cols`` as ``[n, S]`` in the order of ``ref["scalars"]`` (NaN = absent)."""
        names: list[str] = self.ref["scalars"]
        src: dict[str, F64] = {}
        for k, x in cols.num.items():
            metric = "output.score" if k == "@score" else "output.value" if k == "@value" else f"input.{k}"
            src[metric] = x
        if cols.llm is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                src["llm.logprob_mean"] = cols.llm.lp_sum / cols.llm.lp_n
        if grow:
            for metric in sorted(src):
                if metric not in names and len(names) < 512:
                    names.append(metric)
        x = np.full((cols.n, len(names)), np.nan)
        for j, metric in enumerate(names):
            v = src.get(metric)
            if v is not None:
                x[:, j] = v
        return np.where(np.isfinite(x), x, np.nan) if len(names) else x

    def _cat_matrix(self, cols: Columns, grow: bool) -> I64:
        """Categorical signals as codes ``[n, C]`` into each feature's vocabulary (-1 = absent; the
        code ``len(vocab)`` = a category the reference did not have)."""
        names: list[str] = self.ref["cats"]
        vocab: dict[str, list[str]] = self.ref["vocab"]
        src: dict[str, StrCol] = {("output.class" if k == "@class" else f"input.{k}"): v for k, v in cols.cat.items()}
        if grow:
            for metric in sorted(src):
                if metric not in names and len(names) < 128:
                    names.append(metric)
                    vocab[metric] = []
        out = np.full((cols.n, len(names)), -1, np.int64)
        cap = self.cfg.max_categories
        for j, metric in enumerate(names):
            col = src.get(metric)
            if col is None:
                continue
            voc = vocab[metric]
            if isinstance(col, Coded):
                values, codes = col.values, col.codes.astype(np.int64)
            else:
                values = list(dict.fromkeys(v for v in col if v is not None))
                idx = {v: i for i, v in enumerate(values)}
                codes = np.fromiter((-1 if v is None else idx[v] for v in col), np.int64, len(col))
            lut = np.full(len(values) + 1, -1, np.int64)
            # categories in order of first appearance (the same vocabulary from either decoder)
            present = [c for c in col.first_seen() if c >= 0] if isinstance(col, Coded) else range(len(values))
            for i in present:
                v = str(values[i])
                if v not in voc and grow:
                    if len(voc) >= cap - 1 and v != OTHER:
                        v = OTHER
                    if v not in voc:
                        voc.append(v)
                lut[i] = voc.index(v) if v in voc else (voc.index(OTHER) if OTHER in voc and not grow else len(voc))
            out[:, j] = lut[codes]  # code -1 -> lut[-1] = -1
        return out

    def _emb_matrix(self, cols: Columns) -> F64 | None:
        if cols.embedding is None or cols.embedding_rows is None:
            return None
        d = cols.embedding.shape[1]
        if self.ref["emb_d"] == 0 and not self.ref["frozen"]:
            self.ref["emb_d"] = min(d, 64)
        if d != self.ref["emb_d"] and not (d > 64 and self.ref["emb_d"] == 64):
            return None
        e = np.full((cols.n, self.ref["emb_d"]), np.nan)
        e[cols.embedding_rows] = cols.embedding[:, : self.ref["emb_d"]]
        return e

    # ---- reference --------------------------------------------------------------------------------
    def _sample(self, slot: str, x: F64, c: I64, e: F64 | None) -> None:
        """Add rows to the slot's evenly thinned reference sample (every ``stride``-th row; the stride
        doubles whenever the sample is full)."""
        s = self.ref["samples"].get(slot)
        if s is None:
            s = self.ref["samples"][slot] = {"n": 0, "stride": 1, "x": np.zeros((0, x.shape[1]), np.float32),
                                             "c": np.zeros((0, c.shape[1]), np.int16), "e": None, "cc": []}
        n = len(x)
        # categories are counted exactly (a few counts per feature), not sampled
        cc: list[F64] = s["cc"]
        while len(cc) < c.shape[1]:
            cc.append(np.zeros(0))
        for j in range(c.shape[1]):
            col = c[:, j]
            col = col[col >= 0]
            if len(col):
                add = np.bincount(col, minlength=len(cc[j])).astype(np.float64)
                add[: len(cc[j])] += cc[j]
                cc[j] = add
        take = np.flatnonzero((s["n"] + np.arange(n)) % s["stride"] == 0)
        s["n"] += n
        for k, new in (("x", x[take].astype(np.float32)), ("c", c[take].astype(np.int16))):
            old = s[k]
            if old.shape[1] < new.shape[1]:
                pad = np.full((len(old), new.shape[1] - old.shape[1]), np.nan if k == "x" else -1, old.dtype)
                old = np.hstack([old, pad])
            s[k] = np.vstack([old, new])
        if e is not None:
            new_e = e[take].astype(np.float32)
            s["e"] = new_e if s["e"] is None or s["e"].shape[1] != new_e.shape[1] else np.vstack([s["e"], new_e])
        elif s["e"] is not None:
            s["e"] = np.vstack([s["e"], np.full((len(take), s["e"].shape[1]), np.nan, np.float32)])
        while len(s["x"]) > self.cfg.sample:
            s["x"], s["c"] = s["x"][::2], s["c"][::2]
            if s["e"] is not None:
                s["e"] = s["e"][::2]
            s["stride"] *= 2
        self.ref_dirty = True

    def _freeze(self) -> bool:
        """Turn the samples into references; False (keep sampling) while the whole version has too few."""
        r = self.ref
        whole = r["samples"].get(WHOLE)
        if whole is None or whole["n"] < self.cfg.min_reference:
            return False
        refs: dict[str, Any] = {WHOLE: self._build_ref(whole, None)}
        for slot, s in r["samples"].items():
            if slot == WHOLE or s["n"] < self.cfg.min_reference:
                continue
            refs[slot] = self._build_ref(s, refs[WHOLE])
        r["refs"] = refs
        r["samples"] = {}
        r["frozen"] = True
        r["keys"] = sorted({k.split("=", 1)[0] for k in refs if k != WHOLE} | set(self.live["values"]))
        r["h"] = threshold(self.cfg.false_alarm_rate, self.tests_per_event())
        self.ref_dirty = True
        return True

    def tests_per_event(self) -> int:
        """Tests one event meets: per slot it belongs to (the whole version and one value per segment
        key), one per scalar, categorical, joint-inputs, embedding and performance detector."""
        r = self.ref
        joint = int(sum(1 for m in r["scalars"] if m.startswith("input.")) >= 2)
        per_slot = len(r["scalars"]) + len(r["cats"]) + joint + int(r["emb_d"] > 0) + 1
        return (1 + len(r["keys"])) * per_slot

    def _build_ref(self, s: dict[str, Any], whole: dict[str, Any] | None) -> dict[str, Any]:
        """A slot's reference from its sample. Values are scored on the whole version's grid (its
        distinct reference values): ``lut [S, L]`` holds this slot's normal score of every grid
        position (the whole version's where this slot has too few values of a signal)."""
        x = s["x"].astype(np.float64)
        width = len(self.ref["scalars"])
        if x.shape[1] < width:  # a slot that saw no event after a signal first appeared elsewhere
            x = np.hstack([x, np.full((len(x), width - x.shape[1]), np.nan)])
        sorted_cols: list[F64 | None] = []
        means = np.full(x.shape[1], np.nan)
        for j in range(x.shape[1]):
            v = x[:, j][~np.isnan(x[:, j])]
            sorted_cols.append(np.sort(v) if len(v) >= MIN_COLUMN else None)
            if len(v):
                means[j] = float(v.mean())
        p0: list[F64] = []
        for j, metric in enumerate(self.ref["cats"]):
            m = len(self.ref["vocab"][metric]) + 1  # + a category the reference did not have
            counts = np.zeros(m)
            if j < len(s["cc"]):
                got = s["cc"][j][:m]
                counts[: len(got)] = got
            p0.append((counts + 0.5) / (counts.sum() + 0.5 * m))
        ref: dict[str, Any] = {"n": int(s["n"]), "sorted": sorted_cols, "mean": means, "p0": p0}
        grids = [None if c is None else np.unique(c) for c in sorted_cols] if whole is None else whole["grid"]
        if whole is None:
            ref["grid"] = grids
        ref["lut"], ref["usable"] = _luts(grids, sorted_cols, None if whole is None else whole)
        inputs = [j for j, m in enumerate(self.ref["scalars"]) if m.startswith("input.") and sorted_cols[j] is not None]
        if len(inputs) >= 2:
            z = np.column_stack([sq.normal_scores(sorted_cols[j], x[:, j]) for j in inputs])  # type: ignore[arg-type]
            ref["joint"] = [inputs, sq.whitening(z)]
        e = s["e"]
        if e is not None:
            e = e.astype(np.float64)
            e = e[~np.isnan(e).any(axis=1)]
            if len(e) >= MIN_COLUMN:
                es = [np.sort(e[:, j]) for j in range(e.shape[1])]
                z = np.column_stack([sq.normal_scores(es[j], e[:, j]) for j in range(e.shape[1])])
                egrid = [np.unique(c) for c in es] if whole is None or "emb" not in whole else whole["emb"][2]
                elut, _ = _luts(egrid, es, None)
                ref["emb"] = [es, sq.whitening(z), egrid, elut]
        return ref

    # ---- predictions -------------------------------------------------------------------------------
    def observe(self, cols: Columns) -> list[Found]:
        """Absorb one group of predictions (event order); returns what the detectors decided."""
        if not self.cfg.enabled or cols.n == 0:
            return []
        ts = cols.ts
        frozen = self.ref["frozen"]
        before = ts < self.ref["end"]
        if not frozen and before.all():
            self._absorb_reference(cols)
            return []
        if not frozen:
            if before.any():  # not expected (a group is one window), but keep the order right
                self._absorb_reference(_take(cols, np.flatnonzero(before)))
            if not self._freeze():
                self._absorb_reference(_take(cols, np.flatnonzero(~before)))
                self.ref["end"] = int(ts.max()) + 1
                return []
        x = self._scalar_matrix(cols, grow=False)
        c = self._cat_matrix(cols, grow=False)
        e = self._emb_matrix(cols)
        whole = self.ref["refs"][WHOLE]
        # one binary search per signal for the whole batch; each slot then looks its scores up
        keys = _keys(whole["grid"], x)
        ekeys = _keys(whole["emb"][2], e) if e is not None and "emb" in whole and e.shape[1] == len(whole["emb"][2]) \
            else None
        # what every slot needs of the batch, computed once per batch and gathered per slot instead of
        # recomputed in each of the ~16 slots (bench_processor's wide stream: 39.7k -> 40.7k events/s
        # with the detectors on, at the edge of this machine's noise)
        pre: dict[str, Any] = {"nan": np.isnan(x)}
        # the raw values only feed the reported mean: bounded so that sums of hostile values stay finite
        pre["raw"] = np.clip(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), -RAW_CLIP, RAW_CLIP)
        width = whole["lut"].shape[1]
        pre["width"] = width
        pre["flat"] = keys + (np.arange(x.shape[1]) * width)[None, :]  # flat positions in a [S, width] lut
        cats: list[str] = self.ref["cats"]
        if cats:
            mm = _mmax(self.ref)
            lens = np.array([len(self.ref["vocab"][m]) + 1 for m in cats])
            pre["lens"] = lens
            pre["codes"] = np.where(c >= lens[None, :], lens[None, :] - 1, c)
            pre["onehot"] = sq.onehot_block(pre["codes"], mm)
        found: list[Found] = []
        for slot, rows in self._slot_names(cols):
            found += self._detect_slot(slot, rows, ts, pre, e, keys, ekeys)
        found.sort(key=lambda f: f.ts)
        return found

    def _absorb_reference(self, cols: Columns) -> None:
        x = self._scalar_matrix(cols, grow=True)
        c = self._cat_matrix(cols, grow=True)
        e = self._emb_matrix(cols)
        for slot, rows in self._slot_names(cols):
            self._sample(slot, x[rows], c[rows], e[rows] if e is not None else None)

    def _refs_for(self, slot: str) -> tuple[dict[str, Any], dict[str, Any], bool]:
        """The slot's own reference (or the whole version's), the whole version's, and whether the slot is new."""
        refs = self.ref["refs"]
        whole = refs[WHOLE]
        own = refs.get(slot)
        return (own if own is not None else whole), whole, slot != WHOLE and own is None

    def _live_slot(self, slot: str) -> dict[str, Any]:
        st = self.live["slots"].get(slot)
        if st is None:
            r = self.ref
            st = self.live["slots"][slot] = {
                "scalar": _fam(len(r["scalars"]), 1, 2),
                "cats": _fam(len(r["cats"]), _mmax(r), _mmax(r)),
                "joint": None, "emb": None, "perf": _fam(1, 2, 1),
            }
        return st

    def _detect_slot(self, slot: str, rows: I64, ts_all: I64, pre: dict[str, Any],
                     e_all: F64 | None, keys: I64, ekeys: I64 | None) -> list[Found]:
        ref, whole, new = self._refs_for(slot)
        st = self._live_slot(slot)
        h = float(self.ref["h"])
        rate = rate_per_test(h)
        clear = self.cfg.clear_events
        ts = ts_all[rows]
        n = len(rows)
        out: list[Found] = []
        names: list[str] = self.ref["scalars"]

        def found(tr: Trip, signal: str, metric: str, value: float | None, reference: float | None,
                  evidence: list[tuple[str, float]]) -> Found:
            det = tr.status == "detected"
            return Found(int(ts[tr.row]), slot, new, signal, metric, tr.status, tr.statistic, h, rate,
                         tr.n if det else 0, None, tr.t if det else None, value if det else None,
                         reference if det else None, evidence if det else [])

        # scalars: every numeric input, the score/value output, the LLM confidence
        if names:
            usable = ref["usable"]
            lut = ref["lut"]
            if lut.shape[1] == 0:
                z = np.zeros((n, len(names)))
            elif lut.shape == (len(names), pre["width"]):
                z = np.take(lut, pre["flat"][rows])  # one flat gather, not a broadcast 2-D fancy index
            else:
                z = lut[np.arange(len(names))[None, :], keys[rows]]
            z[pre["nan"][rows]] = 0.0
            f = st["scalar"]
            inc, f["e"] = _scalar_inc(z, f["e"])
            inc[:, ~usable] = -1.0  # a signal without a reference never alarms
            contrib = np.stack([pre["raw"][rows], z], axis=2)
            for tr in _step(f, inc, contrib, ts, h, clear):
                metric = names[tr.col]
                signal = metric.split(".", 1)[0] if not metric.startswith("llm.") else "llm"
                mean_z = float(tr.acc[1] / tr.n) if tr.n else 0.0
                value = float(tr.acc[0] / tr.n) if tr.n else None
                refm = ref["mean"][tr.col] if tr.col < len(ref["mean"]) else np.nan
                out.append(found(tr, signal, metric, _finite(value), _finite(refm), [(metric, mean_z)]))
            # all numeric inputs at once: many small shifts that no single feature shows
            joint = ref.get("joint") or (whole.get("joint") if ref is not whole else None)
            if joint is not None:
                cols_j, w_mat = joint
                if st["joint"] is None:
                    st["joint"] = _fam(1, len(cols_j), len(cols_j))
                fj = st["joint"]
                zj = z[:, cols_j]
                inc_j, e_new = sq.vector_increments(zj @ w_mat, fj["e"][0], LAM_VECTOR)
                fj["e"] = e_new[None, :]
                for tr in _step(fj, inc_j, zj[:, None, :], ts, h, clear):
                    mz = tr.acc / max(tr.n, 1)
                    ev = _ranked([(names[j], float(mz[k])) for k, j in enumerate(cols_j)])
                    out.append(found(tr, "input", "input.all", _finite(float(np.sqrt(np.mean(mz * mz)))), 0.0, ev))
        # categorical inputs and the predicted class
        cats: list[str] = self.ref["cats"]
        if cats:
            mm = _mmax(self.ref)
            p0m = np.zeros((len(cats), mm))
            for j in range(len(cats)):
                pj = ref["p0"][j] if j < len(ref["p0"]) else whole["p0"][j]
                p0m[j, : len(pj)] = pj
            codes = pre["codes"][rows]
            lens = pre["lens"]
            f = st["cats"]
            onehot = pre["onehot"][rows]  # the EWMA's input and the since-change sums' rows
            inc, f["e"] = sq.categorical_block(codes, p0m, f["e"], LAM_CAT, onehot=onehot)
            for tr in _step(f, inc, onehot, ts, h, clear):
                metric = cats[tr.col]
                m = int(lens[tr.col])
                p0 = p0m[tr.col, :m]
                share = tr.acc[:m] / max(tr.n, 1)
                diff = share - p0
                top = int(np.argmax(np.abs(diff)))
                voc = [*self.ref["vocab"][metric], "(new)"]
                ev = _ranked([(f"{metric}={voc[k]}", float(diff[k])) for k in range(m)])
                signal = "output" if metric.startswith("output.") else "input"
                out.append(found(tr, signal, metric, float(share[top]), float(p0[top]), ev))
        # embeddings: the mean of the whitened normal scores of every dimension
        emb = ref.get("emb") or (whole.get("emb") if ref is not whole else None)
        if emb is not None and e_all is not None and ekeys is not None and e_all.shape[1] == len(emb[0]):
            es, w_mat, _, elut = emb
            e = e_all[rows]
            ze = elut[np.arange(len(es))[None, :], ekeys[rows]]
            ze[np.isnan(e)] = 0.0
            if st["emb"] is None:
                st["emb"] = _fam(1, len(es), len(es))
            fe = st["emb"]
            inc_e, e_new = sq.vector_increments(ze @ w_mat, fe["e"][0], LAM_VECTOR)
            fe["e"] = e_new[None, :]
            for tr in _step(fe, inc_e, ze[:, None, :], ts, h, clear):
                mz = tr.acc / max(tr.n, 1)
                ev = _ranked([(f"embedding[{k}]", float(mz[k])) for k in range(len(mz))])
                out.append(found(tr, "embedding", "embedding.mean_shift",
                                 _finite(float(np.sqrt(np.mean(mz * mz)))), 0.0, ev))
        return out

    # ---- labels -------------------------------------------------------------------------------------
    def observe_labels(self, slots: Sequence[Sequence[str]], pred_ts: I64, label_ts: I64, wrong: F64,
                       abs_err: F64) -> list[Found]:
        """Absorb labels (arrival order): per label the slots of its prediction (``""`` and
        ``key=value``), its prediction's and its own event time, whether the predicted class was wrong
        (NaN: not a classification) and the absolute error (NaN: not a regression)."""
        if not self.cfg.enabled or not len(pred_ts):
            return []
        perf = self.ref["perf"]
        found: list[Found] = []
        is_ref = pred_ts < self.ref["end"]
        by_slot: dict[str, list[int]] = {}
        per_key: dict[str, list[str]] = self.live["values"]
        for i, names in enumerate(slots):
            for nm in names:
                if nm != WHOLE:
                    key, _, v = nm.partition("=")
                    known = per_key.setdefault(key, [])
                    if v not in known:
                        if len(known) >= self.cfg.max_values - 1:
                            nm = f"{key}={OTHER}"
                        else:
                            known.append(v)
                by_slot.setdefault(nm, []).append(i)
        for slot, idx_l in by_slot.items():
            idx = np.asarray(idx_l, np.int64)
            ref_i = idx[is_ref[idx]]
            if len(ref_i):
                p = perf.setdefault(slot, {"n": 0, "err": 0.0, "abs": np.zeros(0)})
                w = wrong[ref_i]
                p["n"] += int((~np.isnan(w)).sum())
                p["err"] += float(np.nansum(w))
                a = abs_err[ref_i]
                a = a[~np.isnan(a)]
                if len(a):
                    p["abs"] = np.sort(np.concatenate([p["abs"], a]))[:: max(1, (len(p["abs"]) + len(a)) // self.cfg.sample)]
                self.ref_dirty = True
            live_i = idx[~is_ref[idx]]
            if len(live_i) and self.ref["frozen"]:
                found += self._detect_perf(slot, live_i, label_ts, wrong, abs_err)
        found.sort(key=lambda f: f.ts)
        return found

    def _detect_perf(self, slot: str, idx: I64, label_ts: I64, wrong: F64, abs_err: F64) -> list[Found]:
        perf = self.ref["perf"]
        own = perf.get(slot)
        whole = perf.get(WHOLE)
        ref = own if own is not None and own["n"] >= MIN_LABELS else whole
        if ref is None or ref["n"] < MIN_LABELS and len(ref["abs"]) < MIN_LABELS:
            return []
        new = slot != WHOLE and slot not in self.ref["refs"]
        st = self._live_slot(slot)
        f = st["perf"]
        h = float(self.ref["h"])
        ts = label_ts[idx]
        w = wrong[idx]
        out: list[Found] = []
        if ref["n"] >= MIN_LABELS and not np.isnan(w).all():
            p_err = (ref["err"] + 0.5) / (ref["n"] + 1.0)
            p0 = np.array([1.0 - p_err, p_err])
            codes = np.where(np.isnan(w), -1, w).astype(np.int64)
            inc, e_new = sq.categorical_increments(codes, p0, f["e"][0], LAM_CAT, up_only=1)
            f["e"] = e_new[None, :]
            contrib = np.nan_to_num(w)[:, None, None]
            metric, reference = "perf.error_rate", p_err
        elif len(ref["abs"]) >= MIN_LABELS:
            a = abs_err[idx]
            z = sq.normal_scores(ref["abs"], a)[:, None]
            theta, e_new = sq.ewma_before(z, f["e"][0][:1], LAM_SCALAR)
            theta = np.clip(theta, 0.0, sq.THETA_CLIP)
            inc = theta * z - 0.5 * theta * theta
            f["e"] = np.array([[e_new[0], 0.0]])
            contrib = np.nan_to_num(a)[:, None, None]
            metric, reference = "perf.mae", float(np.mean(ref["abs"]))
        else:
            return []
        for tr in _step(f, inc, contrib, ts, h, self.cfg.clear_events):
            det = tr.status == "detected"
            value = float(tr.acc[0] / tr.n) if tr.n else None
            out.append(Found(int(ts[tr.row]), slot, new, "performance", metric, tr.status, tr.statistic, h,
                             rate_per_test(h), tr.n if det else 0, tr.n if det else None, tr.t if det else None,
                             value if det else None, reference if det else None,
                             [(metric, float((value or 0.0) - reference))] if det else []))
        return out

    # ---- storage ------------------------------------------------------------------------------------
    def save(self, meta: MutableMapping[str, bytes], model: str, version: str) -> None:
        """Write the state to ``meta`` (the reference only when it changed)."""
        if self.ref_dirty:
            meta[f"detref|{model}|{version}"] = encode(self.ref)
            self.ref_dirty = False
        meta[f"det|{model}|{version}"] = encode(self.live)

    @classmethod
    def load(cls, cfg: DetectSettings, meta: MutableMapping[str, bytes], model: str, version: str,
             ref_end_ms: int) -> VersionDetectors:
        """The version's detectors from ``meta`` (new ones when nothing is stored)."""
        r = meta.get(f"detref|{model}|{version}")
        live = meta.get(f"det|{model}|{version}")
        return cls(cfg, ref_end_ms, decode(r) if r is not None else None, decode(live) if live is not None else None)


def _luts(grids: list[F64 | None], sorted_cols: list[F64 | None],
          whole: dict[str, Any] | None) -> tuple[F64, npt.NDArray[np.bool_]]:
    """Per signal, the normal scores of every grid position against ``sorted_cols`` (falling back to
    the whole version's table where a column has too few values): ``[S, L]`` and which are usable."""
    width = max((2 * len(g) + 1 for g in grids if g is not None), default=0)
    lut = np.zeros((len(grids), width))
    usable = np.zeros(len(grids), np.bool_)
    for j, g in enumerate(grids):
        if g is None:
            continue
        srt = sorted_cols[j] if j < len(sorted_cols) else None
        if srt is not None:
            lut[j, : 2 * len(g) + 1] = sq.grid_scores(g, srt)
            usable[j] = True
        elif whole is not None and whole["usable"][j]:
            lut[j] = whole["lut"][j]
            usable[j] = True
    return lut, usable


def _keys(grids: list[F64 | None], x: F64) -> I64:
    """Grid positions of every value of ``x [n, S]`` (0 where a signal has no grid).

    The grids come from the reference sample, kept as float32; live values are looked up at that
    same precision, or a constant input that float32 cannot hold exactly (``0.2`` is stored as
    0.20000000298) would rank below the whole reference on every event and alarm on unchanged
    traffic (tests/unit/processor/test_detect_precision.py)."""
    with np.errstate(over="ignore"):  # beyond float32's range: ±inf, past either end of the grid
        x = x.astype(np.float32).astype(np.float64)
    out = np.zeros(x.shape, np.int64)
    for j, g in enumerate(grids):
        if g is not None and j < x.shape[1]:
            out[:, j] = sq.grid_keys(g, x[:, j])
    return out


def _mmax(r: dict[str, Any]) -> int:
    """Widest category table of a version's categorical signals (+1 for a category the reference lacked)."""
    return max((len(r["vocab"][m]) + 1 for m in r["cats"]), default=1)


def _scalar_inc(z: F64, e0: F64) -> tuple[F64, F64]:
    inc, e = sq.scalar_increments(z, e0[:, 0], LAM_SCALAR, np.zeros(z.shape[1]))
    return inc, e[:, None]


def _finite(v: float | None) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def _ranked(items: list[tuple[str, float]]) -> list[tuple[str, float]]:
    return sorted(items, key=lambda t: (-abs(t[1]), t[0]))[:MAX_EVIDENCE]


def _take(cols: Columns, idx: I64) -> Columns:
    """The rows ``idx`` of ``cols`` (only the fields the detectors read)."""
    segs: dict[str, StrCol] = {}
    for k, v in cols.segments.items():
        segs[k] = Coded(v.codes[idx], v.values) if isinstance(v, Coded) else [v[i] for i in idx.tolist()]
    cat: dict[str, StrCol] = {}
    for k, v in cols.cat.items():
        cat[k] = Coded(v.codes[idx], v.values) if isinstance(v, Coded) else [v[i] for i in idx.tolist()]
    out = Columns(n=len(idx), ts=cols.ts[idx], segments=segs, latency=cols.latency[idx], error=cols.error[idx],
                  num={k: v[idx] for k, v in cols.num.items()}, cat=cat, pos_name=[], pos_score=cols.pos_score[idx])
    if cols.embedding is not None and cols.embedding_rows is not None:
        pos = {int(r): i for i, r in enumerate(cols.embedding_rows.tolist())}
        keep = [(j, pos[int(r)]) for j, r in enumerate(idx.tolist()) if int(r) in pos]
        if keep:
            out.embedding = cols.embedding[[k for _, k in keep]]
            out.embedding_rows = np.array([j for j, _ in keep], np.int64)
    if cols.llm is not None:
        import dataclasses

        out.llm = dataclasses.replace(cols.llm, lp_sum=cols.llm.lp_sum[idx], lp_n=cols.llm.lp_n[idx])
    return out


def to_event(model: str, version: str, f: Found) -> DetectionV1:
    """The ``detection.v1`` event of a decision (deterministic id: a replay gives the same event)."""
    key, value = (None, None) if f.slot == WHOLE else f.slot.split("=", 1)
    return DetectionV1(
        event_id=detection_id(model, version, key, value, f.signal, f.metric, "cusum", f.status, f.ts),
        ts=f.ts, model=model, model_version=version, segment_key=key, segment_value=value,
        new_segment=f.new_segment, signal=f.signal, metric=f.metric, detector="cusum", status=f.status,  # type: ignore[arg-type]
        statistic=float(min(f.statistic, 1e12)), threshold=f.threshold, false_alarm_rate=f.false_alarm_rate,
        events=f.events, labels=f.labels, change_ts=f.change_ts, value=f.value, reference=f.reference,
        evidence=[Evidence(name=n[:300], score=float(np.clip(s, -1e12, 1e12))) for n, s in f.evidence],
    )
