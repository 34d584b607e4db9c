"""``inferwatch demo``: the whole platform against a simulated fleet, narrated in the terminal.

Order: start the stack (Kafka, topics, store, processor, sink + API, alerter, receiver), replay
the fleet through the SDK with progress lines, print each alert as the receiver gets it, wait for
the history to be complete, run the saved SQL investigation of the new camera, say how to keep
exploring, and stop everything it started — also on Ctrl-C, SIGTERM or a failure.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from inferwatch.alerter.notification.webhook_receiver import Received
from inferwatch.demo import expectations as ex
from inferwatch.demo.driver import Progress, SendReport, send_fleet
from inferwatch.demo.fleet import INCIDENT_MODELS, FleetConfig, count_events
from inferwatch.demo.notifications import Inbox, SeenAlert, incident_of, render
from inferwatch.demo.stack import Stack, StackSettings
from inferwatch.store.base import QueryResult


@dataclass
class DemoSettings:
    """How the demo runs. ``wall_s`` is the target wall time of the replay (simulated time is sped up)."""

    data_dir: Path = Path(".inferwatch/demo")
    kafka_bootstrap: str | None = None
    duration_s: int = 1200
    incident_at_s: int = 600
    rate_per_min: int = 600
    label_share: float = 0.5
    wall_s: float = 100.0
    settle_timeout_s: float = 90.0
    keep_running: bool = False
    # The API's (and the console's) bearer token; None: a new random one each run, written to
    # <data_dir>/api-token and printed with the console's URL.
    api_token: str | None = None
    console: Console = field(default_factory=lambda: _console())


def _console() -> Console:
    c = Console(soft_wrap=True)
    if not c.is_terminal:  # piped to a file: do not squeeze the tables into 80 columns
        c = Console(soft_wrap=True, width=140)
    return c


def _bucket_aligned_start(duration_s: int, bucket_ms: int = 600_000) -> int:
    """A simulated start so the replay ends before now and 10-minute buckets split it at the incident."""
    start = int(time.time() * 1000) - duration_s * 1000 - bucket_ms
    return start - start % bucket_ms


def store_counts(stack: Stack, timeout_s: float = 30.0) -> dict[str, tuple[int, int]]:
    """Rows and distinct event ids per model in the ``predictions`` and ``feedback`` tables."""
    from inferwatch.store.remote import query_http

    out: dict[str, tuple[int, int]] = {}
    for table in ("predictions", "feedback"):
        res = query_http(stack.api_url, f"SELECT model, count(), uniqExact(event_id) FROM {table} GROUP BY model",
                         max_rows=1000, timeout_s=timeout_s, token=stack.api_token)
        for model, n, uniq in res.rows:
            out[f"{table}:{model}"] = (int(n), int(uniq))
    return out


def wait_for_history(stack: Stack, rep: SendReport, timeout_s: float) -> dict[str, tuple[int, int]]:
    """Poll the store until it holds every event sent (or ``timeout_s``); return the last counts."""
    want = {f"predictions:{m}": n for m, n in rep.predictions.items()}
    want.update({f"feedback:{m}": n for m, n in rep.feedback.items()})
    deadline = time.monotonic() + timeout_s
    counts: dict[str, tuple[int, int]] = {}
    while time.monotonic() < deadline:
        stack.supervisor.check()
        try:
            counts = store_counts(stack)
        except Exception:  # the API may be busy right after the replay; try again
            counts = {}
        if all(counts.get(k, (0, 0))[0] >= n for k, n in want.items()):
            return counts
        time.sleep(1.0)
    return counts


def investigation(stack: Stack, model: str = "photo-verifier") -> QueryResult:
    """The saved query ``accuracy_by_segment`` for ``model`` in 10-minute buckets, through the API."""
    from inferwatch.store import saved
    from inferwatch.store.remote import query_http

    q = saved.load("accuracy_by_segment")
    params = q.bind({"model": model, "segment_key": "device", "bucket_minutes": "10", "since_hours": "24"})
    return query_http(stack.api_url, q.sql, params, max_rows=1000, timeout_s=60, token=stack.api_token)


_TIME_COLUMNS = {"bucket", "minute", "hour", "day", "ts", "window_start"}


def _cell(column: str, type_: str, v: Any) -> str:
    if v is None:
        return "∅"
    # The embedded store's Arrow output carries ClickHouse DateTime as uint32 seconds; show a time.
    if column in _TIME_COLUMNS and type_.startswith("uint") and isinstance(v, int):
        return datetime.fromtimestamp(v, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return str(v)


def result_table(res: QueryResult, title: str) -> Table:
    """A rich table of a query result."""
    t = Table(title=title, header_style="bold")
    for c in res.columns:
        t.add_column(c)
    for r in res.rows:
        t.add_row(*(_cell(c, ty, v) for c, ty, v in zip(res.columns, res.types, r, strict=True)))
    return t


def _alert_line(a: SeenAlert, text: str) -> str:
    colour = "red" if a.status == "firing" and a.severity == "critical" else (
        "yellow" if a.status == "firing" else "green")
    return f"[bold {colour}]ALERT[/] " + escape(text)


class _Narrator:
    """Prints progress and alerts; the receiver's threads and the main thread share the console."""

    def __init__(self, console: Console, cfg: FleetConfig, baseline_s: int) -> None:
        self.c = console
        self.cfg = cfg
        self.baseline_s = baseline_s
        self.inbox = Inbox()
        self.lock = threading.Lock()
        self.summarised: set[tuple[str, str, str]] = set()

    def say(self, msg: str) -> None:
        with self.lock:
            self.c.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {msg}", highlight=False)

    def on_notification(self, rec: Received) -> None:
        # The first alert of each rule and model, and every critical one, with its summary; the rest
        # of a notification (the same drift seen in more segments) folded into one line.
        folded: dict[tuple[str, str, str], list[SeenAlert]] = {}
        lines: list[str] = []
        new = self.inbox.add(rec)
        incident = incident_of(rec)
        if incident and any(a.status == "firing" for a in new):  # the incident first, its findings below
            lines.append(f"[bold]INCIDENT[/bold] {escape(incident)}")
        for a in new:
            key = (a.model, a.rule, a.status)
            if a.severity == "critical" or key not in self.summarised:
                self.summarised.add(key)
                lines.append(_alert_line(a, render(a)))
            else:
                folded.setdefault(key, []).append(a)
        for (model, rule, status), more in folded.items():
            where = ", ".join(sorted({a.segment or "whole version" for a in more}))
            lines.append(_alert_line(more[0], f"{status.upper():<8} {more[0].severity:<8} {rule:<24} {model}: "
                                               f"{len(more)} more ({where})"))
        with self.lock:
            for line in lines:
                self.c.print(line, highlight=False)

    def phase(self, sim_s: float) -> str:
        if sim_s < self.baseline_s:
            return "warm-up: healthy traffic, the processor pins each version's reference"
        if sim_s < self.cfg.incident_at_s:
            return "healthy traffic, compared with the references"
        return "incidents: new camera (nova-x), feedback loop, prompt template v8, deploy 2.1"

    def on_progress(self, p: Progress) -> None:
        m, s = divmod(int(p.sim_s), 60)
        tm, ts = divmod(int(self.cfg.duration_s), 60)
        n_alerts = len(self.inbox.firing())
        self.say(f"[cyan]sim {m:02d}:{s:02d}/{tm:02d}:{ts:02d}[/] {self.phase(p.sim_s)} | "
                 f"events sent {p.sent:,}/{p.total:,} | alerts so far {n_alerts}")


