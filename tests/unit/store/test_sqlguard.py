"""Pure parts of the query guard: the function catalogue's verdicts, the engine limits, the server's
read-only profile/role/user DDL. The tree walk itself is tested on the real engine's parse in
tests/integration/test_query_guard.py."""

from __future__ import annotations

import pytest

from inferwatch.store.migrations import query_access_statements
from inferwatch.store.sqlguard import (
    PROTECTED_SETTINGS,
    FunctionCatalog,
    QuerySettings,
    engine_limits,
    escape_param,
)

ROWS = [
    # name, origin, alias_to, is_aggregate, case_insensitive, categories
    ("count", "System", "", 1, 1, ""),
    ("quantilesTDigest", "System", "", 1, 0, ""),
    ("plus", "System", "", 0, 0, "Arithmetic"),
    ("lower", "System", "", 0, 1, "String"),
    ("file", "System", "", 0, 0, "Other"),
    ("dictGet", "System", "", 0, 0, "Dictionary"),
    ("aiGenerate", "System", "", 0, 0, "AI"),
    ("AIGenerate", "System", "aiGenerate", 0, 0, ""),
    ("joinGet", "System", "", 0, 0, "Other"),
    ("myUdf", "SQLUserDefined", "", 0, 0, ""),
]
COMBINATORS = ["If", "Merge", "State", "Array", "OrNull"]


@pytest.fixture
def catalog() -> FunctionCatalog:
    return FunctionCatalog.from_rows(ROWS, COMBINATORS)


@pytest.mark.parametrize("name", ["count", "COUNT", "plus", "LOWER", "countIf", "quantilesTDigestMerge",
                                  "countArrayIf", "lambda", "tuple"])
def test_ordinary_functions_are_allowed(catalog: FunctionCatalog, name: str) -> None:
    assert catalog.refusal(name) is None


@pytest.mark.parametrize(("name", "why"), [
    ("file", "reads files"), ("FILE", "reads files"), ("dictGet", "Dictionary"), ("aiGenerate", "AI"),
    ("AIGenerate", "AI"), ("joinGet", "reads"), ("myUdf", "user-defined"), ("nosuch", "unknown"),
    ("plusIf", "unknown"),  # combinators only apply to aggregate functions
])
def test_functions_reading_outside_the_query_are_refused(catalog: FunctionCatalog, name: str, why: str) -> None:
    reason = catalog.refusal(name)
    assert reason is not None and why in reason


def test_engine_limits_bound_every_protected_setting() -> None:
    lim = engine_limits(10, 2.4, QuerySettings(query_max_memory_bytes=1 << 30, query_max_rows_to_read=5000))
    assert set(PROTECTED_SETTINGS) - {"readonly"} <= set(lim)
    assert lim["limit"] == lim["max_result_rows"] == 11
    assert lim["result_overflow_mode"] == "break" and lim["max_execution_time"] == 2
    assert lim["max_memory_usage"] == 1 << 30 and lim["max_rows_to_read"] == 5000
    assert engine_limits(1, 0.1)["max_execution_time"] == 1  # never 0, which means "no limit"


def test_query_options_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERWATCH_QUERY_MAX_MEMORY_BYTES", str(64 << 20))
    monkeypatch.setenv("INFERWATCH_QUERY_MAX_ROWS_TO_READ", "123")
    o = QuerySettings()
    assert (o.query_max_memory_bytes, o.query_max_rows_to_read) == (64 << 20, 123)
    monkeypatch.setenv("INFERWATCH_CLICKHOUSE_QUERY_USER", "x; DROP")
    with pytest.raises(ValueError, match="clickhouse_query_user"):
        QuerySettings()


def test_escape_param_round_trips_control_characters() -> None:
    assert escape_param("a\tb\nc\\d\re") == "a\\tb\\nc\\\\d\\re"


def test_server_profile_pins_the_limits_and_the_user_is_made_only_with_a_password() -> None:
    stmts = query_access_statements("iw", QuerySettings(query_max_memory_bytes=1 << 30, query_max_rows_to_read=99))
    profile = stmts[0]
    assert profile.startswith("CREATE SETTINGS PROFILE OR REPLACE inferwatch_query_profile")
    for pinned in ("readonly = 2 CONST", "max_memory_usage = 1073741824 MIN 1 MAX 1073741824",
                   "max_rows_to_read = 99 MIN 1 MAX 99", "result_overflow_mode = 'break' CONST",
                   "max_execution_time = 30 MIN 1 MAX 600", "allow_ddl = 0 CONST"):
        assert pinned in profile
    assert "GRANT SELECT ON iw.* TO inferwatch_query_role" in stmts
    assert not any("USER" in s for s in stmts)  # no password configured: no user
    with_user = query_access_statements("iw", QuerySettings(clickhouse_query_password="p'w\\"), "c1")
    users = [s for s in with_user if "USER" in s]
    assert users and all("ON CLUSTER 'c1'" in s for s in with_user)
    assert "BY 'p\\'w\\\\'" in users[0] and "SETTINGS PROFILE 'inferwatch_query_profile'" in users[0]
