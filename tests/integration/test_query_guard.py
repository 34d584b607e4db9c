"""Issue #11 §1: the query surface is read-only by construction (embedded chDB, through the real API).

A hostile corpus is generated at test time from the engine's own list of table functions
(``system.table_functions``) and statement kinds, with case, whitespace, comment and nesting
variants; every statement must be refused with HTTP 400 naming what was refused, while a canary
file is never read, a canary port on 127.0.0.1 never gets a connection, no file is created, and the
API answers afterwards. The legitimate queries of docs/sql.md and every saved query still run.
"""

from __future__ import annotations

import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from inferwatch.config import Settings
from inferwatch.store import QueryResult, ReadOnlyViolation, StoreError, open_store
from inferwatch.store.base import Store
from inferwatch.store.saved import list_saved
from inferwatch.store.sqlguard import ALLOWED_TABLE_FUNCTIONS, QuerySettings

pytestmark = pytest.mark.integration

TOKEN = "query-guard-test-token"
ROOT = Path(__file__).resolve().parents[2]


class Canary:
    """A secret file, a listening socket that must never be connected to, and a path never created."""

    def __init__(self, tmp: Path) -> None:
        self.secret = f"CANARY-{uuid.uuid4().hex}"
        self.file = tmp / "canary.txt"
        self.file.write_text(self.secret + "\n")
        self.outfile = tmp / "outfile.tsv"
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)  # the kernel completes a connection into the backlog: accept() sees it
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/canary"

    def connections(self) -> int:
        n = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return n
            conn.close()
            n += 1

    def close(self) -> None:
        self.sock.close()


class Api:
    """``create_app(store)`` served by uvicorn on a free loopback port, in a thread."""

    def __init__(self, store: Store, tmp: Path) -> None:
        import uvicorn

        from inferwatch.api.app import create_app

        app = create_app(store, api_token=TOKEN, settings=Settings(data_dir=tmp, api_token=TOKEN),
                         alerts=False, metrics=False)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}",
                                 headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if self.http.get("/healthz").status_code in (200, 503):
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("the API did not start")

    def query(self, sql: str, **kw: object) -> httpx.Response:
        return self.http.post("/v1/query", json={"sql": sql, "timeout_s": 5, **kw})

    def close(self) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Api, Canary]]:
    tmp = tmp_path_factory.mktemp("guard")
    store = open_store(Settings(clickhouse_url=None, data_dir=tmp))
    store.migrate()
    canary = Canary(tmp)
    api = Api(store, tmp)
    try:
        yield store, api, canary
    finally:
        api.close()
        canary.close()
        store.close()


def _assert_refused(api: Api, canary: Canary, sql: str) -> None:
    r = api.query(sql)
    assert canary.secret not in r.text, f"canary read by {sql!r}"
    assert r.status_code == 400, f"not refused ({r.status_code}): {sql!r}: {r.text[:300]}"
    assert "refused" in r.json()["detail"], r.text


# -- the reproductions -----------------------------------------------------------------
def test_file_table_function_is_refused_everywhere(env: tuple[Store, Api, Canary]) -> None:
    _, api, canary = env
    f = f"file('{canary.file}', 'LineAsString')"
    for sql in (f"SELECT * FROM {f}", f"WITH c AS (SELECT * FROM {f}) SELECT * FROM c",
                f"SELECT (SELECT any(line) FROM {f})", f"SELECT 'x' UNION ALL SELECT * FROM {f}",
                f"DESCRIBE {f}", f"EXPLAIN SELECT * FROM {f}", f"SELECT file('{canary.file}')"):
        _assert_refused(api, canary, sql)
    r = api.query(f"SELECT * FROM {f}")
    assert "file()" in r.json()["detail"]  # the message names what was refused