def run_demo(opts: DemoSettings) -> int:
    """Run the demo; returns the process exit code (0 when every incident was caught and the control stayed quiet)."""
    c = opts.console
    t_start = time.monotonic()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per API call is noise here
    data_dir = opts.data_dir.resolve()
    if data_dir.exists():
        shutil.rmtree(data_dir)  # a fresh store and broker every run: the demo's numbers are its own
    cfg = FleetConfig(start_ms=_bucket_aligned_start(opts.duration_s), duration_s=opts.duration_s,
                      incident_at_s=opts.incident_at_s, rate_per_min=opts.rate_per_min, label_share=opts.label_share)
    total = count_events(cfg)
    speed = cfg.duration_s / opts.wall_s
    from inferwatch.demo.stack import DEMO_PROCESSOR_ENV

    baseline_s = int(DEMO_PROCESSOR_ENV["INFERWATCH_PROCESSOR_BASELINE_S"])
    nar = _Narrator(c, cfg, baseline_s)
    incidents = ", ".join(f"{k.replace('_', ' ')} ({v})" for k, v in INCIDENT_MODELS.items())
    c.rule("[bold]Inferwatch demo[/]")
    c.print(f"Five models, {cfg.duration_s // 60} simulated minutes, {total:,} SDK calls. "
            f"[bold]Simulated time runs ~{speed:.0f}x faster than the clock[/]: events carry simulated "
            f"timestamps and every window, reference and `for:` duration follows them.\n"
            f"At minute {cfg.incident_at_s // 60}: {incidents}; "
            f"fraud-scorer is the healthy control.", highlight=False)
    token = opts.api_token or secrets.token_urlsafe(18)
    token_file = write_token_file(data_dir, token)
    stack = Stack(StackSettings(data_dir=data_dir, kafka_bootstrap=opts.kafka_bootstrap,
                                on_notification=nar.on_notification, api_token=token))
    stop_flag = threading.Event()
    prev = _install_sigterm(stop_flag)
    code = 1
    try:
        stack.start(say=nar.say)
        nar.say(console_hint(stack.console_url, token, token_file))
        nar.say(f"replaying the fleet through the SDK (target ~{opts.wall_s:.0f} s wall)")
        rep = send_fleet(stack.settings, cfg, total, speed=speed, on_progress=nar.on_progress,  # type: ignore[arg-type]
                         spool_dir=data_dir / "spool", should_stop=stop_flag.is_set)
        if stop_flag.is_set():
            raise KeyboardInterrupt
        nar.say(f"fleet done: {rep.total:,} events in {rep.wall_s:.0f} s; waiting for the last windows, "
                "alerts and the history to settle")
        _wait_for_alerts(nar.inbox, stack, opts.settle_timeout_s, stop_flag)
        counts = wait_for_history(stack, rep, opts.settle_timeout_s)
        code = _summary(c, nar.inbox, rep, counts)
        res = investigation(stack)
        c.print(result_table(res, "accuracy_by_segment — photo-verifier by device, 10-minute buckets"))
        c.print("The saved query shows accuracy falling only for [bold]device=nova-x[/] after the new camera appears.",
                highlight=False)
        _explore_hints(c, stack, data_dir, token_file)
        if opts.keep_running:
            c.print(f"[bold]Services keep running[/] (API {stack.api_url}); Ctrl-C stops everything.")
            c.print(console_hint(stack.console_url, token, token_file), highlight=False, markup=False)
            while not stop_flag.is_set():
                stack.supervisor.check()
                time.sleep(1)
    except KeyboardInterrupt:
        c.print("\n[yellow]interrupted: stopping everything the demo started[/]")
        code = 130
    except Exception as exc:
        c.print(f"[red]demo failed:[/] {exc}", highlight=False)
        c.print(f"service logs: {stack.log_dir}")
        code = 1
    finally:
        nar.say("stopping processor, sink, alerter, receiver and Kafka")
        stack.stop()
        signal.signal(signal.SIGTERM, prev)
        c.print(f"demo finished in {time.monotonic() - t_start:.0f} s wall (exit code {code})")
    return code


