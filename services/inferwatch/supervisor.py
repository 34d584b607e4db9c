"""Run Inferwatch services as child processes (the platform's process supervisor), each in its own process group with its own log file.

Used by ``inferwatch demo``, ``inferwatch run all`` and the e2e test. Every child is started with
``start_new_session=True`` so stopping it (SIGTERM, then SIGKILL after a bounded wait) also stops
whatever it spawned; :meth:`Supervisor.stop_all` runs in reverse start order and never waits
without a bound. A pid file per service under ``<run_dir>`` lets ``inferwatch status`` and
``inferwatch down`` find services started by another command.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType


class ServiceFailed(RuntimeError):
    """A service process exited while it should be running."""

    def __init__(self, name: str, code: int, log_path: Path, tail: str) -> None:
        super().__init__(f"service {name} exited with code {code}; log {log_path}:\n{tail}")
        self.name = name
        self.code = code
        self.log_path = log_path


def cli_command(*args: str) -> list[str]:
    """The command line of ``inferwatch <args>`` with this interpreter (works without the console script)."""
    return [sys.executable, "-m", "inferwatch.cli.main", *args]


@dataclass
class Service:
    """One running child process."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    pid_path: Path | None = None

    def alive(self) -> bool:
        """Whether the process has not exited yet."""
        return self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the service's log."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def stop_process_group(pid: int, timeout_s: float = 15.0) -> None:
    """SIGTERM the process group led by ``pid``; SIGKILL it if it has not exited after ``timeout_s``."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        # reap our own child if it is one, so the group can disappear
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


@dataclass
class Supervisor:
    """Starts services and stops all of them (also on errors: use it as a context manager)."""

    run_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    stop_timeout_s: float = 15.0
    services: list[Service] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, argv: Sequence[str], extra_env: Mapping[str, str] | None = None) -> Service:
        """Start ``argv`` as service ``name``; stdout and stderr go to ``<run_dir>/<name>.log``."""
        log_path = self.run_dir / f"{name}.log"
        env = {**os.environ, **self.env, **(extra_env or {})}
        with log_path.open("ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} start: {' '.join(argv)}\n".encode())
            proc = subprocess.Popen(list(argv), env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        pid_path = self.run_dir / f"{name}.pid"
        pid_path.write_text(str(proc.pid))
        svc = Service(name, proc, log_path, pid_path)
        self.services.append(svc)
        return svc

    def check(self) -> None:
        """Raise :class:`ServiceFailed` if a service exited."""
        for s in self.services:
            code = s.proc.poll()
            if code is not None:
                raise ServiceFailed(s.name, code, s.log_path, s.log_tail())

    def wait_until(self, what: str, ready: Callable[[], bool], timeout_s: float, poll_s: float = 0.5) -> None:
        """Poll ``ready()`` until true; fail early when a service dies, or with TimeoutError."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check()
            try:
                if ready():
                    return
            except Exception:  # a probe that errors is a probe that is not ready yet
                pass
            time.sleep(poll_s)
        raise TimeoutError(f"{what} was not ready within {timeout_s:.0f} s (logs in {self.run_dir})")

    def stop_all(self) -> None:
        """Stop every service, last started first; bounded waits, SIGKILL as the last resort."""
        for s in reversed(self.services):
            if s.alive():
                stop_process_group(s.proc.pid, self.stop_timeout_s)
            with contextlib.suppress(subprocess.TimeoutExpired):
                s.proc.wait(5)
            if s.pid_path is not None:
                s.pid_path.unlink(missing_ok=True)
        self.services.clear()

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop_all()


def running_from_pid_files(run_dir: Path) -> dict[str, int]:
    """Services with a pid file in ``run_dir`` whose process still runs: name -> pid."""
    out: dict[str, int] = {}
    if not run_dir.is_dir():
        return out
    for p in sorted(run_dir.glob("*.pid")):
        try:
            pid = int(p.read_text().strip())
            os.kill(pid, 0)
        except (ValueError, OSError):
            continue
        out[p.stem] = pid
    return out
