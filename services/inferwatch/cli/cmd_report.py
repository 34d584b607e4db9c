"""``inferwatch report``: a model's history over a time range as one self-contained HTML file."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import typer

from inferwatch.cli.common import STATE, CliError
from inferwatch.config import Settings


@contextlib.contextmanager
def query_runner(s: Settings, timeout_s: float) -> Iterator[Any]:
    """A read-only query function on the history, reached the way ``inferwatch sql`` reaches it:
    the sink's ``POST /v1/query`` when the sink answers (it owns the embedded store), else the store
    itself. Either way every statement goes through the store's query guard."""
    from inferwatch.report.build import MAX_ROWS
    from inferwatch.store import open_store
    from inferwatch.store.remote import api_answers, query_http

    if not s.clickhouse_url:
        base = f"http://{s.api_host}:{s.api_port}"
        if api_answers(base):
            if STATE.verbose:
                print(f"queries via the sink's API at {base}", file=sys.stderr)

            def run_http(sql: str, params: Mapping[str, Any]) -> Any:
                return query_http(base, sql, params, max_rows=MAX_ROWS, timeout_s=timeout_s, token=s.api_token)

            yield run_http
            return
    with open_store(s) as store:
        def run_store(sql: str, params: Mapping[str, Any]) -> Any:
            return store.query(sql, params, readonly=True, max_rows=MAX_ROWS, timeout_s=timeout_s)

        yield run_store


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    """Add ``report``."""

    @app.command("report")
    def report(
        model: str = typer.Option(..., "--model", "-m", help="The model to report on."),
        version: str = typer.Option(None, "--version", help="One version only (default: every version in the range)."),
        from_: str = typer.Option(None, "--from", help="Start: ISO 8601 time, 'now', or a duration before --to (24h, 7d). Default: 24h before --to."),
        to: str = typer.Option(None, "--to", help="End: ISO 8601 time, 'now', or a duration before now. Default: now."),
        output: Path = typer.Option(Path("report.html"), "--output", "-o", help="Where to write the HTML file."),  # noqa: B008 - Typer declares options this way
        timeout_s: float = typer.Option(60.0, "--timeout-s", help="Stop any one query after this many seconds."),
    ) -> None:
        """Write one self-contained HTML report (alerts and incidents, drift per feature and segment,
        performance by segment, LLM signals) from the stored history. Opens from disk, offline."""
        from inferwatch.report import TimeSpecError, build_report, resolve_range

        try:
            start, end = resolve_range(from_, to)
        except TimeSpecError as exc:
            raise CliError(str(exc)) from None
        t0 = time.perf_counter()
        with query_runner(Settings(), timeout_s) as run:
            page = build_report(run, model, version, start, end)
        try:
            output.write_text(page, encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot write {output}: {exc.strerror or exc}") from None
        typer.echo(f"wrote {output} ({len(page.encode()) / 1024:.0f} KiB) for {model} "
                   f"{start:%Y-%m-%d %H:%M}Z – {end:%Y-%m-%d %H:%M}Z in {time.perf_counter() - t0:.2f} s")
