"""The read-only guard of `inferwatch sql` and /v1/query."""

from __future__ import annotations

import pytest

from inferwatch.store.errors import ReadOnlyViolation
from inferwatch.store.readonly import check_read_only, first_keyword


@pytest.mark.parametrize("sql", [
    "SELECT 1", "  select 1", "WITH x AS (SELECT 1) SELECT * FROM x", "SHOW TABLES", "DESCRIBE predictions",
    "DESC predictions", "EXPLAIN SELECT 1", "-- note\nSELECT 1", "/* c */ (SELECT 1)", "SELECT ';' AS semi;",
])
def test_reads_are_allowed(sql: str) -> None:
    check_read_only(sql)


@pytest.mark.parametrize("sql", [
    "INSERT INTO predictions VALUES (1)", "DROP TABLE predictions", "ALTER TABLE feedback DELETE WHERE 1",
    "TRUNCATE TABLE metrics", "SET readonly = 0", "OPTIMIZE TABLE predictions", "", "SELECT 1; DROP TABLE x",
    "CREATE TABLE x (a Int8) ENGINE = Memory",
])
def test_writes_are_refused_with_a_clear_message(sql: str) -> None:
    with pytest.raises(ReadOnlyViolation, match="read-only"):
        check_read_only(sql)


def test_first_keyword_skips_comments_and_parens() -> None:
    assert first_keyword("/* a */ -- b\n ((select 1))") == "SELECT"
    assert first_keyword("   ") == ""
