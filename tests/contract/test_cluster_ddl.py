"""The cluster DDL (``schemas/clickhouse/cluster/``) describes the same tables as the single-node migrations.

The cluster files repeat every column list by hand (a ``<table>_local`` Replicated*MergeTree per
shard and a Distributed ``<table>`` over it). Nothing here can run them as written: chDB has no
cluster, no ZooKeeper/Keeper and no ``ON CLUSTER``. So the engine checks them after a rewrite that
touches only what a single node cannot do, never a column:

* ``ON CLUSTER '<name>'`` is dropped;
* ``Replicated<X>MergeTree('<zk path>', '<replica>'[, args])`` becomes ``<X>MergeTree([args])`` and
  ``replicated_deduplication_window`` becomes ``non_replicated_deduplication_window``;
* ``ENGINE = Distributed(...)`` (always ``AS <table>_local``) becomes ``ENGINE = Null``: the
  columns still come from the local table, as on a cluster;
* the table function ``cluster('<name>', t)`` (views over every shard) becomes ``t``.

Both schemas are then created in chDB, in two databases, and compared from ``system.columns`` (name,
position, type, default, codec, TTL) and ``system.tables`` (engine family, partition, sorting and
primary keys, TTL): every single-node table must exist in the cluster schema under its own name
(the Distributed table, or the view) and as ``<name>_local``, with the same columns in the same
order. A column added to one file and forgotten in the other fails here.

(Generating one from the other was the alternative; the cluster files differ on purpose — sharding
keys, replicated deduplication, views over local tables — so a generator would be a second language
for those differences. The comparison keeps both files plain SQL and still cannot drift.)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from inferwatch.store.migrations import discover, migrations_dir


def single_node(sql: str) -> str:
    """A cluster statement rewritten for one node (see the module docstring); columns untouched."""
    sql = re.sub(r"\s+ON CLUSTER\s+'[^']*'", "", sql)
    sql = re.sub(r"ENGINE\s*=\s*Replicated(\w*MergeTree)\('[^']*',\s*'[^']*'(?:,\s*([^)]*))?\)",
                 lambda m: f"ENGINE = {m.group(1)}" + (f"({m.group(2)})" if m.group(2) else ""), sql)
    sql = sql.replace("replicated_deduplication_window", "non_replicated_deduplication_window")
    sql = re.sub(r"\bcluster\('[^']*',\s*([\w.]+)\)", r"\1", sql)  # one node: the cluster's table is the table
    return re.sub(r"ENGINE\s*=\s*Distributed\([^;]*\)\s*$", "ENGINE = Null", sql.strip(), flags=re.S)


_PROBE = r"""
import json, sys
from chdb import session
s = session.Session(sys.argv[1])
stmts = json.loads(sys.stdin.read())
for db, sqls in stmts.items():
    s.query(f"CREATE DATABASE IF NOT EXISTS {db}")
    for q in sqls:
        try:
            s.query(q)
        except Exception as exc:
            print(json.dumps({"error": f"{db}: {exc}", "sql": q}))
            sys.exit(0)
cols = s.query("SELECT database, table, name, position, type, default_kind, default_expression, "
               "compression_codec, comment FROM system.columns WHERE database IN ('single', 'cluster') "
               "ORDER BY database, table, position", "JSONCompact")
tabs = s.query("SELECT database, name, engine, partition_key, sorting_key, primary_key, "
               "extract(create_table_query, 'TTL [^\\n]*?(?: SETTINGS|$)') FROM system.tables "
               "WHERE database IN ('single', 'cluster')", "JSONCompact")
