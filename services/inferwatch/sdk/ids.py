"""Cheap unique ids for events and predictions.

``uuid4()`` costs several µs per call in CPython; the hot path instead joins a per-process random
prefix (64 bits from ``os.urandom``, fresh after ``fork``) and a counter in hex. Two processes
collide only if their 64-bit prefixes do, and ids stay short (≤ 33 chars, within ``EventId``).
"""

from __future__ import annotations

import itertools
import os


class IdGenerator:
    """Generates ``<16 hex random>-<hex counter>`` ids; ``next_id()`` is thread-safe under the GIL."""

    __slots__ = ("_counter", "_pid", "_prefix")

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._prefix = os.urandom(8).hex() + "-"
        # itertools.count's __next__ is a single C call, hence atomic under the GIL.
        self._counter = itertools.count(1)

    def next_id(self) -> str:
        """A new id, unique within this process and (with overwhelming probability) across processes."""
        return f"{self._prefix}{next(self._counter):x}"

    def check_fork(self) -> None:
        """Draw a new prefix when running in a forked child (else parent and child would repeat ids)."""
        if os.getpid() != self._pid:
            self._reset()
