"""The sink against the real broker while its real embedded store fails, then comes back.

The store is the real chDB store behind a thin switch that makes every call fail with
:class:`StoreUnavailableError` while the outage lasts (what the store raises when its server or
data directory cannot be reached). The sink must retry with back-off, commit nothing, stay alive,
say so on ``/healthz``, and once the store is back write every event exactly once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import orjson
import pyarrow as pa
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from fastapi.testclient import TestClient

from inferwatch.api.app import create_app
from inferwatch.config import Settings
from inferwatch.sink import Sink, SinkSettings
from inferwatch.store import open_store
from inferwatch.store.base import Columns, Store
from inferwatch.store.errors import StoreUnavailableError

pytestmark = pytest.mark.integration


class SwitchedStore(Store):
    """Delegates to a real store; while ``down`` is set every call fails as an unreachable store does."""

    def __init__(self, real: Store) -> None:
        self.real = real
        self.kind = real.kind
        self.database = real.database
        self.down = threading.Event()
        self.refused = 0

    def _gate(self) -> None:
        if self.down.is_set():
            self.refused += 1
            raise StoreUnavailableError("store unreachable (outage injected by the test)")

    def execute(self, sql: str) -> None:
        self._gate()
        self.real.execute(sql)

    def insert(self, table: str, columns: Columns | pa.Table, dedup_token: str | None = None) -> int:
        self._gate()
        return self.real.insert(table, columns, dedup_token=dedup_token)

    def query_arrow(self, sql: str, params: Mapping[str, Any] | None = None, **kw: Any) -> pa.Table:
        self._gate()
        return self.real.query_arrow(sql, params, **kw)

    def close(self) -> None:
        self.real.close()


def _pred(i: int) -> bytes:
    return orjson.dumps({
        "schema_version": "prediction.v1", "event_id": f"e{i}", "prediction_id": f"p{i}",
        "ts": int(time.time() * 1000), "model": f"m{i % 3}", "model_version": "v1", "latency_ms": 3.0,
        "inputs": {"w": i, "device": "a" if i % 2 else "b"}, "outputs": {"label": "cat"},
    })


def _committed(s: Settings, group: str) -> int:
    c = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": group})
    try:
        offs = c.committed([TopicPartition(s.predictions_topic, p) for p in range(6)], timeout=10)
    finally:
        c.close()
    return sum(max(0, tp.offset) for tp in offs)


def _until(cond: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.2)
    return bool(cond())


def test_store_outage_retries_without_commit_then_writes_everything_once(settings: Settings) -> None:
    n, bad = 3000, [b"{broken", b"[]"]
    p = Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 5})
    for i in range(n):
        p.produce(settings.predictions_topic, key=f"m{i % 3}".encode(), value=_pred(i))
    for v in bad:
        p.produce(settings.predictions_topic, key=b"m0", value=v)
    assert p.flush(30) == 0
    p.close()

    real = open_store(settings)
    real.migrate()
    store = SwitchedStore(real)
    store.down.set()
    group = f"g-outage-{settings.topic_prefix}"
    sink = Sink(settings, store, SinkSettings(group_id=group, batch_rows=1000, batch_ms=200,
                                             retry_initial_s=0.1, retry_max_s=0.5))
    api = TestClient(create_app(health_checks={"sink": sink.health.snapshot}, settings=settings,
                                alerts=False, metrics=False))
    stop = threading.Event()
    t = threading.Thread(target=sink.run, args=(stop,), daemon=True)
    t.start()
    try:
        # Down: the sink keeps retrying with back-off, says so, and commits nothing.
        assert _until(lambda: sink.health.consecutive_failures >= 4, 60), sink.health.snapshot()
        health = api.get("/healthz")
        assert health.status_code == 503
        body = health.json()["checks"]["sink"]
        assert body["ok"] is False and "outage injected" in body["store"]["error"]
        assert t.is_alive()
        assert _committed(settings, group) == 0
        assert sink.health.rows_written.get("predictions", 0) == 0
        refused = store.refused
        time.sleep(1.5)  # back-off is capped at 0.5 s: the sink keeps trying, it does not give up
        assert store.refused > refused and t.is_alive() and _committed(settings, group) == 0

        # Back: everything arrives exactly once and the offsets are committed.
        store.down.clear()
        assert _until(lambda: _committed(settings, group) >= n + len(bad), 90)
        assert api.get("/healthz").status_code == 200
        # The dead letters come back through their topic into the table (while the sink runs).
        assert _until(lambda: real.scalar("SELECT count() FROM deadletter") == len(bad), 60)
    finally:
        stop.set()
        t.join(60)
    assert not t.is_alive()
    total, distinct = real.query("SELECT count(), uniqExact(event_id) FROM predictions").rows[0]
    assert (total, distinct) == (n, n)
    ids = real.query("SELECT event_id FROM predictions", max_rows=2 * n).rows
    assert sorted(r[0] for r in ids) == sorted(f"e{i}" for i in range(n))
    # Dead letters were produced once, before the first insert attempt, not once per retry.
    assert sink.health.dead_letters == len(bad)
    snap = sink.health.snapshot()
    assert snap["ok"] and snap["store"]["consecutive_failures"] == 0 and snap["rows_written"]["predictions"] == n
    real.close()