print(json.dumps({"columns": json.loads(str(cols))["data"], "tables": json.loads(str(tabs))["data"]}))
"""


def _describe(tmp_path: Path) -> dict[str, object]:
    single = [q for m in discover(migrations_dir(False)) for q in m.statements("single", 30)]
    cluster = [single_node(q) for m in discover(migrations_dir(True)) for q in m.statements("cluster", 30, "c1")]
    # chDB in its own process: it allows one data directory per process and the store tests use theirs
    out = subprocess.run([sys.executable, "-c", _PROBE, str(tmp_path / "chdb")], input=json.dumps(
        {"single": single, "cluster": cluster}), capture_output=True, text=True, timeout=300, check=True)
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert "error" not in doc, doc
    return doc


def test_rewrite_touches_engines_only() -> None:
    q = ("CREATE TABLE IF NOT EXISTS db.t_local ON CLUSTER 'c1'\n(\n    a String\n)\n"
         "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/t_local', '{replica}', ts)\n"
         "ORDER BY a\nSETTINGS replicated_deduplication_window = 10000")
    assert single_node(q) == ("CREATE TABLE IF NOT EXISTS db.t_local\n(\n    a String\n)\nENGINE = ReplacingMergeTree(ts)\n"
                              "ORDER BY a\nSETTINGS non_replicated_deduplication_window = 10000")
    d = "CREATE TABLE IF NOT EXISTS db.t ON CLUSTER 'c1' AS db.t_local\nENGINE = Distributed('c1', 'db', 't_local', cityHash64(a))"
    assert single_node(d) == "CREATE TABLE IF NOT EXISTS db.t AS db.t_local\nENGINE = Null"
    assert "ReplicatedMergeTree" not in single_node("ENGINE = ReplicatedMergeTree('/p', '{replica}')")


def test_cluster_ddl_has_the_single_node_columns_table_by_table(tmp_path: Path) -> None:
    doc = _describe(tmp_path)
    cols: dict[tuple[str, str], list[list[object]]] = {}
    for db, table, *rest in doc["columns"]:  # type: ignore[attr-defined]
        cols.setdefault((db, table), []).append(rest)
    tables = {(db, name): rest for db, name, *rest in doc["tables"]}  # type: ignore[attr-defined]
    single_tables = sorted(t for db, t in tables if db == "single")
    assert {"predictions", "feedback", "metrics", "alerts", "deadletter", "predictions_1m",
            "detections"} <= set(single_tables)
    problems = []
    for t in single_tables:
        want = cols.get(("single", t))
        engine = tables[("single", t)][0]
        # a table has its Distributed twin and a _local one; a view may exist once (the cluster's
        # materialized view writes into the _local table) or over both
        names = (t, f"{t}_local") if engine.endswith("MergeTree") or ("cluster", f"{t}_local") in tables else (t,)
        for name in names:
            if ("cluster", name) not in tables:
                problems.append(f"cluster DDL has no {name}")
                continue
            got = cols.get(("cluster", name))
            if got != want:
                wn = {c[0]: c for c in want or []}
                gn = {c[0]: c for c in got or []}
                diff = sorted(set(wn) ^ set(gn)) or [k for k in wn if wn[k] != gn.get(k)]
                problems.append(f"{name}: columns differ from single-node {t}: {diff}")
        _, *keys = tables[("single", t)]
        if engine.endswith("MergeTree"):
            c_engine, *c_keys = tables[("cluster", f"{t}_local")]
            if c_engine != engine or c_keys != keys:
                problems.append(f"{t}_local: engine/partition/sorting/primary key/TTL {[c_engine, *c_keys]} "
                                f"differ from single-node {[engine, *keys]}")
    assert not problems, "\n".join(problems)


def test_a_forgotten_column_is_caught(tmp_path: Path, monkeypatch: object) -> None:
    """The comparison can fail: drop one column from a cluster table and it says which."""
    import inferwatch.store.migrations as mig

    real = mig.Migration.statements

    def dropped(self: mig.Migration, database: str, retention_days: int, cluster: str | None = None) -> list[str]:
        out = real(self, database, retention_days, cluster)
        if cluster is not None and self.name == "feedback":
            out = [q.replace("    label           Nullable(String),\n", "") for q in out]
        return out

    monkeypatch.setattr(mig.Migration, "statements", dropped)  # type: ignore[attr-defined]
    try:
        test_cluster_ddl_has_the_single_node_columns_table_by_table(tmp_path)
    except AssertionError as exc:
        assert "feedback" in str(exc) and "label" in str(exc)
    else:
        raise AssertionError("a cluster table without the label column went unnoticed")
