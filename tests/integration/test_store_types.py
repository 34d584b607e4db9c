"""Query results keep their ClickHouse types: a DateTime is read back as a time, not a number."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from inferwatch.config import Settings
from inferwatch.store import open_store

pytestmark = pytest.mark.integration


def test_embedded_datetime_columns_come_back_as_timestamps(tmp_path: Path) -> None:
    # Bug: chDB's Arrow output carries DateTime as uint32 seconds, so `inferwatch sql` printed
    # bucket times as 1767261600.
    store = open_store(Settings(data_dir=tmp_path))
    try:
        res = store.query(
            "SELECT toDateTime('2026-01-01 10:00:00', 'UTC') AS t, "
            "toStartOfInterval(toDateTime('2026-01-01 10:07:00', 'UTC'), INTERVAL 10 minute) AS bucket, "
            "toUInt32(5) AS n"
        )
    finally:
        store.close()
    t, bucket, n = res.rows[0]
    assert t == dt.datetime(2026, 1, 1, 10, 0, tzinfo=dt.UTC)
    assert bucket == dt.datetime(2026, 1, 1, 10, 0, tzinfo=dt.UTC)
    assert n == 5 and isinstance(n, int)  # a plain UInt32 stays a number


def test_a_read_write_query_does_not_leave_its_limits_on_the_session(tmp_path: Path) -> None:
    # Bug: query(readonly=False) SET row/time limits session-wide on the read-write connection,
    # so a later long INSERT … SELECT failed with TIMEOUT_EXCEEDED after the query's timeout.
    store = open_store(Settings(data_dir=tmp_path))
    try:
        store.query("SELECT 1", readonly=False, max_rows=5, timeout_s=1)
        store.execute("CREATE TABLE t (n UInt64) ENGINE = MergeTree ORDER BY n")
        store.execute("INSERT INTO t SELECT number FROM numbers(100)")  # more rows than max_rows
        store.execute("INSERT INTO t SELECT sleepEachRow(0.5) + number FROM numbers(4)")  # longer than 1 s
        assert store.scalar("SELECT count() FROM t") == 104
    finally:
        store.close()
