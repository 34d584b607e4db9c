"""A ClickHouse server through clickhouse-connect (HTTP interface, Native/Arrow formats).

Selected when ``INFERWATCH_CLICKHOUSE_URL`` is set (``http://host:8123``); user and password come
from ``INFERWATCH_CLICKHOUSE_USER`` / ``INFERWATCH_CLICKHOUSE_PASSWORD``. Read-only queries carry
the server's ``readonly=2`` setting (writes refused by the server, limits still settable).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from inferwatch.redact import mask_secrets, redact_dsn
from inferwatch.store.base import (
    DEFAULT_MAX_ROWS,
    DEFAULT_TIMEOUT_S,
    Columns,
    Store,
    limit_settings,
    to_arrow,
)
from inferwatch.store.errors import ReadOnlyViolation, StoreError, StoreUnavailableError
from inferwatch.store.readonly import check_read_only


class ServerStore(Store):
    """One ClickHouse server (or a cluster's node, with the cluster DDL)."""

    kind = "server"

    def __init__(self, url: str, user: str = "default", password: str = "", database: str = "inferwatch") -> None:
        import clickhouse_connect

        self.url = redact_dsn(url) or ""  # kept for messages: never the password
        self.database = database
        # every error message from here on is masked with these (a password given apart from the URL too)
        self._secrets = [password, urlsplit_password(url)]
        self._lock = threading.Lock()  # clickhouse-connect clients are not safe for concurrent queries
        try:
            boot = clickhouse_connect.get_client(dsn=url, username=user, password=password)
            boot.command(f"CREATE DATABASE IF NOT EXISTS {database}")
            boot.close()
            self._client = clickhouse_connect.get_client(
                dsn=url, username=user, password=password, database=database, autogenerate_session_id=False
            )
        except Exception as exc:
            raise StoreUnavailableError(
                f"ClickHouse at {self.url} unreachable: {mask_secrets(str(exc), self._secrets)}") from None

    def execute(self, sql: str) -> None:
        with self._lock:
            try:
                self._client.command(sql)
            except Exception as exc:
                raise _wrap(exc, self._secrets) from None

    def insert(self, table: str, columns: Columns | pa.Table, dedup_token: str | None = None) -> int:
        tbl = to_arrow(columns)
        if tbl.num_rows == 0:
            return 0
        settings: dict[str, Any] = {"deduplicate_blocks_in_dependent_materialized_views": 1}
        if dedup_token:
            settings["insert_deduplication_token"] = dedup_token
        with self._lock:
            try:
                self._client.insert_arrow(table, tbl, database=self.database, settings=settings)
            except Exception as exc:
                raise _wrap(exc, self._secrets) from None
        return tbl.num_rows

    def query_arrow(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        readonly: bool = True,
        max_rows: int = DEFAULT_MAX_ROWS,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> pa.Table:
        if readonly:
            check_read_only(sql)
        settings: dict[str, Any] = dict(limit_settings(max_rows, timeout_s))
        if readonly:
            settings["readonly"] = 2
        with self._lock:
            try:
                return self._client.query_arrow(sql, parameters=dict(params or {}), settings=settings)
            except Exception as exc:
                err = _wrap(exc, self._secrets)
                if readonly and "READONLY" in str(err):
                    raise ReadOnlyViolation(f"read-only: {err}") from None
                raise err from None

    def close(self) -> None:
        self._client.close()


def _wrap(exc: Exception, secrets: list[str | None]) -> StoreError:
    from clickhouse_connect.driver.exceptions import OperationalError

    msg = mask_secrets(str(exc), secrets)
    if isinstance(exc, OperationalError):
        return StoreUnavailableError(msg)
    return StoreError(msg)


def urlsplit_password(url: str) -> str | None:
    """The password inside ``url`` (None when there is none or the URL does not parse)."""
    from urllib.parse import unquote, urlsplit

    try:
        pw = urlsplit(url).password
    except ValueError:
        return None
    return unquote(pw) if pw else None
