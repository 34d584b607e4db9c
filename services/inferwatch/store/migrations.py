"""Numbered SQL migrations (``schemas/clickhouse/NNNN_name.sql``) applied in order, once each.

A file may hold several statements, each ending with ``;`` at the end of a line. Placeholders:
``{database}``, ``{retention_days}`` and, in ``cluster/``, ``{cluster}``. Applied versions are
recorded in ``{database}.schema_migrations``; every statement is also written with ``IF NOT
EXISTS`` so that a migration interrupted half-way can simply be run again.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from inferwatch.paths import schemas_dir
from inferwatch.store.errors import MigrationError
from inferwatch.store.settings import StoreSettings
from inferwatch.store.sqlguard import MAX_ROWS_CAP, MAX_TIMEOUT_S, QuerySettings

if TYPE_CHECKING:
    from inferwatch.store.base import Store

log = logging.getLogger(__name__)

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_STATEMENT_END = re.compile(r";[ \t]*(?:--[^\n]*)?$", re.MULTILINE)


@dataclass(frozen=True)
class Migration:
    """One numbered migration file."""

    version: int
    name: str
    path: Path

    def statements(self, database: str, retention_days: int, cluster: str | None = None) -> list[str]:
        """The file's statements with placeholders filled in."""
        text = self.path.read_text()
        text = text.replace("{database}", database).replace("{retention_days}", str(int(retention_days)))
        if cluster is not None:
            text = text.replace("{cluster}", cluster)
        return split_statements(text)

    def checksum(self) -> str:
        """SHA-256 of the file, recorded so that an edited applied migration is noticed."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]


def split_statements(text: str) -> list[str]:
    """Statements of a SQL file, each ending at a ``;`` at the end of a line; comment-only parts dropped."""
    out = []
    for part in _STATEMENT_END.split(text):
        body = "\n".join(line for line in part.splitlines() if not line.strip().startswith("--")).strip()
        if body:
            out.append(body)
    return out


def migrations_dir(cluster: bool = False) -> Path:
    """``schemas/clickhouse`` or, for a cluster, ``schemas/clickhouse/cluster``."""
    d = schemas_dir() / "clickhouse"
    return d / "cluster" if cluster else d


def discover(directory: Path) -> list[Migration]:
    """The migrations of ``directory`` in version order; duplicate versions are an error."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        m = _FILE.match(path.name)
        if not m:
            raise MigrationError(f"{path}: migration files are named NNNN_name.sql")
        v = int(m.group(1))
        if v in found:
            raise MigrationError(f"{path}: version {v} already used by {found[v].path.name}")
        found[v] = Migration(v, m.group(2), path)
    return [found[v] for v in sorted(found)]


def migrate(store: Store, options: StoreSettings | None = None, directory: Path | None = None) -> list[str]:
    """Apply the migrations not yet recorded in ``schema_migrations``; returns the file names applied."""
    options = options or StoreSettings()
    cluster = options.clickhouse_cluster
    directory = directory or migrations_dir(cluster=cluster is not None)
    db = store.database
    on_cluster = f" ON CLUSTER '{cluster}'" if cluster else ""
    store.execute(f"CREATE DATABASE IF NOT EXISTS {db}{on_cluster}")
    engine = (
        f"ReplicatedMergeTree('/clickhouse/tables/{{shard}}/{db}/schema_migrations', '{{replica}}')"
        if cluster else "MergeTree"
    )
    store.execute(
        f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations{on_cluster} "
        "(version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        f"ENGINE = {engine} ORDER BY version"
    )
    res = store.query(f"SELECT version, checksum FROM {db}.schema_migrations", readonly=False, max_rows=100_000)
    applied = {int(v): c for v, c in res.rows}
    done: list[str] = []
    for mig in discover(directory):
        if mig.version in applied:
            if applied[mig.version] != mig.checksum():
                log.warning("migration %s was edited after it was applied (checksum differs)", mig.path.name)
            continue
        for stmt in mig.statements(db, options.retention_days, cluster):
            try:
                store.execute(stmt)
            except Exception as exc:
                raise MigrationError(f"{mig.path.name}: {exc}\n--- statement ---\n{stmt}") from exc
        store.insert(
            "schema_migrations",
            {"version": [mig.version], "name": [mig.name], "checksum": [mig.checksum()]},
            dedup_token=f"migration-{mig.version}",
        )
        log.info("applied migration %s", mig.path.name)
        done.append(mig.path.name)
    if store.kind == "server":
        for stmt in query_access_statements(db, QuerySettings(), cluster):
            try:
                store.execute(stmt)
            except Exception as exc:
                # Never the statement itself: CREATE/ALTER USER carries the password.
                raise MigrationError(f"read-only query profile/role/user: {exc}") from exc
        log.info("read-only query settings profile and role in place (user: %s)",
                 "yes" if QuerySettings().clickhouse_query_password else "no query password set")
    return done


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def query_access_statements(database: str, options: QuerySettings, cluster: str | None = None) -> list[str]:
    """ClickHouse server only: the read-only settings profile, role and user user queries run as.

    The profile pins ``readonly = 2`` and bounds every limit the query path sets (MIN 1 so that 0,
    "no limit", is refused too; the overflow modes are CONST); the role may SELECT from this
    database only (system tables stay readable, filtered by the server to what the role may see);
    the user (created only when ``INFERWATCH_CLICKHOUSE_QUERY_PASSWORD`` is set) has the profile
    and the role and nothing else. Re-running refreshes the profile and the password.
    """
    user = options.clickhouse_query_user
    profile, role = f"{user}_profile", f"{user}_role"
    on = f" ON CLUSTER '{cluster}'" if cluster else ""
    mem, rows_read = options.query_max_memory_bytes, options.query_max_rows_to_read
    out = [
        f"CREATE SETTINGS PROFILE OR REPLACE {profile}{on} SETTINGS "
        "readonly = 2 CONST, "
        f"limit = 10001 MIN 1 MAX {MAX_ROWS_CAP + 1}, "
        f"max_result_rows = 10001 MIN 1 MAX {MAX_ROWS_CAP + 1}, "
        "result_overflow_mode = 'break' CONST, "
        f"max_execution_time = 30 MIN 1 MAX {int(MAX_TIMEOUT_S)}, "
        "timeout_overflow_mode = 'throw' CONST, "
        f"max_rows_to_read = {rows_read} MIN 1 MAX {rows_read}, "
        "read_overflow_mode = 'throw' CONST, "
        f"max_memory_usage = {mem} MIN 1 MAX {mem}, "
        "allow_ddl = 0 CONST, allow_introspection_functions = 0 CONST",
        f"CREATE ROLE IF NOT EXISTS {role}{on}",
        f"GRANT{on} SELECT ON {database}.* TO {role}",
    ]
    pw = options.clickhouse_query_password
    if pw:
        out += [
            f"CREATE USER IF NOT EXISTS {user}{on} IDENTIFIED WITH sha256_password BY {_sql_string(pw)} "
            f"DEFAULT DATABASE {database} SETTINGS PROFILE '{profile}'",
            f"ALTER USER {user}{on} IDENTIFIED WITH sha256_password BY {_sql_string(pw)} "
            f"DEFAULT DATABASE {database} SETTINGS PROFILE '{profile}'",
            f"GRANT{on} {role} TO {user}",
            f"ALTER USER {user}{on} DEFAULT ROLE {role}",
        ]
    return out
