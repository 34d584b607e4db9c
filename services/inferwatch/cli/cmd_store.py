"""``inferwatch migrate``, ``inferwatch sql`` and ``inferwatch run sink``: the history store from the terminal."""

from __future__ import annotations

import csv
import logging
import signal
import sys
import threading
from typing import Any

import typer

from inferwatch.cli.common import STATE, CliError
from inferwatch.config import Settings

log = logging.getLogger("inferwatch.cli.store")


def _params(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in pairs:
        if "=" not in p:
            raise CliError(f"--param takes name=value, got {p!r}")
        k, v = p.split("=", 1)
        out[k.strip()] = v
    return out


def _print(res: Any, fmt: str) -> None:
    from inferwatch.api.query import _default, jsonable_rows

    rows = jsonable_rows(res.columns, res.types, res.rows)
    if fmt == "json":
        import orjson

        for r in rows:
            sys.stdout.write(orjson.dumps(dict(zip(res.columns, r, strict=True)), default=_default).decode() + "\n")
    elif fmt == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(res.columns)
        w.writerows(rows)
    else:
        from rich.console import Console
        from rich.table import Table

        t = Table(show_lines=False, header_style="bold")
        for c in res.columns:
            t.add_column(c, overflow="fold")
        for r in rows:
            t.add_row(*("∅" if v is None else str(v) for v in r))
        Console().print(t)
    note = f"{len(res.rows)} row(s) in {res.elapsed_s:.3f}s"
    if res.truncated:
        note += f" — truncated at --max-rows {len(res.rows)}; raise it to see more"
    print(note, file=sys.stderr)


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    """Add ``migrate``, ``sql`` and ``run sink``."""

    @app.command("migrate")
    def migrate(
        retention_days: int = typer.Option(None, help="TTL of the history tables in days (env INFERWATCH_RETENTION_DAYS, default 90)."),
        cluster: str = typer.Option(None, help="Apply the cluster DDL ON CLUSTER this name (env INFERWATCH_CLICKHOUSE_CLUSTER)."),
    ) -> None:
        """Create or upgrade the ClickHouse schema (numbered files of schemas/clickhouse/), idempotently."""
        from inferwatch.store import open_store
        from inferwatch.store.migrations import migrate as run_migrations
        from inferwatch.store.settings import StoreSettings

        s = Settings()
        over: dict[str, Any] = {}
        if retention_days is not None:
            over["retention_days"] = retention_days
        if cluster is not None:
            over["clickhouse_cluster"] = cluster
        opts = StoreSettings(**over)
        with open_store(s) as store:
            done = run_migrations(store, opts)
            typer.echo(f"{store.kind} store, database {store.database}: "
                       + (f"applied {', '.join(done)}" if done else "up to date"))

    @app.command("sql")
    def sql(
        query: str = typer.Argument(None, help="One read-only statement (SELECT/WITH/SHOW TABLES/DESCRIBE <table>/EXPLAIN); see docs/sql.md."),
        saved: str = typer.Option(None, "--saved", "-s", help="Run a saved query of schemas/clickhouse/queries/."),
        param: list[str] = typer.Option([], "--param", "-p", help="name=value for {name:Type} parameters; repeatable."),  # noqa: B008 - Typer declares options this way
        list_saved: bool = typer.Option(False, "--list-saved", help="List the saved queries and their parameters."),
        fmt: str = typer.Option("table", "--format", "-f", help="table, csv or json (one object per line)."),
        max_rows: int = typer.Option(1000, "--max-rows", help="Stop after this many rows."),
        timeout_s: float = typer.Option(30.0, "--timeout-s", help="Stop the query after this many seconds."),
    ) -> None:
        """Investigate the history in SQL (read-only). Goes through the sink's API when it owns the embedded store."""
        from inferwatch.store import saved as saved_mod

        if fmt not in ("table", "csv", "json"):
            raise CliError("--format is table, csv or json")
        if list_saved:
            for q in saved_mod.list_saved():
                typer.echo(f"{q.name}: {q.description}")
                for p in q.params:
                    d = "required" if p.default is None else f"default {p.default!r}"
                    typer.echo(f"    --param {p.name}=<{p.type}>  ({d}) {p.help}")
            return
        params = _params(param)
        if saved:
            if query:
                raise CliError("give either a SQL statement or --saved NAME, not both")
            q = saved_mod.load(saved)
            text, params = q.sql, q.bind(params)
        elif query:
            text = query
        else:
            raise CliError("give a SQL statement, --saved NAME, or --list-saved")
        # The query guard runs where the statement runs (the store, or the sink's API): it needs the
        # engine's parser, and a refusal comes back as a clear error naming what was refused.
        res = _run(Settings(), text, params, max_rows, timeout_s)
        _print(res, fmt)

    @run_app.command("sink")
    def run_sink(
        serve: bool = typer.Option(True, help="Serve /v1/query and /healthz on api_host:api_port (embedded store)."),
    ) -> None:
        """Consume every topic into the store; in embedded mode also serve the store over HTTP."""
        from inferwatch.sink import Sink, SinkSettings
        from inferwatch.store import open_store

        s = Settings()
        store = open_store(s)
        store.migrate()
        sink = Sink(s, store, SinkSettings())
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        server = None
        if serve and store.kind == "embedded":
            server = _serve(s, store, sink)
        log.info("sink running: %s store, group %s, topics %s", store.kind, sink.group_id, sorted(sink.schemas))
        try:
            sink.run(stop)
        finally:
            if server is not None:
                server.should_exit = True
            store.close()


def _run(s: Settings, text: str, params: dict[str, str], max_rows: int, timeout_s: float) -> Any:
    """Through the sink's API when it answers (embedded store owned by the sink), else the store itself."""
    from inferwatch.store import open_store
    from inferwatch.store.remote import api_answers, query_http

    if not s.clickhouse_url:
        base = f"http://{s.api_host}:{s.api_port}"
        if api_answers(base):
            if STATE.verbose:
                print(f"query via the sink's API at {base}", file=sys.stderr)
            return query_http(base, text, params, max_rows=max_rows, timeout_s=timeout_s, token=s.api_token)
    with open_store(s) as store:
        if STATE.verbose:
            from inferwatch.redact import redact_dsn

            where = redact_dsn(s.clickhouse_url) or str(s.data_dir / "chdb")
            print(f"query on the {store.kind} store directly ({where})", file=sys.stderr)
        return store.query(text, params, max_rows=max_rows, timeout_s=timeout_s)


def _serve(s: Settings, store: Any, sink: Any) -> Any:
    """Start uvicorn in a daemon thread with /v1/query and /healthz (the sink's health)."""
    import uvicorn

    from inferwatch.api.app import create_app
    from inferwatch.config import check_bind

    check_bind(s.api_host, s.api_token, "sink api")
    app = create_app(store, health_checks={"sink": sink.health.snapshot}, api_token=s.api_token)
    server = uvicorn.Server(uvicorn.Config(app, host=s.api_host, port=s.api_port, log_level="warning"))
    # uvicorn only installs signal handlers when it runs on the main thread; here the sink owns them.
    threading.Thread(target=server.run, name="inferwatch-api", daemon=True).start()
    log.info("serving /v1/query and /healthz on http://%s:%d", s.api_host, s.api_port)
    return server
