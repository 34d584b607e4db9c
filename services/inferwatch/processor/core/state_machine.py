"""The processor's state machine, free of Kafka and faust: raw predictions/feedback in, closed-window
snapshots and dead letters out.

State lives in three string→bytes maps supplied by the caller (plain dicts in tests, faust tables
with changelogs in the service):

* ``windows``: ``model|version|start_ms`` → open :class:`WindowAcc` (with its source high-water
  offsets, so replayed messages after a crash are skipped: each window absorbs a message once);
* ``joins``: predictions waiting for their label and labels waiting for their prediction, one value
  per batch (see :mod:`inferwatch.processor.core.joins`); both expire after ``join_retention_s``
  (:meth:`ProcessorCore.expire_joins`, called periodically by the service);
* ``meta``: ``m|model`` → watermark and per-version bookkeeping; ``base|model|version`` → the
  pinned baseline being built; ``ref|model|version`` → the frozen pinned reference;
  uploaded reference profiles (``model@version``, from the references topic) take precedence. Until
  a new version's baseline is frozen, it is compared with the previous version's reference.

Windows are event-time tumbling windows of ``window_s``. A window closes when the model's
watermark (max prediction ``ts`` seen) passes ``end + lateness_s + label_wait_s`` and — for a model
that has ever received labels — its label watermark (max label ``ts`` seen, ``max_label_ts`` in
``m|model``) passes the same point, so a backlog whose predictions are read ahead of its labels does
not close windows before their labels are read; or when the prediction watermark passes that point
plus ``label_stall_s`` (labels stopped: memory stays bounded); or after ``idle_flush_s`` wall
seconds without events of that model. Closing emits snapshots first and then
deletes the window, so a crash in between re-emits the same snapshots with the same event ids.
"""

from __future__ import annotations

import gc
import re
import time
from collections import defaultdict
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from inferwatch import native
from inferwatch.contract.events import DetectionV1, MetricSnapshotV1
from inferwatch.native.prediction_columns import decode_predictions as decode_columns
from inferwatch.processor.core.accumulator import WHOLE, Joined, WindowAcc
from inferwatch.processor.core.cbpe import predicted_confidence
from inferwatch.processor.core.detect import VersionDetectors, detect_settings, label_slots, to_event
from inferwatch.processor.core.event_arrays import build_columns, positive_class
from inferwatch.processor.core.fastpath import Batch, group_columns, join_records
from inferwatch.processor.core.joins import LABEL, PRED, JoinBook
from inferwatch.processor.core.raw_events import (
    _PRED,
    Prediction,
    Raw,
    Rejected,
    decode_feedback,
    decode_predictions,
)
from inferwatch.processor.core.snapshot import build_snapshots
from inferwatch.processor.settings import ProcessorSettings

Store = MutableMapping[str, bytes]


@dataclass
class Output:
    """What one call produced: snapshots and detections to publish, and rejected messages for the
    dead-letter topic."""

    snapshots: list[MetricSnapshotV1] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    detections: list[DetectionV1] = field(default_factory=list)

    def extend(self, other: Output) -> None:
        self.snapshots.extend(other.snapshots)
        self.rejected.extend(other.rejected)
        self.detections.extend(other.detections)


def _enc(x: Any) -> bytes:
    return msgspec.msgpack.encode(x)


def _dec(b: bytes) -> Any:
    return msgspec.msgpack.decode(b)


