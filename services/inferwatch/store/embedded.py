"""Embedded ClickHouse through chDB (chdb-core), the default store when no server URL is set.

Wire format: none — the engine runs in this process. Batches go in as Arrow tables through chDB's
``Python()`` table function (zero-copy reads of the Arrow buffers); results come back as Arrow.

chDB locks its data directory to ONE process. In embedded mode the sink owns it and serves
``/v1/query`` for everyone else. Inside the process, reads from other threads use their own
connections opened with ``readonly=2`` (writes and DDL refused by the engine, limits settable).

A user query (``readonly=True``) is checked by :class:`~inferwatch.store.sqlguard.SqlGuard` on the
engine's own parse of it, and what runs is the statement rebuilt from the checked AST, under the
engine-side limits of :func:`~inferwatch.store.sqlguard.engine_limits` set on its session. chDB's
``readonly`` alone does not make a query safe: measured with this chDB, ``readonly=2`` still lets
``file()``, the ``file()`` function and ``INTO OUTFILE`` through, and ``readonly=1`` stops the
``file()`` table function but neither of the other two (nor ``SET``).
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
from inferwatch.store.sqlguard import QuerySettings, SqlGuard, engine_limits

log = logging.getLogger(__name__)


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


_RESET_LIMITS = "max_result_rows = 0, result_overflow_mode = 'throw', max_execution_time = 0, timeout_overflow_mode = 'throw'"

_GUARD_LIMITS = "limit = 0, max_result_rows = 0, max_rows_to_read = 0, max_execution_time = 30"


def _set_clause(settings: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} = {_quote(v) if isinstance(v, str) else v}" for k, v in settings.items())


def _locked_by_another_process(path: Path) -> bool:
    """Whether another process holds the engine's lock on ``path/status`` (ClickHouse's status file,
    locked with ``flock`` for the server's lifetime). Asked only after a failed open: taking the lock
    here, even for an instant, must never race a healthy start."""
    import fcntl

    status = path / "status"
    if not status.exists():
        return False
    with status.open("rb") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    return False


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
            # chDB's own message for a locked directory varies by version ("Cannot lock file …" on
            # stderr, then only "Error initializing EmbeddedServer"), so ask the lock itself.
            if "lock" in str(exc).lower() or _locked_by_another_process(self.path):
                raise StoreUnavailableError(
                    f"the embedded store {self.path} is owned by another process (the sink?): an "
                    "embedded store has one owner; query it through that process's HTTP API, or run "
                    "several sinks against a ClickHouse server (INFERWATCH_CLICKHOUSE_URL)"
                ) from None
            raise StoreUnavailableError(f"cannot open the embedded store {self.path}: {exc}") from None
        self._rw_lock = threading.Lock()
        self._local = threading.local()
        self._ro_conns: list[Any] = []
        self._ro_lock = threading.Lock()
        self._closed = False
        self._rw.query(f"CREATE DATABASE IF NOT EXISTS {database}")
        self._rw.query(f"USE {database}")
        self.query_options = QuerySettings()
        self.guard = SqlGuard(self._guard_engine, database)

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

    def _guard_engine(self, sql: str, params: Mapping[str, str]) -> list[tuple[Any, ...]]:
        """Runs the guard's internal statements (parse, format, catalogue) on this thread's
        read-only session; the user's statement only ever travels as a parameter value."""
        conn = self._ro()
        try:
            # The previous user query's row limits stay on the session: lift them for these.
            conn.query(f"SET {_GUARD_LIMITS}")
            out = conn.query(sql, "Arrowtable", params=dict(params) or None)
        except Exception as exc:
            raise StoreError(str(exc).strip()) from None
        if not isinstance(out, pa.Table) or out.num_rows == 0:
            return []
        return list(zip(*(c.to_pylist() for c in out.columns), strict=True))

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
        p = {k: (v if isinstance(v, int | float) else str(v)) for k, v in (params or {}).items()}
        t0 = time.perf_counter()
        if readonly:
            # What runs is the statement rebuilt from the checked AST, not the text given.
            sql = self.guard.check(sql)
            limits = _set_clause(engine_limits(max_rows, timeout_s, self.query_options))
            conn = self._ro()
            try:
                # Per-connection session settings: they bound only this thread's queries, and the
                # guard refuses SET statements and SETTINGS clauses, so a query cannot loosen them.
                conn.query(f"SET {limits}")
                out = conn.query(sql, "Arrowtable", params=p or None)
            except Exception as exc:
                msg = str(exc).strip()
                if "READONLY" in msg:
                    raise ReadOnlyViolation(f"read-only: {msg}") from None
                raise StoreError(msg) from None
        else:
            limits = _set_clause(limit_settings(max_rows, timeout_s))
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
            conn = self._ro()
            conn.query("SET limit = 0")  # the query's row limit would cut the column list
            desc = conn.query(f"DESCRIBE TABLE ({sql.strip().rstrip(';')})", "Arrowtable", params=params or None)
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
