"""The label join's waiting room: predictions waiting for their label and labels waiting for their
prediction, kept in a caller-supplied ``str -> bytes`` store (a faust table with a changelog in the
service) as one value per *batch*, not one per event.

Store layout (msgpack values):

* ``pb|<model>|<tag>`` → ``{prediction_id: record}``: the labelled predictions of one batch still
  waiting for their label (``tag`` names the batch: source topic, partition and first offset);
* ``fb|<model>|<tag>`` → ``{prediction_id: record}``: labels that arrived before their prediction;
* legacy single-entry keys ``p|<model>|<prediction_id>`` / ``f|<model>|<prediction_id>`` (one record
  each, written by earlier versions) are read as one-entry buckets.

Every record's last element is its event ``ts`` (ms), which :meth:`JoinBook.expire` compares with
the retention cutoff. An in-memory index ``kind|model|prediction_id → bucket key`` makes a lookup one
dict access; it is rebuilt from the store by :meth:`JoinBook.reload` (after a restart, the store has
been restored from its changelog). Taking an entry marks its bucket dirty; :meth:`JoinBook.flush`
writes each dirty bucket once (or deletes it when empty), so a batch costs one store write per
touched bucket, whatever its size.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import msgspec

Store = MutableMapping[str, bytes]
PRED, LABEL = "p", "f"


class JoinBook:
    """Pending predictions and labels, bucketed per batch (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.buckets: dict[str, dict[str, Any]] = {}
        self.where: dict[str, dict[str, dict[str, str]]] = {PRED: {}, LABEL: {}}
        """``kind -> model -> prediction_id -> bucket key``: the in-memory index."""
        self._dirty: set[str] = set()
        self._new: set[str] = set()
        self.reload()

    def reload(self) -> None:
        """Rebuild buckets and the index from the store."""
        self.buckets.clear()
        self.where = {PRED: {}, LABEL: {}}
        self._dirty.clear()
        self._new.clear()
        for key, raw in list(self.store.items()):
            kind, _, rest = key.partition("|")
            if kind in (PRED, LABEL):  # legacy: one entry per key
                model, _, pid = rest.partition("|")
                entries = {pid: msgspec.msgpack.decode(raw)}
            elif kind in ("pb", "fb"):
                model = rest.partition("|")[0]
                entries = msgspec.msgpack.decode(raw)
                kind = kind[0]
            else:
                continue
            self.buckets[key] = entries
            self.where[kind].setdefault(model, {}).update(dict.fromkeys(entries, key))

    def __len__(self) -> int:
        return sum(len(b) for b in self.buckets.values())

    def waiting(self, kind: str, model: str) -> dict[str, str]:
        """``prediction_id -> bucket key`` of the waiting entries of ``kind`` for ``model`` (read only)."""
        return self.where[kind].get(model) or {}

    def take(self, kind: str, model: str, pid: str) -> Any | None:
        """Remove and return the waiting record of ``kind`` (``PRED``/``LABEL``) for a prediction id."""
        w = self.where[kind].get(model)
        bk = w.pop(pid, None) if w else None
        if bk is None:
            return None
        rec = self.buckets[bk].pop(pid, None)
        self._dirty.add(bk)
        return rec

    def put_many(self, kind: str, model: str, recs: dict[str, Any], tag: str) -> None:
        """Park records (``prediction_id -> record``, a list or tuple whose last element is the event ts) in
        bucket ``tag``."""
        if not recs:
            return
        bk = f"{kind}b|{model}|{tag}"
        w = self.where[kind].setdefault(model, {})
        if not w.keys().isdisjoint(recs):  # ids parked again (a replay): keep one copy, the new one
            for pid in recs:
                old = w.get(pid)
                if old is not None and old != bk:
                    self.buckets[old].pop(pid, None)
                    self._dirty.add(old)
        bucket = self.buckets.get(bk)
        if bucket is None:
            self.buckets[bk] = dict(recs)
        else:
            bucket.update(recs)
        self._new.add(bk)
        w.update(dict.fromkeys(recs, bk))

    def put(self, kind: str, model: str, pid: str, rec: list[Any], tag: str) -> None:
        """Park one record (see :meth:`put_many`)."""
        self.put_many(kind, model, {pid: rec}, tag)

    def flush(self) -> int:
        """Write every bucket changed since the last flush once; returns the number of store writes."""
        writes = 0
        for bk in self._dirty | self._new:
            b = self.buckets.get(bk)
            if b:
                self.store[bk] = msgspec.msgpack.encode(b)
            else:
                self.buckets.pop(bk, None)
                if bk in self.store:
                    del self.store[bk]
            writes += 1
        self._dirty.clear()
        self._new.clear()
        return writes

    def models(self) -> set[str]:
        """Models with waiting entries."""
        return {bk.split("|", 2)[1] for bk in self.buckets}

    def expire(self, cutoff_ms: dict[str, int]) -> int:
        """Drop entries of each model in ``cutoff_ms`` whose event ts is older than its cutoff; the
        touched buckets are written (or deleted) at once. Returns how many entries were dropped."""
        dropped = 0
        for bk in list(self.buckets):
            kind, model, _ = bk.split("|", 2)
            cut = cutoff_ms.get(model)
            if cut is None:
                continue
            b = self.buckets[bk]
            old = [pid for pid, rec in b.items() if rec[-1] < cut]
            if not old:
                continue
            w = self.where[kind[0]].get(model, {})
            for pid in old:
                del b[pid]
                if w.get(pid) == bk:
                    del w[pid]
            dropped += len(old)
            self._dirty.add(bk)
        self.flush()
        return dropped