def test_into_outfile_is_refused_and_creates_nothing(env: tuple[Store, Api, Canary]) -> None:
    _, api, canary = env
    for sql in (f"SELECT 1 INTO OUTFILE '{canary.outfile}' FORMAT TSV",
                f"SELECT 1 INTO OUTFILE '{canary.outfile}' APPEND FORMAT TSV",
                f"SELECT 1 INTO OUTFILE '{canary.outfile}' TRUNCATE",
                f"select 1 into outfile '{canary.outfile}' and stdout"):
        _assert_refused(api, canary, sql)
    assert not canary.outfile.exists()
    assert "INTO OUTFILE" in api.query(f"SELECT 1 INTO OUTFILE '{canary.outfile}'").json()["detail"]


def test_url_is_refused_without_a_connection(env: tuple[Store, Api, Canary]) -> None:
    _, api, canary = env
    t0 = time.monotonic()
    _assert_refused(api, canary, f"SELECT * FROM url('{canary.url}', 'CSV', 'a String')")
    assert time.monotonic() - t0 < 5  # refused at once, not after a 30 s hang
    assert canary.connections() == 0


def test_settings_that_loosen_a_limit_are_refused(env: tuple[Store, Api, Canary]) -> None:
    _, api, canary = env
    for name, value in (("max_execution_time", "0"), ("max_result_rows", "0"), ("max_memory_usage", "0"),
                        ("readonly", "0"), ("max_rows_to_read", "0"), ("limit", "0"),
                        ("result_overflow_mode", "'throw'")):
        r = api.query(f"SELECT count() FROM numbers(10) SETTINGS {name} = {value}")
        assert r.status_code == 400 and name in r.json()["detail"], r.text
    _assert_refused(api, canary, "SET max_execution_time = 0")
    _assert_refused(api, canary, "SELECT 1 FORMAT TSV")


# -- the generated hostile corpus --------------------------------------------------------------
def _table_function_corpus(names: list[str], canary: Canary) -> list[str]:
    out: list[str] = []
    for name in names:
        arg = f"'{canary.file}'" if "file" in name.lower() or name.lower() == "filesystem" else f"'{canary.url}'"
        tf = f"{name}({arg}, 'LineAsString')"
        upper = f"{name.upper()}({arg}, 'LineAsString')"
        if name == "viewIfPermitted":  # takes a query, not arguments
            inner = f"SELECT * FROM file('{canary.file}', 'LineAsString') ELSE null('line String')"
            tf, upper = f"{name}({inner})", f"{name.upper()}({inner})"
        out += [
            f"SELECT * FROM {tf}",
            f"select * from {upper}",
            f"/* hi */ SELECT\n\t*\nFROM -- comment\n  {tf}",
            f"WITH c AS (SELECT * FROM {tf}) SELECT * FROM c",
            f"SELECT (SELECT count() FROM {tf})",
            f"SELECT 1 UNION ALL SELECT * FROM {tf}",
            f"SELECT * FROM numbers(1) AS n JOIN {tf} AS t ON 1 = 1",
            f"SELECT 1 WHERE 1 IN (SELECT * FROM {tf})",
            f"DESCRIBE {tf}",
            f"desc table {tf}",
            f"EXPLAIN PIPELINE SELECT * FROM {tf}",
            f"SELECT * FROM view(SELECT * FROM (SELECT * FROM {tf}))",
        ]
    return out


