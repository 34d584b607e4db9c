"""Start and stop a real single-node Apache Kafka broker (KRaft) on 127.0.0.1 from Python.

This adapter speaks no wire format of its own: it drives ``infra/kafka/kafka.sh``, which runs
the official broker jars (``kafka.Kafka``, resolved by Maven into ``infra/kafka/lib/``) with the
local JDK. Clients then speak the Kafka binary protocol (PLAINTEXT) to :attr:`NativeKafka.bootstrap`.

Each instance owns one data directory holding ``server.properties``, the KRaft log dir
(``data/``), ``kafka.pid`` and ``server.log``. Stopping keeps the data: starting again with the
same directory and ports brings back every topic, offset and committed group offset.

Typical use in a test fixture::

    broker = NativeKafka(tmp_path / "kafka", free_port(), free_port())
    broker.start()
    try:
        run_against(broker.bootstrap)
    finally:
        broker.stop()
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from pathlib import Path
from types import TracebackType

__all__ = ["NativeKafka", "NativeKafkaError", "free_port", "repo_root"]

#: Seconds allowed for the one-time Maven resolution of the broker jars (~45 MB).
JARS_TIMEOUT_S = 900.0

_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


class NativeKafkaError(RuntimeError):
    """The broker could not be set up, started or stopped; the message says why and what to do."""


def repo_root() -> Path:
    """Return the repository root: ``$INFERWATCH_REPO_ROOT`` if set, else found from this file.

    This file lives at ``services/inferwatch/infra/kafka_native.py``, so the root is three
    directories above its folder.
    """
    env = os.environ.get("INFERWATCH_REPO_ROOT")
    return Path(env).resolve() if env else Path(__file__).resolve().parents[3]


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that is free now and not yet handed out by this process.

    The OS picks the port; another program may still take it before the broker binds it, in which
    case :meth:`NativeKafka.start` fails with a clear "port ... is already in use" error.
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        with _handed_out_lock:
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise NativeKafkaError(f"no free TCP port found on {host}")


class NativeKafka:
    """One native single-node Kafka broker (broker and controller in one JVM) on 127.0.0.1.

    Args:
        data_dir: directory owned by this broker; created if missing, kept by :meth:`stop`.
        port: PLAINTEXT listener port (what clients connect to).
        controller_port: KRaft CONTROLLER listener port.
        heap: JVM heap flags passed as ``KAFKA_HEAP``.
        stop_timeout_s: seconds :meth:`stop` waits after SIGTERM before SIGKILL.
        script: path to ``kafka.sh``; defaults to ``<repo root>/infra/kafka/kafka.sh``.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int,
        controller_port: int,
        *,
        heap: str = "-Xmx512m",
        stop_timeout_s: float = 30.0,
        script: Path | None = None,
    ) -> None:
        if port == controller_port:
            raise ValueError(f"port and controller_port must differ, both are {port}")
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.controller_port = controller_port
        self.heap = heap
        self.stop_timeout_s = stop_timeout_s
        self.script = script if script is not None else repo_root() / "infra" / "kafka" / "kafka.sh"

    @classmethod
    def on_free_ports(
        cls, data_dir: Path, *, heap: str = "-Xmx512m", stop_timeout_s: float = 30.0
    ) -> NativeKafka:
        """Build a broker for ``data_dir`` on two ports picked by :func:`free_port`."""
        return cls(data_dir, free_port(), free_port(), heap=heap, stop_timeout_s=stop_timeout_s)

    @property
    def bootstrap(self) -> str:
        """The ``bootstrap.servers`` value for clients: ``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """The broker's own log file (log4j), useful to attach to a failing test."""
        return self.data_dir / "server.log"

    def ensure_jars(self, timeout_s: float = JARS_TIMEOUT_S) -> None:
        """Resolve the broker jars with Maven if they are missing (a no-op once done)."""
        self._run("jars", timeout_s)

    def start(self, timeout_s: float = 60.0) -> str:
        """Start the broker and wait until it serves; return :attr:`bootstrap`.

        Formats the KRaft log dir on first use. Starting a broker that already runs from the
        same data dir is a no-op. Raises :class:`NativeKafkaError` with the script's one-line
        reason (java missing, port in use, broker exited, timeout, ...).
        """
        self.ensure_jars()
        self._run("start", timeout_s + 30.0, KAFKA_START_TIMEOUT=str(max(1, int(timeout_s))))
        return self.bootstrap

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after ``stop_timeout_s``); keep its data.

        Stopping a broker that is not running is a no-op.
        """
        self._run(
            "stop",
            self.stop_timeout_s + 30.0,
            KAFKA_STOP_TIMEOUT=str(max(1, int(self.stop_timeout_s))),
        )

    def is_running(self) -> bool:
        """Whether the broker process of this data dir is alive (not whether it is ready)."""
        return self._run("status", 30.0, check=False).returncode == 0

    def logs(self, lines: int = 100) -> str:
        """The last ``lines`` lines of :attr:`log_path`, or ``""`` before the first start."""
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> NativeKafka:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"NativeKafka(bootstrap={self.bootstrap!r}, data_dir={str(self.data_dir)!r})"

    def _env(self, extra: dict[str, str]) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            KAFKA_PORT=str(self.port),
            KAFKA_CONTROLLER_PORT=str(self.controller_port),
            KAFKA_DATA_DIR=str(self.data_dir),
            KAFKA_HEAP=self.heap,
        )
        env.update(extra)
        return env

    def _run(
        self, command: str, timeout_s: float, *, check: bool = True, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        if not self.script.is_file():
            raise NativeKafkaError(
                f"{self.script} not found: run from a checkout of the repository "
                "or set INFERWATCH_REPO_ROOT to it"
            )
        try:
            done = subprocess.run(
                ["bash", str(self.script), command],
                env=self._env(extra),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise NativeKafkaError(
                f"kafka.sh {command} did not finish within {timeout_s:.0f}s (log: {self.log_path})"
            ) from exc
        if check and done.returncode != 0:
            errors = [ln for ln in done.stderr.splitlines() if ln.startswith("kafka: error:")]
            reason = errors[-1] if errors else (done.stderr.strip() or done.stdout.strip())
            raise NativeKafkaError(f"kafka.sh {command} failed (exit {done.returncode}): {reason}")
        return done