def _install_sigterm(flag: threading.Event) -> Any:
    def handler(signum: int, frame: FrameType | None) -> None:
        flag.set()
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def _wait_for_alerts(inbox: Inbox, stack: Stack, timeout_s: float, stop: threading.Event) -> None:
    """Until every expected incident alerted, then a few quiet seconds for stragglers; bounded."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not stop.is_set():
        stack.supervisor.check()
        if all(v.caught for v in ex.judge_all(inbox.firing())):
            time.sleep(min(8.0, max(0.0, deadline - time.monotonic())))
            return
        time.sleep(0.5)


def _summary(c: Console, inbox: Inbox, rep: SendReport, counts: dict[str, tuple[int, int]]) -> int:
    firing = inbox.firing()
    t = Table(title="What the platform caught", header_style="bold")
    for col in ("incident", "model", "caught", "rules fired", "segment named first"):
        t.add_column(col)
    ok = True
    for v in ex.judge_all(firing):
        ok = ok and v.caught
        t.add_row(v.expectation.incident, v.expectation.model, "yes" if v.caught else f"NO: {v.reason}",
                  ", ".join(v.rules_fired) or "-", v.first_segment or "whole version")
    ctrl = ex.control_alerts(firing)
    ok = ok and not ctrl
    t.add_row("control (healthy)", "fraud-scorer", "no alerts (good)" if not ctrl else f"NO: {len(ctrl)} alerts",
              ", ".join(sorted({a.rule for a in ctrl})) or "-", "-")
    c.print(t)
    sent = rep.total
    stored = sum(n for n, _ in counts.values())
    uniq = sum(u for _, u in counts.values())
    complete = stored == sent == uniq
    ok = ok and complete
    c.print(f"history: {sent:,} events sent, {stored:,} rows stored ({uniq:,} distinct event ids) — "
            + ("complete" if complete else "INCOMPLETE"), highlight=False)
    if inbox.bad_signatures:
        c.print(f"[red]{inbox.bad_signatures} notifications failed signature verification[/]")
        ok = False
    return 0 if ok else 2


TOKEN_FILE = "api-token"
"""The file in the demo's data directory that holds its API token."""


