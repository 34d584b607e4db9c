"""The migration files: numbering, placeholders, statement splitting."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferwatch.store.errors import MigrationError
from inferwatch.store.migrations import discover, migrations_dir, split_statements


def test_split_statements_drops_comments_and_keeps_order() -> None:
    text = "-- head\nCREATE TABLE a (x Int8);\n\n-- mid\nCREATE VIEW b AS SELECT ';' AS s;  -- tail\n"
    assert split_statements(text) == ["CREATE TABLE a (x Int8)", "CREATE VIEW b AS SELECT ';' AS s"]


def test_shipped_migrations_are_numbered_and_fully_templated() -> None:
    for cluster in (False, True):
        migs = discover(migrations_dir(cluster))
        assert [m.version for m in migs] == list(range(1, len(migs) + 1))
        for m in migs:
            for stmt in m.statements("db_x", 7, "c1"):
                assert "{database}" not in stmt and "{retention_days}" not in stmt and "{cluster}" not in stmt
                assert "IF NOT EXISTS" in stmt  # re-running a half-applied migration is harmless


def test_cluster_ddl_mirrors_single_node_tables() -> None:
    single = {m.name for m in discover(migrations_dir(False))}
    cluster = {m.name for m in discover(migrations_dir(True))}
    assert single <= cluster


def test_duplicate_versions_are_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 2;")
    with pytest.raises(MigrationError, match="already used"):
        discover(tmp_path)
