"""A ClickHouse server through clickhouse-connect (HTTP interface, Native/Arrow formats).

Selected when ``INFERWATCH_CLICKHOUSE_URL`` is set (``http://host:8123``); user and password come
from ``INFERWATCH_CLICKHOUSE_USER`` / ``INFERWATCH_CLICKHOUSE_PASSWORD``.

User queries (``readonly=True``) go through the same :class:`~inferwatch.store.sqlguard.SqlGuard`
as the embedded store, parsed by the server itself (``parseQueryToJSON``, ClickHouse 26.8 or
later; an older server refuses every user query with a message saying so), and run as the
statement rebuilt from the checked AST with :func:`~inferwatch.store.sqlguard.engine_limits` and
``readonly=2``. When ``INFERWATCH_CLICKHOUSE_QUERY_PASSWORD`` is set they run as the read-only
query user that ``inferwatch migrate`` creates (settings profile with constraints, SELECT on this
database only; see ``docs/sql.md``), so the server enforces the same limits whatever reaches it.

No ClickHouse server runs where this project is developed: this module is written against the
ClickHouse and clickhouse-connect documentation and is not exercised by the test suite unless
``INFERWATCH_CLICKHOUSE_URL`` points at a server.
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
from inferwatch.store.sqlguard import QuerySettings, SqlGuard, engine_limits


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
        self.query_options = QuerySettings()
        qpw = self.query_options.clickhouse_query_password
        if qpw:
            self._secrets.append(qpw)
        # User queries run as the read-only query user once `inferwatch migrate` created it (and its
        # password is configured); otherwise as the main user with readonly=2, same guard and limits.
        self._query_client = self._client
        if qpw:
            try:
                self._query_client = clickhouse_connect.get_client(
                    dsn=url, username=self.query_options.clickhouse_query_user, password=qpw,
                    database=database, autogenerate_session_id=False)
            except Exception:
                self._query_client = self._client
        self.guard = SqlGuard(self._guard_engine, database)

    def _guard_engine(self, sql: str, params: Mapping[str, str]) -> list[tuple[Any, ...]]:
        """The guard's internal statements (parse, format, catalogue), on the query connection; the
        user's statement only travels as a parameter value."""
        with self._lock:
            try:
                res = self._query_client.query(sql, parameters=dict(params), settings={"readonly": 2})
            except Exception as exc:
                err = _wrap(exc, self._secrets)
                if "UNKNOWN_FUNCTION" in str(err) and "parseQueryToJSON" in str(err):
                    raise ReadOnlyViolation(
                        "refused: this ClickHouse server cannot parse queries for the query guard "
                        "(parseQueryToJSON needs ClickHouse 26.8 or later)") from None
                raise err from None
        return [tuple(r) for r in res.result_rows]

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
        client = self._client
        if readonly:
            sql = self.guard.check(sql)  # what runs is the statement rebuilt from the checked AST
            settings: dict[str, Any] = {**engine_limits(max_rows, timeout_s, self.query_options), "readonly": 2}
            client = self._query_client
        else:
            settings = dict(limit_settings(max_rows, timeout_s))
        with self._lock:
            try:
                return client.query_arrow(sql, parameters=dict(params or {}), settings=settings)
            except Exception as exc:
                err = _wrap(exc, self._secrets)
                if readonly and "READONLY" in str(err):
                    raise ReadOnlyViolation(f"read-only: {err}") from None
                raise err from None

    def close(self) -> None:
        if self._query_client is not self._client:
            self._query_client.close()
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
