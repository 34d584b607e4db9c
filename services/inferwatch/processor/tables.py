"""The processor's faust tables seen as the core's ``str -> bytes`` maps.

Wire format: none of its own; keys and values are raw bytes in rocksdict stores with compacted
changelog topics (the core's keys are ASCII, its values msgpack).

Why a wrapper with its own iteration: faust's table reads a key in the store of the *current
event's* partition only, while iterating a table yields the keys of every partition the worker holds.
Iterating a table and reading each key back (what ``MutableMapping.items()`` does) therefore raises
``KeyError`` for every key of another partition as soon as the table holds more than one partition's
state — which is exactly the state a worker rebuilds from the changelogs after a restart on an empty
disk, a lost state directory or a rebalance (the crash loop of the state-restore bug). Here keys and
values are read together from each *active* partition's store (:func:`active_items`), so a key of
another partition, a deleted key, or a partition still being restored (not active yet) is never read
back on its own.

Relies on faust 0.15.3's rocksdb store internals (``_dbs``, ``_visible_items``); the version is pinned
in ``pyproject.toml`` and checked at start-up (:func:`inferwatch.processor.app.check_faust`).
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

from faust.types import TP


def active_items(table: Any) -> Iterator[tuple[int, bytes, bytes]]:
    """``(partition, key, value)`` of every entry in the partitions this worker actively holds.

    A store without per-partition databases (faust's in-memory store) yields its items with
    partition ``-1`` (unknown).
    """
    store = table.data
    dbs = getattr(store, "_dbs", None)
    if dbs is None or not hasattr(store, "_visible_items"):
        for k, v in list(store.items()):
            yield -1, k, v
        return
    actives = table.app.assignor.assigned_actives()
    topic = table.changelog_topic_name
    for partition, db in list(dbs.items()):
        if TP(topic=topic, partition=partition) in actives:
            for k, v in store._visible_items(db):
                yield partition, k, v


class TableMap(MutableMapping[str, bytes]):
    """A faust table seen as ``str -> bytes`` (raw serializers).

    Single-key reads and writes go to the partition of the current event (faust's rule: set it with
    :func:`inferwatch.processor.app.in_partition_of`); iteration covers every active partition and
    reads each value with its key (see the module docstring).
    """

    def __init__(self, table: Any) -> None:
        self.t = table

    def __getitem__(self, k: str) -> bytes:
        v = self.t.get(k)
        if v is None:
            raise KeyError(k)
        return v  # type: ignore[no-any-return]

    def __setitem__(self, k: str, v: bytes) -> None:
        self.t[k] = v

    def __delitem__(self, k: str) -> None:
        del self.t[k]

    def __iter__(self) -> Iterator[str]:
        for _, k, _v in active_items(self.t):
            yield k.decode() if isinstance(k, bytes) else k

    def __len__(self) -> int:
        return sum(1 for _ in active_items(self.t))

    def items(self) -> Iterator[tuple[str, bytes]]:  # type: ignore[override]
        """Keys with their values, read together (never a second lookup per key)."""
        for _, k, v in active_items(self.t):
            yield (k.decode() if isinstance(k, bytes) else k), v

    def values(self) -> Iterator[bytes]:  # type: ignore[override]
        for _, _k, v in active_items(self.t):
            yield v

    def partitioned_keys(self) -> Iterator[tuple[int, str]]:
        """``(partition, key)`` of every entry in the active partitions."""
        for p, k, _v in active_items(self.t):
            yield p, (k.decode() if isinstance(k, bytes) else k)

    def get(self, k: str, default: Any = None) -> Any:  # type: ignore[override]
        v = self.t.get(k)
        return default if v is None else v

    def __contains__(self, k: object) -> bool:
        return self.t.get(k) is not None


def model_of_key(table: str, key: str) -> str | None:
    """The model a core state key of ``table`` belongs to (key layouts: :mod:`inferwatch.processor.core.state_machine`
    and :mod:`inferwatch.processor.core.joins`).

    ``windows``: ``model|version|start``; ``meta``: ``m|model``, ``base|model|version``,
    ``ref|model|version``; ``joins``: ``pb|model|tag``, ``fb|model|tag``, ``p|model|id``, ``f|model|id``.
    Model names cannot hold ``|`` (the contract's name pattern).
    """
    head, sep, rest = key.partition("|")
    if not sep:
        return None
    if table == "windows":
        return head or None
    return rest.partition("|")[0] or None
