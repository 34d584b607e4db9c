"""Fixtures of the integration tests beyond the session broker of ``tests/conftest.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from inferwatch.infra.kafka_native import NativeKafka
from inferwatch.store import Store
from tests.support.store import STORES, own_store


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated store of the test's own, once per kind of store the machine has (see
    :data:`tests.support.store.STORES`)."""
    with own_store(request.param, tmp_path) as st:
        yield st


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[NativeKafka]:
    """A native broker of the test's own, for tests that stop and start it (the session's broker
    is never stopped)."""
    broker = NativeKafka.on_free_ports(tmp_path / "kafka")
    broker.start(timeout_s=120)  # more than start()'s default: the machine may be busy
    try:
        yield broker
    finally:
        broker.stop()
