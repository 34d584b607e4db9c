"""Embedded ClickHouse through chDB (chdb-core), the default store when no server URL is set.

Wire format: none — the engine runs in this process. Batches go in as Arrow tables through chDB's
``Python()`` table function (zero-copy reads of the Arrow buffers); results come back as Arrow.

chDB locks its data directory to ONE process. In embedded mode the sink owns it and serves
``/v1/query`` for everyone else. Inside the process, reads from other threads use their own
connections opened with ``readonly=2`` (writes and DDL refused by the engine, limits settable).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

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

log = logging.getLogger(__name__)


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


_RESET_LIMITS = "max_result_rows = 0, result_overflow_mode = 'throw', max_execution_time = 0, timeout_overflow_mode = 'throw'"


class EmbeddedStore(Store):
    """chDB with its data under ``path`` (created if missing)."""

    kind = "embedded"

    def __init__(self, path: Path, database: str = "inferwatch") -> None:
        from chdb.state import sqlitelike

        self._sqlitelike = sqlitelike
        self._tz: str | None = None
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.database = database
        try:
            self._rw = sqlitelike.connect(str(self.path))
        except RuntimeError as exc:
            if "lock" in str(exc).lower():
                raise StoreUnavailableError(
                    f"the embedded store {self.path} is owned by another process (the sink?); "
                    "query it through its HTTP API instead"
                ) from None
            raise StoreUnavailableError(f"cannot open the embedded store {self.path}: {exc}") from None
        self._rw_lock = threading.Lock()
        self._local = threading.local()
        self._ro_conns: list[Any] = []
        self._ro_lock = threading.Lock()
        self._closed = False
        self._rw.query(f"CREATE DATABASE IF NOT EXISTS {database}")
        self._rw.query(f"USE {database}")

    # -- connections ------------------------------------------------------------------------
    def _ro(self) -> Any:
        """This thread's read-only connection (the engine refuses writes on it)."""
        conn = getattr(self._local, "ro", None)
        if conn is None:
            conn = self._sqlitelike.connect(f"{self.path}?readonly=2")
            conn.query(f"USE {self.database}")
            self._local.ro = conn
            with self._ro_lock:
                self._ro_conns.append(conn)
        return conn

    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailableError("the store is closed")

    # -- Store ------------------------------------------------------------------------------
    def execute(self, sql: str) -> None:
        self._check_open()
        with self._rw_lock:
            try:
                self._rw.query(sql)
            except Exception as exc:
                raise StoreError(str(exc).strip()) from None

    def insert(self, table: str, columns: Columns | pa.Table, dedup_token: str | None = None) -> int:
        self._check_open()
        tbl = to_arrow(columns)
        if tbl.num_rows == 0:
            return 0
        names = ", ".join(f"`{c}`" for c in tbl.column_names)
        settings = ["deduplicate_blocks_in_dependent_materialized_views = 1"]
        if dedup_token:
            settings.append(f"insert_deduplication_token = {_quote(dedup_token)}")
        # Python(arrow_tbl) reads the Arrow buffers of the local variable named in the SQL.
        sql = f"INSERT INTO {self.database}.{table} ({names}) SETTINGS {', '.join(settings)} SELECT * FROM Python(tbl)"
        with self._rw_lock:
            try:
                self._rw.query(sql)
            except Exception as exc:
                raise StoreError(f"insert into {table}: {str(exc).strip()}") from None
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
        self._check_open()
        if readonly:
            check_read_only(sql)
        limits = ", ".join(f"{k} = {_quote(v) if isinstance(v, str) else v}"
                           for k, v in limit_settings(max_rows, timeout_s).items())
        p = {k: (v if isinstance(v, int | float) else str(v)) for k, v in (params or {}).items()}
        t0 = time.perf_counter()
        if readonly:
            conn = self._ro()
            try:
                # Per-connection session settings: they bound only this thread's queries.
                conn.query(f"SET {limits}")
                out = conn.query(sql, "Arrowtable", params=p or None)
            except Exception as exc:
                msg = str(exc).strip()
                if "READONLY" in msg:
                    raise ReadOnlyViolation(f"read-only: {msg}") from None
                raise StoreError(msg) from None
        else:
            with self._rw_lock:
                try:
                    self._rw.query(f"SET {limits}")
                    out = self._rw.query(sql, "Arrowtable", params=p or None)
                except Exception as exc:
                    raise StoreError(str(exc).strip()) from None
                finally:
                    # SET is session-wide: without this reset the read-write session kept the
                    # query's row and time limits, and later inserts and DDL (a 10M-row
                    # INSERT … SELECT) failed with TIMEOUT_EXCEEDED after 30 s.
                    with contextlib.suppress(Exception):
                        self._rw.query(f"SET {_RESET_LIMITS}")
        log.debug("query took %.3fs: %s", time.perf_counter() - t0, sql[:200])
        if not isinstance(out, pa.Table):
            return pa.table({})
        return self._fix_datetimes(out, sql, p)

    def _server_tz(self) -> str:
        """The engine's time zone: what a ``DateTime`` without one is in."""
        if self._tz is None:
            try:
                out = self._ro().query("SELECT timezone() AS tz", "Arrowtable")
                self._tz = str(out.column("tz")[0].as_py()) if isinstance(out, pa.Table) and out.num_rows else "UTC"
            except Exception:
                self._tz = "UTC"
        return self._tz or "UTC"

    def _fix_datetimes(self, tbl: pa.Table, sql: str, params: Mapping[str, Any]) -> pa.Table:
        """chDB's Arrow output carries ``DateTime`` as plain uint32 seconds; give such columns back
        their timestamp type (asked of the engine with ``DESCRIBE``), so readers see times."""
        suspects = [i for i, f in enumerate(tbl.schema) if pa.types.is_uint32(f.type)]
        if not suspects:
            return tbl
        try:
            desc = self._ro().query(f"DESCRIBE TABLE ({sql.strip().rstrip(';')})", "Arrowtable", params=params or None)
        except Exception:  # a statement DESCRIBE cannot wrap (SHOW …): leave the numbers as they are
            return tbl
        types = desc.column("type").to_pylist() if isinstance(desc, pa.Table) and desc.num_rows else []
        if len(types) != tbl.num_columns:
            return tbl
        for i in suspects:
            ch = types[i].removeprefix("Nullable(").removeprefix("LowCardinality(")
            if ch.startswith("DateTime(") or ch == "DateTime" or ch.startswith("DateTime)"):
                tz = ch[len("DateTime('"):-2] if ch.startswith("DateTime('") else self._server_tz()
                col = tbl.column(i).cast(pa.int64()).cast(pa.timestamp("s", tz=tz))
                tbl = tbl.set_column(i, tbl.schema.field(i).name, col)
        return tbl

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._ro_lock:
            for c in self._ro_conns:
                with contextlib.suppress(Exception):  # closing is best effort
                    c.close()
            self._ro_conns.clear()
        with self._rw_lock:
            self._rw.close()
