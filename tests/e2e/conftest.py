"""One run of the demo's fleet through the whole platform, shared by the e2e tests of this folder.

The fleet replay takes about two minutes of the suite (start, ~45 s of replay, alerts and history
settling), so it runs once per session: :func:`fleet_run` starts the stack (real broker, processor,
sink + API, alerter, a verifying webhook receiver in this process), replays the shortened fleet,
waits for every expected incident and the complete history, and records what the fleet test
asserts on *before* any other test touches the stack (the browser test silences an alert). The
stack stays up, behind a bearer token, until the last test of the folder is done.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from inferwatch.demo import expectations as ex
from inferwatch.demo.driver import SendReport, send_fleet
from inferwatch.demo.fleet import FleetConfig, count_events
from inferwatch.demo.notifications import Inbox, SeenAlert
from inferwatch.demo.runner import investigation, store_counts, wait_for_history
from inferwatch.demo.stack import Stack, StackSettings
from inferwatch.store.base import QueryResult
from inferwatch.supervisor import cli_command
from tests.support.kafka import new_prefix

DURATION_S, INCIDENT_S = 960, 360  # 16 simulated minutes, incidents from minute 6
WALL_S = 45.0  # simulated time ~21x faster than the clock


def _start_ms() -> int:
    # end before now, aligned to 10 minutes like the demo, so the saved query's time filter keeps it all
    start = int(time.time() * 1000) - DURATION_S * 1000 - 600_000
    return start - start % 600_000


@dataclass
class FleetRun:
    """The live stack and what was observed once the fleet's history had settled."""

    stack: Stack
    token: str
    inbox: Inbox
    report: SendReport
    firing: list[SeenAlert]
    counts: dict[str, tuple[int, int]]
    final_counts: dict[str, tuple[int, int]]
    investigation: QueryResult
    api_alerts: list[dict]  # type: ignore[type-arg]
    metrics_text: str
    cli_sql: subprocess.CompletedProcess[str]
    cli_alerts: subprocess.CompletedProcess[str]


@pytest.fixture(scope="package")
def fleet_run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetRun]:
    """The demo fleet replayed through the running platform (see the module docstring)."""
    tmp = tmp_path_factory.mktemp("fleet")
    token = secrets.token_urlsafe(18)
    inbox = Inbox()
    stack = Stack(StackSettings(data_dir=tmp / "iw", kafka_bootstrap=kafka_bootstrap, topic_prefix=new_prefix(),
                                on_notification=inbox.add, api_token=token))
    cfg = FleetConfig(start_ms=_start_ms(), duration_s=DURATION_S, incident_at_s=INCIDENT_S)
    with stack.start():
        rep = send_fleet(stack.settings, cfg, count_events(cfg), speed=DURATION_S / WALL_S,  # type: ignore[arg-type]
                         spool_dir=tmp / "spool")
        # every expected incident alerts (bounded wait: the processor may lag the replay)
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and not all(v.caught for v in ex.judge_all(inbox.firing())):
            stack.supervisor.check()
            time.sleep(1)
        counts = wait_for_history(stack, rep, timeout_s=90)
        time.sleep(3)  # stragglers: an alert on the control arriving now must still fail the test
        firing = inbox.firing()
        res = investigation(stack)
        headers = stack.auth_headers()
        api_alerts = httpx.get(f"{stack.api_url}/v1/alerts", headers=headers, timeout=10).json()["alerts"]
        metrics = httpx.get(f"{stack.api_url}/metrics", headers=headers, timeout=30).text
        final_counts = store_counts(stack)
        # the user's path: the CLI, which goes through the sink's API while the sink owns the store
        env = {**os.environ, **stack.env()}
        cli_sql = subprocess.run(cli_command("sql", "--saved", "accuracy_by_segment", "--param", "model=photo-verifier",
                                             "--param", "bucket_minutes=10", "--format", "json"),
                                 env=env, capture_output=True, text=True, timeout=120)
        cli_alerts = subprocess.run(cli_command("alerts", "list", "--state", "firing", "--json"),
                                    env=env, capture_output=True, text=True, timeout=120)
        yield FleetRun(stack, token, inbox, rep, firing, counts, final_counts, res, api_alerts, metrics,
                       cli_sql, cli_alerts)
