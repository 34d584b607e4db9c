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
