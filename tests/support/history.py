"""A stored fleet history (the demo fleet's incidents, real shapes) shared by the report's and the
Grafana dashboards' tests: built once per session into a closed embedded store, opened by each test."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from inferwatch.config import Settings
from inferwatch.demo.fleet import FleetConfig
from inferwatch.store import Store, open_store
from inferwatch.testing.history import load_fleet_history

START = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
END = START + dt.timedelta(hours=1)
CFG = FleetConfig(start_ms=int(START.timestamp() * 1000), duration_s=1200, incident_at_s=600, rate_per_min=300)
MODELS = ("photo-verifier", "home-recommender", "essay-grader", "checkout-ranker", "fraud-scorer")
_BUILT: dict[str, Path] = {}


@pytest.fixture(scope="session")
def history_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir whose embedded store holds 20 simulated minutes of the demo fleet (closed: the
    test opens it, or a CLI subprocess does)."""
    if "dir" not in _BUILT:
        d = tmp_path_factory.mktemp("fleet-history")
        store = open_store(Settings(data_dir=d))
        try:
            load_fleet_history(store, CFG, window_s=120)
        finally:
            store.close()
        _BUILT["dir"] = d
    return _BUILT["dir"]


@contextmanager
def opened(data_dir: Path) -> Iterator[Store]:
    """The history's store, open for the duration of the block."""
    store = open_store(Settings(data_dir=data_dir))
    try:
        yield store
    finally:
        store.close()
