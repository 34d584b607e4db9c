"""The history store: ClickHouse through clickhouse-connect, or embedded chDB (the default).

>>> from inferwatch.store import open_store
>>> store = open_store(settings)       # server if settings.clickhouse_url, else chDB in data_dir/chdb
>>> store.migrate()
>>> store.insert("predictions", arrow_table, dedup_token="inferwatch.predictions-0-100-199")
>>> store.query("SELECT count() FROM predictions").rows
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from inferwatch.store.base import QueryResult, Store
from inferwatch.store.errors import MigrationError, ReadOnlyViolation, StoreError, StoreUnavailableError

if TYPE_CHECKING:
    from inferwatch.config import Settings

__all__ = [
    "MigrationError",
    "QueryResult",
    "ReadOnlyViolation",
    "Store",
    "StoreError",
    "StoreUnavailableError",
    "open_store",
]


def open_store(settings: Settings) -> Store:
    """The store the settings name: a ClickHouse server if ``clickhouse_url`` is set, else embedded chDB
    under ``data_dir / "chdb"``."""
    if settings.clickhouse_url:
        from inferwatch.store.server import ServerStore

        return ServerStore(
            settings.clickhouse_url,
            settings.clickhouse_user,
            settings.clickhouse_password,
            settings.clickhouse_database,
        )
    from inferwatch.store.embedded import EmbeddedStore

    return EmbeddedStore(settings.data_dir / "chdb", settings.clickhouse_database)