class ProcessorCore:
    """Stateful, deterministic processing of prediction and feedback batches (see module docstring)."""

    def __init__(self, cfg: ProcessorSettings | None = None, windows: Store | None = None, joins: Store | None = None,
                 meta: Store | None = None, rng_seed: int = 0, fast: bool | None = None) -> None:
        self.cfg = cfg or ProcessorSettings()
        self.windows: Store = windows if windows is not None else {}
        self.joins: Store = joins if joins is not None else {}
        self.meta: Store = meta if meta is not None else {}
        self._live: dict[str, WindowAcc] = {}
        self.uploaded: dict[str, bytes] = {}
        """Uploaded reference profiles by ``model@version`` (from the references topic)."""
        self._models: dict[str, dict[str, Any]] = {}
        self._last_wall: dict[str, float] = {}
        self._refusal = [re.compile(p) for p in self.cfg.refusal_patterns]
        self._rng = np.random.default_rng(rng_seed)
        self._wms = self.cfg.window_s * 1000
        self.joinbook = JoinBook(self.joins)
        self._fast = fast
        """Columnar fast path: None = when the compiled decoder is built (its pure-Python twin is
        slower than msgspec), True = always (the twin when not built; parity tests), False = never."""
        self._pending: dict[str, dict[str, Any]] = {}
        self._det_cfg = detect_settings(self.cfg)
        self._det: dict[tuple[str, str], VersionDetectors] = {}
        """Sequential detectors per (model, version), state in ``meta`` (:mod:`.detect`)."""
        self._det_touched: set[tuple[str, str]] = set()
        self._det_pairs: dict[str, list[tuple[tuple[list[Any], Any], tuple[str, int] | None]]] = defaultdict(list)
        self.reload()

    # ---- state -----------------------------------------------------------------------------
    def reload(self) -> None:
        """(Re)load open windows and model bookkeeping from the stores (after a restart/recovery)."""
        self._live = {k: WindowAcc.from_bytes(v) for k, v in list(self.windows.items())}
        self.joinbook.reload()
        self._models = {k[2:]: _dec(v) for k, v in list(self.meta.items()) if k.startswith("m|")}
        self._det = {}  # loaded again from meta on first use

    def _model(self, model: str) -> dict[str, Any]:
        m = self._models.get(model)
        if m is None:
            m = self._models[model] = {"max_ts": -1, "versions": {}}
        return m

    def _version(self, model: str, version: str, first_ts: int) -> dict[str, Any]:
        vs = self._model(model)["versions"]
        v = vs.get(version)
        if v is None:
            start = first_ts - first_ts % self._wms
            n = -(-self.cfg.baseline_s * 1000 // self._wms)  # whole windows covering baseline_s
            v = vs[version] = {"first_ts": first_ts, "baseline_end": start + n * self._wms, "closed_until": -1, "late": 0}
        return v

    def _save_model(self, model: str) -> None:
        self.meta[f"m|{model}"] = _enc(self._models[model])

    def _acc(self, model: str, version: str, start: int) -> WindowAcc:
        key = f"{model}|{version}|{start}"
        acc = self._live.get(key)
        if acc is None:
            c = self.cfg
            acc = self._live[key] = WindowAcc(model, version, start, start + self._wms, c.max_tracked_values,
                                              c.max_categories, c.embedding_sample)
        return acc

    def set_uploaded_reference(self, model: str, version: str, profile: bytes) -> None:
        """Install an uploaded reference profile (``ReferenceProfile.to_bytes()``) for a model version."""
        self.uploaded[f"{model}@{version}"] = profile

    def reference(self, model: str, version: str) -> WindowAcc | None:
        """The reference of a version: the uploaded profile, else the frozen pinned baseline, else —
        while the version's own baseline is still being pinned — the previous version's reference
        (so a new deploy is compared with the one it replaced from its first window), else None."""
        own = self._own_reference(model, version)
        if own is not None:
            return own
        prev = self._previous_version(model, version)
        return self._own_reference(model, prev) if prev is not None else None

    def _previous_version(self, model: str, version: str) -> str | None:
        """The version of ``model`` that first appeared last before ``version`` did."""
        vs = self._model(model)["versions"]
        mine = vs.get(version)
        if mine is None:
            return None
        older = [(v["first_ts"], name) for name, v in vs.items() if name != version and v["first_ts"] < mine["first_ts"]]
        return max(older)[1] if older else None

    def _own_reference(self, model: str, version: str) -> WindowAcc | None:
        up = self.uploaded.get(f"{model}@{version}")
        if up is not None:
            from inferwatch.processor.reference import ReferenceProfile

            try:
                return ReferenceProfile.from_bytes(up).acc
            except Exception:  # a corrupt upload must not stop the stream: fall back to the baseline
                self.uploaded.pop(f"{model}@{version}", None)
        b = self.meta.get(f"ref|{model}|{version}")
        return WindowAcc.from_bytes(b) if b is not None else None

    # ---- predictions -----------------------------------------------------------------------
    def process_predictions(self, raws: list[Raw], now: float | None = None) -> Output:
        """Decode, accumulate and join a batch of prediction messages; close windows the watermark passed."""
        n = len(raws)
        tpl = list(zip(map(attrgetter("topic"), raws), map(attrgetter("partition"), raws), strict=True))
        tp_names = list(dict.fromkeys(tpl))
        offs = np.fromiter(map(attrgetter("offset"), raws), np.int64, n)
        return self._ingest(list(map(attrgetter("value"), raws)), tp_names, _codes(tpl, tp_names), offs,
                            raws.__getitem__, now)

    def process_prediction_values(self, values: Sequence[bytes], topic: str, partition: int,
                                  offsets: Sequence[int] | npt.NDArray[np.int64],
                                  keys: Sequence[bytes | None] | None = None, now: float | None = None) -> Output:
        """:meth:`process_predictions` for the values of one topic-partition, without a :class:`Raw` per
        message: ``values[i]`` was read at ``offsets[i]`` (with key ``keys[i]``, only needed for the
        dead letters). Same outputs as :meth:`process_predictions` on the equivalent ``Raw`` list."""
        offs = np.asarray(offsets, dtype=np.int64)
        vals = values if isinstance(values, list) else list(values)

        def raw_of(i: int) -> Raw:
            return Raw(vals[i], topic, partition, int(offs[i]), keys[i] if keys is not None else None)

        return self._ingest(vals, [(topic, partition)], np.zeros(len(vals), np.int64), offs, raw_of, now)

    def _columnar(self) -> bool:
        """Whether batches go through the columnar fast path (see ``fast`` in the constructor)."""
        return self._fast if self._fast is not None else native.load("_decode") is not None

    def _ingest(self, values: list[bytes], tp_names: list[tuple[str, int]], tp_code: npt.NDArray[np.int64],
                offs: npt.NDArray[np.int64], raw_of: Callable[[int], Raw], now: float | None) -> Output:
        """The body of :meth:`process_predictions`: rows the columnar decoder accepts take the fast path;
        the others are decoded one by one by msgspec (the exact path: dead letters with the reason, llm,
        embedding and lineage blocks). A group (model version × window) holding any exact-path row is
        accumulated by the exact path as a whole, so both give the same state in the same order."""
        # A batch allocates many containers and no reference cycles, while the join book holds
        # every waiting record: the cyclic GC would rescan them again and again (~30% of the time).
        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            return self._ingest_batch(values, tp_names, tp_code, offs, raw_of, now)
        finally:
            if paused:
                gc.enable()

    def _ingest_batch(self, values: list[bytes], tp_names: list[tuple[str, int]], tp_code: npt.NDArray[np.int64],
                      offs: npt.NDArray[np.int64], raw_of: Callable[[int], Raw], now: float | None) -> Output:
        now = time.monotonic() if now is None else now
        n = len(values)
        cols = decode_columns(values) if self._columnar() and n else None
        slow_idx = np.arange(n) if cols is None else np.flatnonzero(~cols.ok)
        slow_raws = [raw_of(i) for i in slow_idx.tolist()]
        good, bad = decode_predictions(slow_raws)
        out = Output(rejected=bad)
        where = {id(r): i for r, i in zip(slow_raws, slow_idx.tolist(), strict=True)}
        exact: dict[int, Prediction] = {where[id(r)]: e for r, e in good}
        if cols is not None:
            valid = cols.ok.copy()
            ts_all = cols.ts.copy()
            models, versions = list(cols.model), list(cols.model_version)
        else:
            valid = np.zeros(n, np.bool_)
            ts_all = np.zeros(n, np.int64)
            models, versions = [None] * n, [None] * n
        for i, e in exact.items():
            valid[i] = True
            ts_all[i] = e.ts
            models[i], versions[i] = e.model, e.model_version
        vidx = np.flatnonzero(valid)
        if not len(vidx):
            return out
        is_exact = np.zeros(n, np.bool_)
        is_exact[list(exact)] = True
        starts = ts_all - ts_all % self._wms
        # (model, version) as small integer codes: grouping is then numpy work
        m0, v0 = models[0], versions[0]
        if m0 is not None and v0 is not None and models.count(m0) == n and versions.count(v0) == n:
            # one model version in the whole batch (the usual case): no (model, version) pair per event
            mv_names: list[tuple[str | None, str | None]] = [(m0, v0)]
            mv_code = np.zeros(len(vidx), dtype=np.int64)
        else:
            vl = vidx.tolist()
            mv = list(zip(map(models.__getitem__, vl), map(versions.__getitem__, vl), strict=True))
            mv_names = list(dict.fromkeys(mv))
            mv_code = _codes(mv, mv_names)
        tp_keys = [f"{t}:{p}" for t, p in tp_names]
        v_starts = starts[vidx]
        order = np.lexsort((v_starts, mv_code))  # stable: events keep their order inside a group
        k_mv, k_st = mv_code[order], v_starts[order]
        cuts = np.flatnonzero((k_mv[1:] != k_mv[:-1]) | (k_st[1:] != k_st[:-1])) + 1
        batch = Batch(cols) if cols is not None else None
        touched_models: set[str] = set()
        for chunk in np.split(order, cuts):
            idx = vidx[chunk]
            model, version = mv_names[int(mv_code[chunk[0]])]
            assert model is not None and version is not None
            start = int(starts[idx[0]])
            touched_models.add(model)
            self._last_wall[model] = now
            v = self._version(model, version, int(ts_all[idx].min()))
            if start + self._wms <= v["closed_until"]:
                v["late"] += len(idx)
                continue
            acc = self._acc(model, version, start)
            hw = np.array([acc.hw.get(k, -1) for k in tp_keys], dtype=np.int64)
            fresh = idx[offs[idx] > hw[tp_code[idx]]]
            if not len(fresh):
                continue
            f0 = int(fresh[0])
            t0, p0 = tp_names[int(tp_code[f0])]
            tag = f"{t0}:{p0}:{int(offs[f0])}"
            gcols = None
            if batch is not None and not is_exact[fresh].any():
                gcols = group_columns(batch, fresh, self.cfg.max_features)
            if gcols is not None and batch is not None:
                acc.add_columns(gcols, self._rng)
                self._detect(out, model, version, gcols)
                pids, recs = join_records(batch, fresh, start)
                self._park({model: dict(zip(pids, recs, strict=True))}, acc)
                self._flush_park(tag)
            else:
                sub = [exact[i] if i in exact else _PRED.decode(values[i]) for i in fresh.tolist()]
                ecols = build_columns(sub, self._refusal, self.cfg.max_features)
                acc.add_columns(ecols, self._rng)
                self._detect(out, model, version, ecols)
                self._join_predictions(acc, sub, tag)
            for c in np.unique(tp_code[fresh]).tolist():
                top = int(offs[fresh][tp_code[fresh] == c].max())
                acc.hw[tp_keys[c]] = max(top, acc.hw.get(tp_keys[c], -1))
            m = self._model(model)
            m["max_ts"] = max(m["max_ts"], int(ts_all[fresh].max()))
            self.windows[f"{model}|{version}|{start}"] = acc.to_bytes()
        self.joinbook.flush()
        for model, pairs in self._det_pairs.items():
            self._detect_labels(out, model, pairs)
        self._det_pairs.clear()
        self._save_detectors()
        for model in touched_models:
            out.extend(self._close(model))
            self._save_model(model)
        return out

    # ---- sequential detection ----------------------------------------------------------------
    def detectors(self, model: str, version: str) -> VersionDetectors:
        """The sequential detectors of a model version (loaded from ``meta``, or new). Their reference
        period ends with the version's pinned baseline."""
        d = self._det.get((model, version))
        if d is None:
            v = self._model(model)["versions"].get(version)
            end = v["baseline_end"] if v is not None else 0
            d = self._det[(model, version)] = VersionDetectors.load(self._det_cfg, self.meta, model, version, end)
        return d

    def _detect(self, out: Output, model: str, version: str, cols: Any) -> None:
        """Run the version's detectors over one group of fresh predictions."""
        if not self._det_cfg.enabled:
            return
        found = self.detectors(model, version).observe(cols)
        self._det_touched.add((model, version))
        out.detections.extend(to_event(model, version, f) for f in found)

    def _detect_labels(self, out: Output, model: str,
                       pairs: list[tuple[tuple[list[Any], Any], tuple[str, int] | None]]) -> None:
        """Run the performance detectors over labels joined to their predictions (arrival order),
        whether or not the prediction's window is still open: a label that comes after its window
        closed is late for the window metrics, not for the detectors. ``(topic:partition, offset)``
        of a label read from the feedback topic skips a replayed label (the detectors keep their own
        high-water offsets); None for a label joined when its prediction arrived (the prediction's
        window offsets already skip replays)."""
        if not self._det_cfg.enabled or not pairs:
            return
        by_version: dict[str, list[tuple[list[Any], Any]]] = defaultdict(list)
        for (rec, fb), src in pairs:
            det = self.detectors(model, rec[0])
            if src is not None:
                lhw = det.live["lhw"]
                if src[1] <= lhw.get(src[0], -1):
                    continue
                lhw[src[0]] = src[1]
            by_version[rec[0]].append((rec, fb))
        for version, ps in by_version.items():
            slots, pred_ts, label_ts, wrong, abs_err = label_slots(ps)
            found = self.detectors(model, version).observe_labels(slots, pred_ts, label_ts, wrong, abs_err)
            self._det_touched.add((model, version))
            out.detections.extend(to_event(model, version, f) for f in found)

    def _save_detectors(self) -> None:
        for model, version in self._det_touched:
            self._det[(model, version)].save(self.meta, model, version)
        self._det_touched.clear()

    def _join_predictions(self, acc: WindowAcc, evs: list[Prediction], tag: str) -> None:
        """Join labelled predictions with labels already waiting; park the others in this batch's bucket."""
        parked: dict[str, dict[str, Any]] = defaultdict(dict)
        start = acc.start_ms
        for e in evs:
            o = e.outputs
            if o is None or (o.label is None and o.value is None):
                continue
            pos_name, pos_score = positive_class(o.probabilities) if o.probabilities else (None, None)
            # the segment dict is stored as is (msgpack): no per-event list building
            conf = predicted_confidence(o.label, o.score, o.probabilities)
            rec = [e.model_version, start, e.segment, o.label, pos_name, pos_score, o.value,
                   None if conf != conf else conf, e.ts]  # conf != conf: NaN
            parked[e.model][e.prediction_id] = rec
        self._park(parked, acc)
        self._flush_park(tag)

    def _park(self, parked: dict[str, dict[str, Any]], acc: WindowAcc) -> None:
        """Join records (``model -> prediction_id -> record``) with labels already waiting; keep the
        rest for :meth:`_flush_park`."""
        joined: list[tuple[list[Any], Any]] = []
        book = self.joinbook
        for model, recs in parked.items():
            labels = book.waiting(LABEL, model)
            if labels and not labels.keys().isdisjoint(recs):
                for pid in [p for p in recs if p in labels]:
                    joined.append((recs.pop(pid), book.take(LABEL, model, pid)))
                    self._det_pairs[model].append((joined[-1], None))
        self._pending = parked
        if joined:
            acc.add_joined(_joined(joined))

    def _flush_park(self, tag: str) -> None:
        """Park the records :meth:`_park` left unjoined in this batch's bucket ``tag``."""
        for model, recs in self._pending.items():
            self.joinbook.put_many(PRED, model, recs, tag)
        self._pending = {}

    # ---- feedback --------------------------------------------------------------------------
    def process_feedback(self, raws: list[Raw], now: float | None = None) -> Output:
        """Join a batch of labels to their predictions (or park them until the prediction arrives)."""
        good, bad = decode_feedback(raws)
        out = Output(rejected=bad)
        per_window: dict[str, list[tuple[list[Any], Any]]] = defaultdict(list)
        hw: dict[str, dict[str, int]] = defaultdict(dict)
        book = self.joinbook
        tag = f"{good[0][0].topic}:{good[0][0].partition}:{good[0][0].offset}" if good else ""
        models: dict[str, int] = {}
        for r, f in good:
            models[f.model] = max(models.get(f.model, -1), f.ts)
            rec = book.take(PRED, f.model, f.prediction_id)
            if rec is None:
                book.put(LABEL, f.model, f.prediction_id, [f.label, f.value, f.ts], tag)
                continue
            key = f"{f.model}|{rec[0]}|{rec[1]}"
            acc = self._live.get(key)
            tp = f"{r.topic}:{r.partition}"
            self._det_pairs[f.model].append(((rec, [f.label, f.value, f.ts]), (tp, r.offset)))
            if acc is None:
                ver = self._model(f.model)["versions"].get(rec[0])
                if ver is not None:
                    ver["late_labels"] = ver.get("late_labels", 0) + 1
                continue
            if r.offset <= acc.hw.get(tp, -1):
                continue  # a replay of a label this window already absorbed
            per_window[key].append((rec, [f.label, f.value, f.ts]))
            hw[key][tp] = max(hw[key].get(tp, -1), r.offset)
        for key, pairs in per_window.items():
            acc = self._live[key]
            acc.add_joined(_joined(pairs))
            acc.hw.update({k: max(v, acc.hw.get(k, -1)) for k, v in hw[key].items()})
            self.windows[key] = acc.to_bytes()
        book.flush()
        for model, dpairs in self._det_pairs.items():
            self._detect_labels(out, model, dpairs)
        self._det_pairs.clear()
        self._save_detectors()
        now = time.monotonic() if now is None else now
        open_models = {a.model for a in self._live.values()}
        for model, top in models.items():
            # Labels are traffic too: a model whose predictions have all been read but whose labels
            # are still streaming in is not idle (its windows would close without those labels).
            if model in open_models:
                self._last_wall[model] = now
            m = self._model(model)
            if top > m.get("max_label_ts", -1):
                m["max_label_ts"] = top
                self._save_model(model)
                # the label watermark moved: windows held back waiting for the feedback stream may be due
                out.extend(self._close(model))
        return out

    # ---- closing -----------------------------------------------------------------------------
    def _close_before(self, model: str) -> float:
        """Windows of ``model`` ending at or before this many ms are due (see the module docstring).

        A window ending at ``end`` needs the prediction watermark at ``end + lateness + label_wait``;
        if the model has ever received labels, also the label watermark there (labels carry their
        own, later ``ts``: the feedback stream has then been read as far as live traffic would have
        been when the window closed), unless the prediction watermark is ``label_stall_s`` further."""
        m = self._model(model)
        wait = (self.cfg.lateness_s + self.cfg.label_wait_s) * 1000
        pred_end = m["max_ts"] - wait
        label_ts = m.get("max_label_ts", -1)
        if label_ts < 0:  # never labelled: the prediction watermark alone, as always
            return float(pred_end)
        return float(max(min(pred_end, label_ts - wait), pred_end - self.cfg.label_stall_s * 1000))

    def _close(self, model: str, force: bool = False) -> Output:
        """Emit and delete the windows of ``model`` that are due (all of them when ``force``)."""
        out = Output()
        before = float("inf") if force else self._close_before(model)
        due = sorted((acc.start_ms, key) for key, acc in self._live.items()
                     if acc.model == model and acc.end_ms <= before)
        for _, key in due:
            out.snapshots.extend(self._emit(key))
        return out

    def _emit(self, key: str) -> list[MetricSnapshotV1]:
        acc = self._live[key]
        model, version = acc.model, acc.version
        v = self._version(model, version, acc.start_ms)
        # Pinned baseline: merge baseline windows; freeze it when the first later window closes.
        if acc.start_ms >= v["baseline_end"] and f"ref|{model}|{version}" not in self.meta \
                and f"base|{model}|{version}" in self.meta:
            self.meta[f"ref|{model}|{version}"] = self.meta[f"base|{model}|{version}"]
            del self.meta[f"base|{model}|{version}"]
        ref = self.reference(model, version)
        late = int(v.get("late", 0))
        snaps = build_snapshots(acc, ref, self.cfg, late_events=late)
        if acc.start_ms < v["baseline_end"]:
            bkey = f"base|{model}|{version}"
            base = WindowAcc.from_bytes(self.meta[bkey]) if bkey in self.meta else WindowAcc(
                model, version, acc.start_ms, acc.end_ms, acc.max_tracked, acc.max_categories, acc.emb_k)
            base.merge(acc)
            base.end_ms = max(base.end_ms, acc.end_ms)
            base.hw = {}
            self.meta[bkey] = base.to_bytes()
        v["late"] = 0
        v["closed_until"] = max(v["closed_until"], acc.end_ms)
        del self._live[key]
        del self.windows[key]
        self._save_model(model)
        return snaps

    def idle_models(self, now: float | None = None) -> list[str]:
        """Models with open windows and no events for ``idle_flush_s`` wall seconds."""
        now = time.monotonic() if now is None else now
        # setdefault: windows restored from the changelog count as seen at the first check after a
        # restart, so they close idle_flush_s later even if no more traffic of their model comes.
        return sorted(m for m in {a.model for a in self._live.values()}
                      if now - self._last_wall.setdefault(m, now) >= self.cfg.idle_flush_s)

    def close_model(self, model: str) -> Output:
        """Close every open window of ``model`` now (idle flush, end of a replay)."""
        out = self._close(model, force=True)
        self._last_wall.pop(model, None)
        return out

    def flush_idle(self, now: float | None = None) -> Output:
        """Close every open window of models idle for ``idle_flush_s`` wall seconds (the last window
        closes when traffic stops)."""
        now = time.monotonic() if now is None else now
        out = Output()
        for model in {a.model for a in self._live.values()}:
            if now - self._last_wall.setdefault(model, now) >= self.cfg.idle_flush_s:
                out.extend(self._close(model, force=True))
        if not self._live:
            self._last_wall.clear()
        return out

    def flush_all(self) -> Output:
        """Close every open window now (end of a replay)."""
        out = Output()
        for model in {a.model for a in self._live.values()}:
            out.extend(self._close(model, force=True))
        return out

    def expire_joins(self, now_ms: int | None = None, models: list[str] | None = None) -> int:
        """Drop waiting predictions and labels older than ``join_retention_s``; returns how many.

        The clock is event time: ``now_ms`` if given, else each model's newest prediction or label
        ``ts`` (so replays of old traffic are not expired by the wall clock). ``models`` limits the
        sweep (the faust app sweeps one model at a time, in that model's partition)."""
        keep = self.cfg.join_retention_s * 1000
        cut: dict[str, int] = {}
        for model in self.joinbook.models() if models is None else models:
            if now_ms is not None:
                cut[model] = now_ms - keep
            else:
                m = self._models.get(model)
                if m is not None:
                    cut[model] = max(m["max_ts"], m.get("max_label_ts", -1)) - keep
        return self.joinbook.expire(cut)


def _codes(items: list[Any], names: list[Any]) -> npt.NDArray[np.int64]:
    """Index of every item in ``names``."""
    if len(names) == 1:
        return np.zeros(len(items), dtype=np.int64)
    table = {k: i for i, k in enumerate(names)}
    return np.fromiter(map(table.__getitem__, items), np.int64, len(items))


def _joined(pairs: list[tuple[list[Any], Any]]) -> Joined:
    nan = float("nan")
    return Joined(
        # rec[2]: the prediction's segment dict (older records: a list of [key, value] incl. WHOLE)
        slots=[[WHOLE, *rec[2].items()] if isinstance(rec[2], dict) else [(k, v) for k, v in rec[2]]
               for rec, _ in pairs],
        pred_label=[rec[3] for rec, _ in pairs],
        true_label=[fb[0] for _, fb in pairs],
        pos_name=[rec[4] for rec, _ in pairs],
        pos_score=np.array([rec[5] if rec[5] is not None else nan for rec, _ in pairs], dtype=np.float64),
        pred_value=np.array([rec[6] if rec[6] is not None else nan for rec, _ in pairs], dtype=np.float64),
        true_value=np.array([fb[1] if fb[1] is not None else nan for _, fb in pairs], dtype=np.float64),
        # rec[7]: the predicted-class confidence (records of earlier versions have none: 8 fields)
        conf=np.array([rec[7] if len(rec) > 8 and rec[7] is not None else nan for rec, _ in pairs], dtype=np.float64),
    )
