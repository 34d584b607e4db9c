"""The processor's state machine, free of Kafka and faust: raw predictions/feedback in, closed-window
snapshots and dead letters out.

State lives in three string→bytes maps supplied by the caller (plain dicts in tests, faust tables
with changelogs in the service):

* ``windows``: ``model|version|start_ms`` → open :class:`WindowAcc` (with its source high-water
  offsets, so replayed messages after a crash are skipped: each window absorbs a message once);
* ``joins``: ``p|model|<prediction_id>`` → a prediction waiting for its label; ``f|model|<prediction_id>`` → a
  label waiting for its prediction; both expire after ``join_retention_s``;
* ``meta``: ``m|model`` → watermark and per-version bookkeeping; ``base|model|version`` → the
  pinned baseline being built; ``ref|model|version`` → the frozen pinned reference;
  uploaded reference profiles (``model@version``, from the references topic) take precedence. Until
  a new version's baseline is frozen, it is compared with the previous version's reference.

Windows are event-time tumbling windows of ``window_s``. A window closes when the model's
watermark (max prediction ``ts`` seen) passes ``end + lateness_s + label_wait_s``, or after
``idle_flush_s`` wall seconds without events of that model. Closing emits snapshots first and then
deletes the window, so a crash in between re-emits the same snapshots with the same event ids.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from inferwatch.contract.events import MetricSnapshotV1
from inferwatch.processor.config import ProcessorConfig
from inferwatch.processor.core.acc import WHOLE, Joined, WindowAcc
from inferwatch.processor.core.columns import build_columns, positive_class
from inferwatch.processor.core.decode import Prediction, Raw, Rejected, decode_feedback, decode_predictions
from inferwatch.processor.core.snapshot import build_snapshots

Store = MutableMapping[str, bytes]


@dataclass
class Output:
    """What one call produced: snapshots to publish and rejected messages for the dead-letter topic."""

    snapshots: list[MetricSnapshotV1] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    def extend(self, other: Output) -> None:
        self.snapshots.extend(other.snapshots)
        self.rejected.extend(other.rejected)


def _enc(x: Any) -> bytes:
    return msgspec.msgpack.encode(x)


def _dec(b: bytes) -> Any:
    return msgspec.msgpack.decode(b)


class ProcessorCore:
    """Stateful, deterministic processing of prediction and feedback batches (see module docstring)."""

    def __init__(self, cfg: ProcessorConfig | None = None, windows: Store | None = None, joins: Store | None = None,
                 meta: Store | None = None, rng_seed: int = 0) -> None:
        self.cfg = cfg or ProcessorConfig()
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
        self.reload()

    # ---- state -----------------------------------------------------------------------------
    def reload(self) -> None:
        """(Re)load open windows and model bookkeeping from the stores (after a restart/recovery)."""
        self._live = {k: WindowAcc.from_bytes(v) for k, v in list(self.windows.items())}
        self._models = {k[2:]: _dec(v) for k, v in list(self.meta.items()) if k.startswith("m|")}

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
        now = time.monotonic() if now is None else now
        good, bad = decode_predictions(raws)
        out = Output(rejected=bad)
        groups: dict[tuple[str, str, int], list[tuple[Raw, Prediction]]] = defaultdict(list)
        touched_models: set[str] = set()
        for r, e in good:
            groups[(e.model, e.model_version, e.ts - e.ts % self._wms)].append((r, e))
        for (model, version, start), items in groups.items():
            touched_models.add(model)
            self._last_wall[model] = now
            v = self._version(model, version, min(e.ts for _, e in items))
            if start + self._wms <= v["closed_until"]:
                v["late"] += len(items)
                continue
            acc = self._acc(model, version, start)
            fresh = [(r, e) for r, e in items if r.offset > acc.hw.get(f"{r.topic}:{r.partition}", -1)]
            if not fresh:
                continue
            evs = [e for _, e in fresh]
            acc.add_columns(build_columns(evs, self._refusal, self.cfg.max_features), self._rng)
            self._join_predictions(acc, evs)
            for r, _ in fresh:
                tp = f"{r.topic}:{r.partition}"
                if r.offset > acc.hw.get(tp, -1):
                    acc.hw[tp] = r.offset
            m = self._model(model)
            m["max_ts"] = max(m["max_ts"], max(e.ts for e in evs))
            self.windows[f"{model}|{version}|{start}"] = acc.to_bytes()
        for model in touched_models:
            out.extend(self._close(model, self._model(model)["max_ts"]))
            self._save_model(model)
        return out

    def _join_predictions(self, acc: WindowAcc, evs: list[Prediction]) -> None:
        joined: list[tuple[list[Any], Any]] = []
        for e in evs:
            o = e.outputs
            if o is None or (o.label is None and o.value is None):
                continue
            pos_name, pos_score = positive_class(o.probabilities)
            rec = [e.model_version, acc.start_ms, [list(WHOLE), *[[k, v] for k, v in e.segment.items()]], o.label,
                   pos_name, pos_score, o.value, e.ts]
            fkey = f"f|{e.model}|{e.prediction_id}"
            fb = self.joins.get(fkey)
            if fb is not None:
                joined.append((rec, _dec(fb)))
                del self.joins[fkey]
            else:
                self.joins[f"p|{e.model}|{e.prediction_id}"] = _enc(rec)
        if joined:
            acc.add_joined(_joined(joined))

    # ---- feedback --------------------------------------------------------------------------
    def process_feedback(self, raws: list[Raw], now: float | None = None) -> Output:
        """Join a batch of labels to their predictions (or park them until the prediction arrives)."""
        good, bad = decode_feedback(raws)
        out = Output(rejected=bad)
        per_window: dict[str, list[tuple[list[Any], Any]]] = defaultdict(list)
        hw: dict[str, dict[str, int]] = defaultdict(dict)
        for r, f in good:
            pkey = f"p|{f.model}|{f.prediction_id}"
            b = self.joins.get(pkey)
            if b is None:
                self.joins[f"f|{f.model}|{f.prediction_id}"] = _enc([f.label, f.value, f.ts])
                continue
            rec = _dec(b)
            key = f"{f.model}|{rec[0]}|{rec[1]}"
            acc = self._live.get(key)
            tp = f"{r.topic}:{r.partition}"
            if acc is None:
                ver = self._model(f.model)["versions"].get(rec[0])
                if ver is not None:
                    ver["late_labels"] = ver.get("late_labels", 0) + 1
                del self.joins[pkey]
                continue
            if r.offset <= acc.hw.get(tp, -1):
                continue
            per_window[key].append((rec, [f.label, f.value, f.ts]))
            hw[key][tp] = max(hw[key].get(tp, -1), r.offset)
            del self.joins[pkey]
        for key, pairs in per_window.items():
            acc = self._live[key]
            acc.add_joined(_joined(pairs))
            acc.hw.update({k: max(v, acc.hw.get(k, -1)) for k, v in hw[key].items()})
            self.windows[key] = acc.to_bytes()
        return out

    # ---- closing -----------------------------------------------------------------------------
    def _close(self, model: str, watermark_ts: float) -> Output:
        out = Output()
        wait = (self.cfg.lateness_s + self.cfg.label_wait_s) * 1000
        due = sorted((acc.start_ms, key) for key, acc in self._live.items()
                     if acc.model == model and acc.end_ms + wait <= watermark_ts)
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
        return sorted(m for m in {a.model for a in self._live.values()}
                      if now - self._last_wall.get(m, now) >= self.cfg.idle_flush_s)

    def close_model(self, model: str) -> Output:
        """Close every open window of ``model`` now (idle flush, end of a replay)."""
        out = self._close(model, float("inf"))
        self._last_wall.pop(model, None)
        return out

    def flush_idle(self, now: float | None = None) -> Output:
        """Close every open window of models idle for ``idle_flush_s`` wall seconds (the last window
        closes when traffic stops)."""
        now = time.monotonic() if now is None else now
        out = Output()
        for model in {a.model for a in self._live.values()}:
            if now - self._last_wall.get(model, now) >= self.cfg.idle_flush_s:
                out.extend(self._close(model, float("inf")))
        if not self._live:
            self._last_wall.clear()
        return out

    def flush_all(self) -> Output:
        """Close every open window now (end of a replay)."""
        out = Output()
        for model in {a.model for a in self._live.values()}:
            out.extend(self._close(model, float("inf")))
        return out

    def expire_joins(self, now_ms: int) -> int:
        """Drop join entries older than ``join_retention_s``; returns how many."""
        cutoff = now_ms - self.cfg.join_retention_s * 1000
        dead = [k for k, v in list(self.joins.items()) if _dec(v)[-1] < cutoff]
        for k in dead:
            del self.joins[k]
        return len(dead)


def _joined(pairs: list[tuple[list[Any], Any]]) -> Joined:
    nan = float("nan")
    return Joined(
        slots=[[(k, v) for k, v in rec[2]] for rec, _ in pairs],
        pred_label=[rec[3] for rec, _ in pairs],
        true_label=[fb[0] for _, fb in pairs],
        pos_name=[rec[4] for rec, _ in pairs],
        pos_score=np.array([rec[5] if rec[5] is not None else nan for rec, _ in pairs], dtype=np.float64),
        pred_value=np.array([rec[6] if rec[6] is not None else nan for rec, _ in pairs], dtype=np.float64),
        true_value=np.array([fb[1] if fb[1] is not None else nan for _, fb in pairs], dtype=np.float64),
    )
