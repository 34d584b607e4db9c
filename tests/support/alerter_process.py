"""Run a real alerter as ``inferwatch run alerter`` in a subprocess (its own data dir and HTTP port).

For the tests that kill an alerter (``kill -9``) while another one of the same group takes its
partitions over: :class:`AlerterProcess` starts it, reads its ``/healthz`` (which lists the input
partitions it holds), and kills or stops its process group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from inferwatch.config import Settings
from inferwatch.infra.kafka_native import free_port

REPO = Path(__file__).resolve().parents[2]


class AlerterProcess:
    """``inferwatch run alerter --rules R --config C --http-port P --data-dir D`` in its own session."""

    def __init__(self, settings: Settings, data_dir: Path, rules: Path, config: Path, log: Path,
                 extra_env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.log = log
        self.http_port = free_port()
        env = {**os.environ, "INFERWATCH_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
               "INFERWATCH_TOPIC_PREFIX": settings.topic_prefix, **(extra_env or {})}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
        args = [sys.executable, "-m", "inferwatch.cli.main", "run", "alerter", "--rules", str(rules),
                "--config", str(config), "--http-port", str(self.http_port), "--data-dir", str(data_dir)]
        self.proc = subprocess.Popen(args, env=env, cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)

    @property
    def api(self) -> str:
        """Base URL of its ``/v1`` API."""
        return f"http://127.0.0.1:{self.http_port}/v1"

    def health(self) -> dict[str, Any] | None:
        """Its ``/healthz`` (None while it does not answer)."""
        try:
            return httpx.get(f"http://127.0.0.1:{self.http_port}/healthz", timeout=2).json()  # type: ignore[no-any-return]
        except (httpx.HTTPError, ValueError):
            return None

    def partitions(self) -> set[int]:
        """The input partitions it holds now (empty while it does not answer)."""
        h = self.health()
        return set(h.get("partitions", [])) if h else set()

    def wait_healthy(self, timeout_s: float = 60) -> None:
        """Until its API answers (it has read the silences topic and subscribed)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.tail()
            if self.health() is not None:
                return
            time.sleep(0.2)
        raise AssertionError(f"alerter never answered on /healthz\n{self.tail()}")

    def kill(self) -> None:
        """``kill -9`` the alerter (its whole process group) and reap it."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout_s: float = 20) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``."""
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout_s)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, n: int = 60) -> str:
        """The last ``n`` lines of its log."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""