def _statement_corpus(canary: Canary) -> list[str]:
    f = f"'{canary.file}'"
    out = [
        "INSERT INTO predictions (event_id) VALUES ('x')", "INSERT INTO predictions SELECT * FROM predictions",
        f"INSERT INTO FUNCTION file({f}) SELECT 1", "CREATE TABLE t (a Int8) ENGINE = Memory",
        f"CREATE TABLE t ENGINE = File(TSV, {f}) AS SELECT 1", "CREATE VIEW v AS SELECT 1",
        "CREATE DATABASE d", "CREATE FUNCTION f AS x -> x", "CREATE USER u", "DROP TABLE predictions",
        "DROP DATABASE inferwatch", "ALTER TABLE predictions DELETE WHERE 1", "TRUNCATE TABLE feedback",
        "RENAME TABLE metrics TO m2", "INSERT INTO detections (event_id) VALUES ('x')",
        "ALTER TABLE detections DELETE WHERE 1", "TRUNCATE TABLE detections", "OPTIMIZE TABLE predictions FINAL", "SET readonly = 0", "USE system",
        "SYSTEM FLUSH LOGS", "SYSTEM SHUTDOWN", "KILL QUERY WHERE 1", "GRANT ALL ON *.* TO default",
        "REVOKE SELECT ON *.* FROM default", "ATTACH TABLE x", "DETACH TABLE predictions",
        f"BACKUP TABLE predictions TO File({f})", f"RESTORE TABLE predictions FROM File({f})",
        "EXCHANGE TABLES predictions AND feedback", "CHECK TABLE predictions", "SHOW PROCESSLIST",
        "SHOW GRANTS", "SHOW USERS", "SHOW CREATE TABLE predictions", "EXISTS TABLE predictions",
        "SHOW TABLES FROM INFORMATION_SCHEMA", "SHOW CLUSTERS",
        "SELECT 1; DROP TABLE predictions", f"SELECT 1; SELECT * FROM file({f})",
        "SELECT * FROM system.users", "SELECT * FROM system.processes", "SELECT * FROM system.query_log",
        "SELECT * FROM `system`.`users`", "SELECT 1 WHERE 'x' IN system.users",
        "SELECT * FROM INFORMATION_SCHEMA.tables", "SELECT * FROM default.anything",
        f"SELECT file({f})", f"SELECT length(file({f}))", f"WITH file({f}) AS s SELECT s",
        "SELECT dictGet('d', 'a', 1)", "SELECT joinGet('predictions', 'model', 'x')",
        "SELECT aiGenerate('hello')", "SELECT getServerSetting('path')", "SELECT showCertificate()",
        "SELECT hasColumnInTable('system', 'users', 'name')", "SELECT addressToLine(1)",
        "SELECT filesystemAvailable()", "SELECT generateSerialID('s')", "SELECT nosuchfunction(1)",
        "SELECT 1 FORMAT TSV", "SELECT 1 FORMAT Native", "SELECT 1 SETTINGS max_threads = 1",
        "SELECT * FROM (SELECT 1 SETTINGS max_execution_time = 0)",
        "EXPLAIN SELECT 1 SETTINGS readonly = 0", "EXPLAIN TABLE OVERRIDE mysql('h', 'd', 't', 'u', 'p') PARTITION BY 1",
        "EXPLAIN PLAN max_execution_time = 0 SELECT 1", "DESCRIBE predictions SETTINGS describe_compact_output = 1",
        "DESCRIBE (SELECT 1)", "DESCRIBE system.users", f"DESCRIBE predictions INTO OUTFILE '{canary.outfile}'",
    ]
    return out


def test_hostile_corpus_is_refused(env: tuple[Store, Api, Canary]) -> None:
    store, api, canary = env
    names = [str(r[0]) for r in store.query("SELECT name FROM system.table_functions ORDER BY name",
                                            max_rows=10_000).rows]
    hostile = [n for n in names if n.lower() not in ALLOWED_TABLE_FUNCTIONS]
    assert len(hostile) >= 50 and {"file", "url", "remote", "s3", "executable", "python"} <= set(hostile)
    corpus = _table_function_corpus(hostile, canary) + _statement_corpus(canary)
    assert len(corpus) >= 100
    not_refused = []
    for sql in corpus:
        r = api.query(sql)
        assert canary.secret not in r.text, f"canary read by {sql!r}"
        if r.status_code != 400 or "refused" not in r.json().get("detail", ""):
            not_refused.append((sql, r.status_code, r.text[:200]))
    assert not not_refused, f"{len(not_refused)} of {len(corpus)} not refused: {not_refused[:8]}"
    assert canary.connections() == 0
    assert not canary.outfile.exists()
    assert not list(canary.file.parent.glob("t*.tsv"))
    # The API still answers, and the store was not changed.
    assert api.http.get("/healthz").status_code in (200, 503)
    r = api.query("SELECT count() FROM system.tables WHERE database = currentDatabase()")
    assert r.status_code == 200 and r.json()["rows"][0][0] >= 7


