"""Cheap unique ids for events and predictions.

``uuid4()`` costs several µs per call in CPython; the hot path instead joins a per-process random
prefix (64 bits from ``os.urandom``, fresh after ``fork``) and a decimal counter (a plain f-string
field formats faster than ``:x``). Two processes collide only if their 64-bit prefixes do, and ids
stay short (≤ 37 chars, within ``EventId``).
"""

from __future__ import annotations

import itertools
import os
import weakref
from collections.abc import Callable


class IdGenerator:
    """Generates ``<16 hex random>-<decimal counter>`` ids; ``next_id()`` is thread-safe under the GIL.

    ``prefix`` and ``counter`` are public so the logger's hot path can build an id inline
    (``f"{g.prefix}{next(g.counter)}"``) without a method call; both are replaced in a forked
    child, so parent and child never repeat ids.
    """

    __slots__ = ("__weakref__", "_subscribers", "counter", "prefix")

    def __init__(self) -> None:
        self._subscribers: list[Callable[[str, itertools.count[int]], object]] = []
        self._reset()
        _LIVE.add(self)

    def _reset(self) -> None:
        self.prefix = os.urandom(8).hex() + "-"
        # itertools.count's __next__ is a single C call, hence atomic under the GIL.
        self.counter = itertools.count(1)
        for fn in self._subscribers:
            fn(self.prefix, self.counter)

    def subscribe(self, fn: Callable[[str, itertools.count[int]], object]) -> None:
        """Call ``fn(prefix, counter)`` now and whenever they are replaced (in a forked child).

        The C encoder keeps both instead of reading two attributes per event; it draws from the
        same counter, so its ids never repeat the ones ``next_id()`` gives.
        """
        self._subscribers.append(fn)
        fn(self.prefix, self.counter)

    def next_id(self) -> str:
        """A new id, unique within this process and (with overwhelming probability) across processes."""
        return f"{self.prefix}{next(self.counter)}"


_LIVE: weakref.WeakSet[IdGenerator] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for gen in list(_LIVE):
        gen._reset()


os.register_at_fork(after_in_child=_after_fork_in_child)
