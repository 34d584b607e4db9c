"""Real stores for the tests: a migrated store of the test's own, on every kind the machine has
(embedded chDB always; a ClickHouse server too when ``INFERWATCH_CLICKHOUSE_URL`` is set)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from inferwatch.config import Settings
from inferwatch.store import Store, open_store

#: The kinds of store a store test runs against (a ``params=`` list for its fixture).
STORES = ["embedded"] + (["server"] if os.environ.get("INFERWATCH_CLICKHOUSE_URL") else [])


@contextmanager
def migrated(settings: Settings) -> Iterator[Store]:
    """The store of ``settings``, migrated, closed on the way out."""
    with open_store(settings) as store:
        store.migrate()
        yield store


@contextmanager
def own_store(kind: str, data_dir: Path) -> Iterator[Store]:
    """A migrated store of kind ``kind`` (one of :data:`STORES`) with a database of its own (a server's
    is dropped afterwards) or, embedded, with its data in ``data_dir``."""
    db = f"iw_{uuid.uuid4().hex[:10]}"
    if kind == "server":
        s = Settings(clickhouse_url=os.environ["INFERWATCH_CLICKHOUSE_URL"], clickhouse_database=db)
    else:
        s = Settings(clickhouse_url=None, data_dir=data_dir, clickhouse_database=db)
    with migrated(s) as store:
        try:
            yield store
        finally:
            if kind == "server":
                store.execute(f"DROP DATABASE IF EXISTS {db}")


def wait_for_count(store: Store, sql: str, at_least: int, timeout_s: float = 60.0) -> int:
    """Poll ``sql`` (a ``SELECT count() …``) until it reaches ``at_least`` or ``timeout_s`` passes; the last count."""
    deadline = time.monotonic() + timeout_s
    while (n := int(store.scalar(sql))) < at_least and time.monotonic() < deadline:
        time.sleep(0.3)
    return n
