"""The query guard remembers the statements it accepted (the console, dashboards and reports send the
same texts every few seconds): same answer, no engine round trip the second time; refusals and
long statements are checked every time; the memory is bounded."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferwatch.config import Settings
from inferwatch.store import open_store
from inferwatch.store import sqlguard as sg
from inferwatch.store.errors import QueryRefused

pytestmark = pytest.mark.integration


def test_accepted_statements_are_remembered_refusals_are_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open_store(Settings(data_dir=tmp_path)) as store:
        store.migrate()
        guard = store.guard
        calls: list[str] = []
        real = guard._engine

        def counting(sql, params=None):  # type: ignore[no-untyped-def]
            calls.append(sql)
            return real(sql, params)

        guard._engine = counting
        q = "SELECT model, count() FROM predictions WHERE model = {m:String} GROUP BY model"
        first = guard.check(q)
        n = len(calls)
        assert n >= 1 and guard.check(q) == first and len(calls) == n  # remembered
        assert store.query(q, {"m": "x"}).rows == []  # and what runs is still the rebuilt statement
        for _ in range(2):
            with pytest.raises(QueryRefused):
                guard.check("SELECT * FROM file('/etc/passwd')")
        assert sum("parseQueryToJSON" in c for c in calls[n:]) == 2  # a refusal is checked each time
        monkeypatch.setattr(sg, "CACHE_MAX_CHARS", 10)
        before = len(calls)
        guard.check("SELECT 1 AS a_long_enough_alias")
        guard.check("SELECT 1 AS a_long_enough_alias")
        assert len(calls) - before >= 2  # over the size bound: not remembered
        monkeypatch.setattr(sg, "CACHE_MAX_CHARS", 16_000)
        monkeypatch.setattr(sg, "CACHE_ENTRIES", 3)
        for i in range(6):
            guard.check(f"SELECT {i} AS n")
        assert len(guard._accepted) == 3 and "SELECT 5 AS n" in guard._accepted and "SELECT 0 AS n" not in guard._accepted