def test_identifier_parameters_are_refused(env: tuple[Store, Api, Canary]) -> None:
    _, api, canary = env
    for sql in ("SELECT * FROM {t:Identifier}", "SELECT 1 WHERE 'x' IN {t:Identifier}",
                "SELECT * FROM {d:Identifier}.{t:Identifier}", "SELECT {t:Identifier} FROM predictions"):
        r = api.query(sql, params={"t": "users", "d": "system"})
        assert r.status_code == 400 and "Identifier" in r.json()["detail"], f"{sql!r}: {r.text[:200]}"


# -- what must still run -----------------------------------------------------------------------
def _doc_queries() -> list[str]:
    text = (ROOT / "docs" / "sql.md").read_text()
    return [q for q in re.findall(r'^inferwatch sql "([^"]+)"', text, re.MULTILINE) if q != "..."]


def test_legitimate_queries_run(env: tuple[Store, Api, Canary]) -> None:
    _, api, _ = env
    docs = _doc_queries()
    assert len(docs) >= 2
    extra = [
        "SHOW TABLES", "SHOW DATABASES", "SHOW COLUMNS FROM predictions", "DESCRIBE predictions",
        "DESC TABLE inferwatch.feedback", "DESCRIBE system.columns", "EXPLAIN SELECT count() FROM predictions",
        "EXPLAIN AST SELECT 1", "EXPLAIN PLAN header = 1 SELECT 1",
        "SELECT name, engine FROM system.tables WHERE database = currentDatabase()",
        "SELECT table, name, type FROM system.columns WHERE database = 'inferwatch' LIMIT 5",
        "SELECT table, sum(rows) AS rows, sum(bytes_on_disk) AS bytes FROM system.parts "
        "WHERE database = currentDatabase() AND active GROUP BY table ORDER BY table",
        "WITH t AS (SELECT number AS n FROM numbers(10)) SELECT sum(n) FROM t",
        "SELECT * FROM values('a UInt8, b String', (1, 'x'), (2, 'y'))",
        "SELECT countIf(error IS NOT NULL), quantiles(0.5, 0.9)(latency_ms) FROM predictions",
        "SELECT model, count() FROM predictions WHERE model IN (SELECT model FROM feedback) GROUP BY model",
        "SELECT p.model, f.label FROM predictions AS p LEFT JOIN feedback AS f USING (prediction_id) LIMIT 3",
        "-- a comment\nSELECT 1 AS one;",
        "SELECT {n:UInt32} + 1 AS x",
    ]
    for sql in docs + extra:
        r = api.query(sql, params={"n": 41} if "{n:" in sql else {})
        assert r.status_code == 200, f"{sql!r}: {r.text[:300]}"
    assert api.query("SELECT {n:UInt32} + 1 AS x", params={"n": 41}).json()["rows"] == [[42]]


def test_every_saved_query_runs_through_the_api(env: tuple[Store, Api, Canary]) -> None:
    _, api, _ = env
    for q in list_saved():
        params = {p.name: (p.default if p.default is not None else "m") for p in q.params}
        r = api.query(q.sql, params=params)
        assert r.status_code == 200, f"{q.name}: {r.text[:300]}"


# -- limits held by the engine -----------------------------------------------------------------
def test_result_is_cut_in_the_engine_not_after(env: tuple[Store, Api, Canary]) -> None:
    store = env[0]
    t0 = time.monotonic()
    tbl = store.query_arrow("SELECT number FROM numbers(1000000000000)", max_rows=5, timeout_s=20)
    # max_rows + 1 rows came out of the engine (the extra one says "truncated"), not a whole block.
    assert tbl.num_rows == 6
    assert time.monotonic() - t0 < 10
    res: QueryResult = store.query("SELECT number FROM numbers(100)", max_rows=5)
    assert [r[0] for r in res.rows] == [0, 1, 2, 3, 4] and res.truncated


