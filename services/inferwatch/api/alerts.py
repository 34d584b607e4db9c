"""``/v1/alerts`` and ``/v1/silences`` in the main API, over the alerter's own SQLite state.

Decision: the API opens the same SQLite database as the alerter (``<data_dir>/alerter/
state.sqlite``, WAL mode) instead of proxying to the alerter's HTTP port. Reads never depend on
the alerter process being up, silences created here are picked up by the running alerter within
a tick (it re-reads silences), and there is one port fewer to configure. The database is opened
on the first request, so creating the app has no side effect on disk.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from fastapi import APIRouter

from inferwatch.alerter.http import make_router
from inferwatch.alerter.lifecycle.state import AlertStore, state_path


class LazyAlertStore:
    """An :class:`AlertStore` opened on first use (attribute access), once, thread-safely."""

    def __init__(self, data_dir: Path | str) -> None:
        self.path = state_path(data_dir)
        self._store: AlertStore | None = None
        self._lock = threading.Lock()

    def get(self) -> AlertStore:
        """The opened store."""
        with self._lock:
            if self._store is None:
                self._store = AlertStore(self.path)
            return self._store

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


def alerts_router(data_dir: Path | str) -> tuple[APIRouter, LazyAlertStore]:
    """The alerter's router over the deployment's state, and the (lazy) store it reads."""
    store = LazyAlertStore(data_dir)
    return make_router(store), store  # type: ignore[arg-type]  # duck-typed AlertStore