def write_token_file(data_dir: Path, token: str) -> Path:
    """Write ``token`` to ``<data_dir>/api-token``, readable by its owner only; returns the path."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / TOKEN_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return path


def console_hint(console_url: str, token: str, token_file: Path) -> str:
    """The line that tells how to open the web console: its URL and the token its login page asks for."""
    return (f"web console: {console_url} — log in with the token {token} (also in {token_file}; "
            f"HTTP clients send it as 'Authorization: Bearer <token>')")


def _explore_hints(c: Console, stack: Stack, data_dir: Path, token_file: Path) -> None:
    env = f"INFERWATCH_DATA_DIR={data_dir}"
    c.rule("keep exploring")
    c.print(
        "The demo's history stays in its data directory after it stops; query it with:\n"
        f"  {env} inferwatch sql --saved accuracy_by_segment --param model=photo-verifier --param bucket_minutes=10\n"
        f"  {env} inferwatch sql \"SELECT model, model_version, count(), avg(latency_ms) FROM predictions GROUP BY ALL\"\n"
        f"  {env} inferwatch sql --list-saved\n"
        f"  {env} inferwatch alerts list\n"
        f"While it runs (`inferwatch demo --keep-running`) the web console is at {stack.console_url} and the "
        f"HTTP API at {stack.api_url} ({stack.api_url}/docs, /v1/alerts, /metrics), both behind the token in "
        f"{token_file} (CLI commands read it with INFERWATCH_API_TOKEN_FILE={token_file}). "
        f"Service logs: {stack.log_dir}",
        highlight=False, markup=False)


def main(argv: list[str] | None = None, on_exit: Callable[[int], None] = sys.exit) -> None:
    """``python -m inferwatch.demo.runner``: the demo with default options."""
    on_exit(run_demo(DemoSettings()))


if __name__ == "__main__":
    main()