def test_timeout_is_enforced_by_the_engine(env: tuple[Store, Api, Canary]) -> None:
    _, api, _ = env
    t0 = time.monotonic()
    r = api.query("SELECT sum(cityHash64(number, r)) FROM numbers(1000000) ARRAY JOIN range(2000) AS r", timeout_s=1)
    assert r.status_code == 422 and "TIMEOUT" in r.text.upper()
    assert time.monotonic() - t0 < 10


def test_rows_read_and_memory_limits_hold(env: tuple[Store, Api, Canary], monkeypatch: pytest.MonkeyPatch) -> None:
    store = env[0]
    # What INFERWATCH_QUERY_MAX_ROWS_TO_READ / _MAX_MEMORY_BYTES set (chDB allows one store per process).
    monkeypatch.setattr(store, "query_options",
                        QuerySettings(query_max_rows_to_read=100_000, query_max_memory_bytes=32 << 20))
    assert store.scalar("SELECT count() FROM numbers(50000)") == 50000
    with pytest.raises(StoreError, match="max_rows_to_read|TOO_MANY_ROWS"):
        store.query("SELECT count() FROM numbers(10000000)")
    with pytest.raises(StoreError, match="MEMORY_LIMIT|memory limit"):
        store.query("SELECT length(groupArray(number)) FROM numbers_mt(90000) ARRAY JOIN range(200) AS r")
    # Trusted maintenance queries (readonly=False) are not bound by the user-query limits.
    assert store.query("SELECT count() FROM numbers(10000000)", readonly=False).rows == [(10_000_000,)]


def test_direct_store_refuses_the_same(env: tuple[Store, Api, Canary]) -> None:
    store, _, canary = env
    with pytest.raises(ReadOnlyViolation, match="file"):
        store.query(f"SELECT * FROM file('{canary.file}', 'LineAsString')")
    with pytest.raises(ReadOnlyViolation, match="one statement"):
        store.query("SELECT 1; SELECT 2")


def test_cli_sql_refuses_and_still_answers(tmp_path: Path) -> None:
    """``inferwatch sql`` on an embedded store it opens itself (its own process: chDB allows one
    store directory per process)."""
    import os
    import subprocess
    import sys

    secret = f"CANARY-{uuid.uuid4().hex}"
    (tmp_path / "canary.txt").write_text(secret)
    env = {**os.environ, "INFERWATCH_DATA_DIR": str(tmp_path / "data"), "INFERWATCH_API_PORT": "1",
           "INFERWATCH_REPO_ROOT": str(ROOT)}
    env.pop("INFERWATCH_CLICKHOUSE_URL", None)
    cli = [sys.executable, "-c", "from inferwatch.cli.main import main; main()"]
    subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True, timeout=120)
    bad = subprocess.run([*cli, "sql", f"SELECT * FROM file('{tmp_path / 'canary.txt'}', 'LineAsString')"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and secret not in bad.stdout + bad.stderr
    assert "file()" in bad.stderr and "refused" in bad.stderr
    ok = subprocess.run([*cli, "sql", "SELECT count() AS n FROM predictions", "--format", "json"],
                        env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and '{"n":0}' in ok.stdout, ok.stderr


def test_a_hostile_saved_query_is_refused_too(env: tuple[Store, Api, Canary], tmp_path: Path) -> None:
    """Saved queries are files anyone with the repository can edit: they pass the same guard."""
    from inferwatch.store.saved import load

    store, _, canary = env
    (tmp_path / "leak.sql").write_text(
        "-- reads a file\n-- @param p String = x  unused\n"
        f"SELECT line FROM file('{canary.file}', 'LineAsString') WHERE {{p:String}} != ''\n")
    q = load("leak", tmp_path)
    with pytest.raises(ReadOnlyViolation, match="file"):
        store.query(q.sql, q.bind({}))
