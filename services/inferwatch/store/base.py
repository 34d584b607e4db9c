"""The store interface every implementation honours: migrate, insert a columnar batch, query.

An insert carries a deduplication token (``topic-partition-first_offset-last_offset`` from the
sink): repeating an insert with the same token is a no-op, which makes a retried or replayed
batch safe. Queries are read-only by default and bounded in rows and time. The two lookups of the
sink's replay guard (``max_kafka_offset``, ``kafka_events``) are written once here, in SQL both
store kinds run, so no caller writes that SQL itself.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    import pandas as pd

Columns = Mapping[str, "Sequence[Any] | np.ndarray | pa.Array"]
"""A columnar batch: column name -> values (all the same length)."""

DEFAULT_MAX_ROWS = 10_000
DEFAULT_TIMEOUT_S = 30.0


@dataclass
class QueryResult:
    """Rows of a query with their column names; ``truncated`` when ``max_rows`` cut the result."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool = False
    elapsed_s: float = 0.0
    types: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def as_dicts(self) -> list[dict[str, Any]]:
        """The rows as dicts keyed by column name."""
        return [dict(zip(self.columns, r, strict=True)) for r in self.rows]


def to_arrow(columns: Columns | pa.Table) -> pa.Table:
    """A pyarrow Table from a columnar batch (a Table passes through)."""
    if isinstance(columns, pa.Table):
        return columns
    return pa.table({k: (v if isinstance(v, pa.Array | pa.ChunkedArray) else pa.array(v)) for k, v in columns.items()})


def arrow_to_result(tbl: pa.Table, max_rows: int, elapsed_s: float) -> QueryResult:
    """Rows of ``tbl`` (at most ``max_rows``) as a :class:`QueryResult`."""
    truncated = tbl.num_rows > max_rows
    if truncated:
        tbl = tbl.slice(0, max_rows)
    cols = [tbl.column(i).to_pylist() for i in range(tbl.num_columns)]
    rows = list(zip(*cols, strict=True)) if cols else []
    return QueryResult(list(tbl.column_names), rows, truncated, elapsed_s, [str(t) for t in tbl.schema.types])


class Store(abc.ABC):
    """ClickHouse history: one server through clickhouse-connect, or embedded chDB."""

    kind: str = "?"
    database: str

    @abc.abstractmethod
    def execute(self, sql: str) -> None:
        """Run one DDL/DML statement with full rights (migrations, maintenance)."""

    @abc.abstractmethod
    def insert(self, table: str, columns: Columns | pa.Table, dedup_token: str | None = None) -> int:
        """Insert a columnar batch into ``table``; returns the row count sent.

        A repeated insert with the same ``dedup_token`` is dropped by the engine.
        """

    @abc.abstractmethod
    def query_arrow(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        readonly: bool = True,
        max_rows: int = DEFAULT_MAX_ROWS,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> pa.Table:
        """Run ``sql`` (ClickHouse ``{name:Type}`` parameters) and return at most ``max_rows + 1`` rows
        as Arrow (one extra row tells the caller the result was cut)."""

    def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        readonly: bool = True,
        max_rows: int = DEFAULT_MAX_ROWS,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> QueryResult:
        """Run ``sql`` and return its rows (at most ``max_rows``; ``truncated`` says if more existed)."""
        import time

        t0 = time.perf_counter()
        tbl = self.query_arrow(sql, params, readonly=readonly, max_rows=max_rows, timeout_s=timeout_s)
        return arrow_to_result(tbl, max_rows, time.perf_counter() - t0)

    def query_df(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        readonly: bool = True,
        max_rows: int = DEFAULT_MAX_ROWS,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> pd.DataFrame:
        """Run ``sql`` and return a pandas DataFrame of at most ``max_rows`` rows."""
        tbl = self.query_arrow(sql, params, readonly=readonly, max_rows=max_rows, timeout_s=timeout_s)
        return tbl.slice(0, max_rows).to_pandas()

    def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        """The first value of the first row (None when there is no row)."""
        res = self.query(sql, params, max_rows=1)
        return res.rows[0][0] if res.rows else None

    # -- the sink's replay guard (both store kinds run the same SQL) -----------------------------
    def max_kafka_offset(self, table: str, topic: str, partition: int) -> int:
        """The highest ``kafka_offset`` stored in ``table`` for ``topic[partition]``; -1 when none is."""
        res = self.query(
            f"SELECT count(), max(kafka_offset) FROM {_table_name(table)} "
            "WHERE kafka_topic = {t:String} AND kafka_partition = {p:UInt32}",
            {"t": topic, "p": partition},
        )
        count, mx = res.rows[0]
        return int(mx) if count else -1

    def kafka_events(self, table: str, topic: str, partition: int, lo: int, hi: int) -> set[tuple[int, str]]:
        """``(kafka_offset, event_id)`` of the rows stored in ``table`` for ``topic[partition]`` with an
        offset between ``lo`` and ``hi`` (both included); empty when ``hi < lo``."""
        if hi < lo:
            return set()
        # Up to two topics of the same name may have written these offsets (a topic deleted and
        # re-created), and a replay may repeat one: room for several rows per offset.
        limit = 4 * (hi - lo + 1) + 1000
        res = self.query_arrow(
            f"SELECT kafka_offset, event_id FROM {_table_name(table)} WHERE kafka_topic = {{t:String}} "
            "AND kafka_partition = {p:UInt32} AND kafka_offset BETWEEN {lo:UInt64} AND {hi:UInt64}",
            {"t": topic, "p": partition, "lo": lo, "hi": hi}, max_rows=limit,
        )
        return set(zip(res.column("kafka_offset").to_pylist(), res.column("event_id").to_pylist(), strict=True))

    def migrate(self) -> list[str]:
        """Apply the pending migrations of ``schemas/clickhouse/``; returns the names applied."""
        from inferwatch.store.migrations import migrate

        return migrate(self)

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection (and, embedded, the data directory's lock)."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _table_name(table: str) -> str:
    """``table`` when it is a plain identifier (it is put into SQL text, not passed as a parameter)."""
    if not _TABLE_NAME.fullmatch(table):
        raise ValueError(f"table: {table!r} is not a plain table name (letters, digits, underscores)")
    return table


def limit_settings(max_rows: int, timeout_s: float) -> dict[str, Any]:
    """ClickHouse settings bounding a query: rows (one extra row to detect truncation) and time."""
    return {
        "max_result_rows": max_rows + 1,
        # 'break' stops reading once the limit is reached instead of failing the query.
        "result_overflow_mode": "break",
        "max_execution_time": max(1, int(round(timeout_s))),
        "timeout_overflow_mode": "throw",
    }
