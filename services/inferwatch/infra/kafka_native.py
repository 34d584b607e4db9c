"""Start and stop real Apache Kafka (KRaft) on 127.0.0.1 from Python: one node, or a cluster of nodes.

This adapter speaks no wire format of its own: it drives ``infra/kafka/kafka.sh``, which runs
the official broker jars (``kafka.Kafka``, resolved by Maven into ``infra/kafka/lib/``) with the
local JDK. Clients then speak the Kafka binary protocol (PLAINTEXT) to :attr:`NativeKafka.bootstrap`,
and, when the broker is built with a :class:`SaslSslListener`, TLS then SASL SCRAM-SHA-512 to
:attr:`NativeKafka.sasl_ssl_bootstrap`.

Each instance owns one data directory holding ``server.properties``, the KRaft log dir
(``data/``), ``kafka.pid`` and ``server.log``. Stopping keeps the data: starting again with the
same directory and ports brings back every topic, offset and committed group offset.

:class:`NativeCluster` runs several such nodes (each a broker and a controller, one static
controller quorum, one cluster id) and can kill and restart one of them.

Typical use in a test (``with`` starts the broker, or cluster, and stops it whatever happens)::

    with NativeKafka.on_free_ports(tmp_path / "kafka") as broker:
        run_against(broker.bootstrap)
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from inferwatch.paths import repo_root

__all__ = ["NativeCluster", "NativeKafka", "NativeKafkaError", "SaslSslListener", "free_port", "repo_root"]

#: Seconds allowed for the one-time Maven resolution of the broker jars (~45 MB).
JARS_TIMEOUT_S = 900.0

_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


class NativeKafkaError(RuntimeError):
    """The broker could not be set up, started or stopped; the message says why and what to do."""


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


@dataclass(frozen=True)
class SaslSslListener:
    """One more listener of the broker, on 127.0.0.1: TLS, then SASL SCRAM-SHA-512.

    Args:
        port: the listener's port.
        keystore_pem: PEM file holding the broker's unencrypted PKCS#8 private key followed by its
            certificate chain (Kafka's ``ssl.keystore.type=PEM``). The certificate must name
            127.0.0.1 (SAN) for clients that verify the host, as librdkafka does by default.
        users: SCRAM-SHA-512 users (name -> password) created once the broker serves, through the
            admin API on the PLAINTEXT listener (so no password appears on a command line).
    """

    port: int
    keystore_pem: Path
    users: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # never print the passwords
        return f"SaslSslListener(port={self.port}, keystore_pem={str(self.keystore_pem)!r}, users={sorted(self.users)})"


class _Runnable(ABC):
    """What a broker and a cluster share: ``with`` starts it and stops it on the way out (also on
    an error inside), and it shows as its bootstrap address and data directory."""

    data_dir: Path

    @property
    @abstractmethod
    def bootstrap(self) -> str:
        """The ``bootstrap.servers`` value for clients."""

    @abstractmethod
    def start(self, timeout_s: float = 60.0) -> str:
        """Start and wait until it serves; return :attr:`bootstrap`."""

    @abstractmethod
    def stop(self) -> None:
        """Stop, keeping the data."""

    def __enter__(self) -> Self:
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
        return f"{type(self).__name__}(bootstrap={self.bootstrap!r}, data_dir={str(self.data_dir)!r})"


class NativeKafka(_Runnable):
    """One native single-node Kafka broker (broker and controller in one JVM) on 127.0.0.1.

    Args:
        data_dir: directory owned by this broker; created if missing, kept by :meth:`stop`.
        port: PLAINTEXT listener port (what clients connect to).
        controller_port: KRaft CONTROLLER listener port.
        heap: JVM heap flags passed as ``KAFKA_HEAP``.
        stop_timeout_s: seconds :meth:`stop` waits after SIGTERM before SIGKILL.
        script: path to ``kafka.sh``; defaults to ``<repo root>/infra/kafka/kafka.sh``.
        sasl_ssl: an extra SASL_SSL listener (TLS + SCRAM-SHA-512), see :class:`SaslSslListener`.
            The PLAINTEXT listener stays: the broker talks to itself over it, and it creates the users.
        node_id: this node's id (broker and controller). Only a cluster's nodes need others than 1.
        controller_voters: a cluster's static controller quorum, ``"1@127.0.0.1:<port>,..."``, the
            same on every node; ``None`` = a quorum of this node alone.
        cluster_id: the id the log dir is formatted with (the same on every node of a cluster);
            ``None`` = a random one.
        replication: replication factor of the broker's internal topics (consumer offsets,
            transactions) and its default; ``min.insync.replicas`` is one less (at least 1).
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
        sasl_ssl: SaslSslListener | None = None,
        node_id: int = 1,
        controller_voters: str | None = None,
        cluster_id: str | None = None,
        replication: int = 1,
    ) -> None:
        if port == controller_port:
            raise ValueError(f"port and controller_port must differ, both are {port}")
        if sasl_ssl is not None and sasl_ssl.port in (port, controller_port):
            raise ValueError(f"the SASL_SSL port {sasl_ssl.port} must differ from port and controller_port")
        if not 1 <= replication <= 9:
            raise ValueError(f"replication must be 1..9, got {replication}")
        self.sasl_ssl = sasl_ssl
        self.node_id = node_id
        self.controller_voters = controller_voters
        self.cluster_id = cluster_id
        self.replication = replication
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
    def sasl_ssl_bootstrap(self) -> str:
        """The ``bootstrap.servers`` value of the SASL_SSL listener; ValueError without one."""
        if self.sasl_ssl is None:
            raise ValueError("this broker has no SASL_SSL listener (pass sasl_ssl=SaslSslListener(...))")
        return f"127.0.0.1:{self.sasl_ssl.port}"

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
        if self.sasl_ssl is not None and self.sasl_ssl.users:
            self.add_scram_users(self.sasl_ssl.users, timeout_s=timeout_s)
        return self.bootstrap

    def add_scram_users(self, users: Mapping[str, str], timeout_s: float = 30.0) -> None:
        """Create or update SCRAM-SHA-512 users (name -> password) and wait until the broker knows them.

        Goes through the admin API on the PLAINTEXT listener: the credentials are records of the
        KRaft metadata log, kept across restarts like topics.
        """
        from confluent_kafka.admin import (
            AdminClient,
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialUpsertion,
        )

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
        ups: list[Any] = [UserScramCredentialUpsertion(name, info, password.encode()) for name, password in users.items()]
        try:
            for fut in admin.alter_user_scram_credentials(ups, request_timeout=timeout_s).values():
                fut.result(timeout=timeout_s)
        except Exception as exc:  # noqa: BLE001 - any admin failure means the users are missing
            raise NativeKafkaError(f"creating SCRAM users {sorted(users)} failed: {exc}") from exc
        # The broker applies metadata records asynchronously: wait until it describes every user.
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                described: Any = admin.describe_user_scram_credentials(list(users), request_timeout=5.0)
                if all(f.result(timeout=5.0) for f in described.values()):
                    return
            except Exception:  # noqa: BLE001,S110 - not there yet
                pass
            if time.monotonic() > deadline:
                raise NativeKafkaError(f"SCRAM users {sorted(users)} not visible after {timeout_s:.0f}s")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after ``stop_timeout_s``); keep its data.

        Stopping a broker that is not running is a no-op.
        """
        self._run(
            "stop",
            self.stop_timeout_s + 30.0,
            KAFKA_STOP_TIMEOUT=str(max(1, int(self.stop_timeout_s))),
        )

    def kill(self) -> None:
        """SIGKILL the broker at once, as a crash would (no clean shutdown); keep its data.

        Killing a broker that is not running is a no-op. :meth:`start` brings it back.
        """
        self._run("kill", 30.0)

    def pid(self) -> int | None:
        """The broker's process id while it runs from this data dir, else ``None``."""
        pidfile = self.data_dir / "kafka.pid"
        if not self.is_running():
            return None
        try:
            return int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def is_running(self) -> bool:
        """Whether the broker process of this data dir is alive (not whether it is ready)."""
        return self._run("status", 30.0, check=False).returncode == 0

    def logs(self, lines: int = 100) -> str:
        """The last ``lines`` lines of :attr:`log_path`, or ``""`` before the first start."""
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _env(self, extra: dict[str, str]) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            KAFKA_PORT=str(self.port),
            KAFKA_CONTROLLER_PORT=str(self.controller_port),
            KAFKA_DATA_DIR=str(self.data_dir),
            KAFKA_HEAP=self.heap,
            KAFKA_NODE_ID=str(self.node_id),
            KAFKA_REPLICATION=str(self.replication),
        )
        if self.controller_voters:
            env["KAFKA_CONTROLLER_VOTERS"] = self.controller_voters
        if self.cluster_id:
            env["KAFKA_CLUSTER_ID"] = self.cluster_id
        if self.sasl_ssl is not None:
            env.update(KAFKA_SASL_SSL_PORT=str(self.sasl_ssl.port),
                       KAFKA_SSL_KEYSTORE_PEM=str(Path(self.sasl_ssl.keystore_pem).resolve()))
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


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding, not starting with '-'."""
    import base64
    import secrets

    while True:
        cid = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


class NativeCluster(_Runnable):
    """Several native Kafka nodes on 127.0.0.1 forming one KRaft cluster.

    Every node is a broker and a controller; the controllers form a static quorum (all nodes
    are voters), so the cluster serves while a majority of nodes runs: one of three may be lost.
    Each node is a :class:`NativeKafka` with its own data dir (``<data_dir>/node-<id>``) and two
    ports; the cluster id is kept in ``<data_dir>/cluster.id`` so a restart finds the same cluster.

    Args:
        data_dir: directory owned by the cluster; created if missing, kept by :meth:`stop`.
        ports: PLAINTEXT port of each node (node ids are 1, 2, ... in this order).
        controller_ports: KRaft CONTROLLER port of each node, same length as ``ports``.
        heap: JVM heap flags of each node.
        replication: replication factor of the brokers' internal topics; default
            ``min(3, nodes)``.
        stop_timeout_s: seconds each node's stop waits after SIGTERM before SIGKILL.
    """

    def __init__(
        self,
        data_dir: Path,
        ports: list[int],
        controller_ports: list[int],
        *,
        heap: str = "-Xmx384m",
        replication: int | None = None,
        stop_timeout_s: float = 30.0,
    ) -> None:
        if len(ports) != len(controller_ports) or not ports:
            raise ValueError("ports and controller_ports must be non-empty and of the same length")
        every = list(ports) + list(controller_ports)
        if len(set(every)) != len(every):
            raise ValueError(f"every port must differ, got {every}")
        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        id_file = self.data_dir / "cluster.id"
        if not id_file.exists():
            id_file.write_text(new_cluster_id() + "\n")
        self.cluster_id = id_file.read_text().strip()
        voters = ",".join(f"{i}@127.0.0.1:{cp}" for i, cp in enumerate(controller_ports, start=1))
        rf = replication if replication is not None else min(3, len(ports))
        if not 1 <= rf <= len(ports):
            raise ValueError(f"replication {rf} needs 1..{len(ports)} (the number of nodes)")
        self.nodes = [
            NativeKafka(self.data_dir / f"node-{i}", p, cp, heap=heap, stop_timeout_s=stop_timeout_s,
                        node_id=i, controller_voters=voters, cluster_id=self.cluster_id, replication=rf)
            for i, (p, cp) in enumerate(zip(ports, controller_ports, strict=True), start=1)
        ]

    @classmethod
    def on_free_ports(cls, data_dir: Path, brokers: int = 3, **kwargs: Any) -> NativeCluster:
        """A cluster of ``brokers`` nodes on ports picked by :func:`free_port`."""
        return cls(data_dir, [free_port() for _ in range(brokers)], [free_port() for _ in range(brokers)], **kwargs)

    @property
    def bootstrap(self) -> str:
        """``bootstrap.servers`` naming every node, so clients find the cluster while any node runs."""
        return ",".join(n.bootstrap for n in self.nodes)

    def node(self, node_id: int) -> NativeKafka:
        """The node with id ``node_id`` (1-based); ValueError for an unknown id."""
        if not 1 <= node_id <= len(self.nodes):
            raise ValueError(f"no node {node_id}: the cluster has nodes 1..{len(self.nodes)}")
        return self.nodes[node_id - 1]

    def start(self, timeout_s: float = 90.0) -> str:
        """Start every node and wait until each serves; return :attr:`bootstrap`.

        The nodes start in parallel: none is ready before a majority of controllers has elected a
        leader. If any node fails, the ones that started are stopped and the first error is raised.
        """
        self.nodes[0].ensure_jars()  # once, before the parallel starts race to resolve them
        errors = self._each(lambda n: n.start(timeout_s=timeout_s), self.nodes)
        if errors:
            self._each(lambda n: n.stop(), self.nodes)
            raise errors[0]
        return self.bootstrap

    def stop(self) -> None:
        """Stop every node (in parallel, clean shutdown); keep the data. A no-op for stopped nodes."""
        errors = self._each(lambda n: n.stop(), self.nodes)
        if errors:
            raise errors[0]

    def kill(self, node_id: int) -> None:
        """SIGKILL node ``node_id``, as a crash would; the others go on."""
        self.node(node_id).kill()

    def restart(self, node_id: int, timeout_s: float = 90.0) -> None:
        """Start node ``node_id`` again (after :meth:`kill` or a stop) and wait until it serves."""
        self.node(node_id).start(timeout_s=timeout_s)

    def running(self) -> list[int]:
        """Ids of the nodes whose process is alive."""
        return [i for i, n in enumerate(self.nodes, start=1) if n.is_running()]

    def is_running(self) -> bool:
        """Whether any node of the cluster runs."""
        return bool(self.running())

    def logs(self, lines: int = 50) -> str:
        """The last ``lines`` lines of every node's log, each under a header."""
        return "\n".join(f"--- node {i} ---\n{n.logs(lines)}" for i, n in enumerate(self.nodes, start=1))

    @staticmethod
    def _each(action: Any, nodes: list[NativeKafka]) -> list[BaseException]:
        """Run ``action(node)`` for every node in a thread each; return the errors, in node order."""
        errors: list[BaseException | None] = [None] * len(nodes)

        def run(i: int, node: NativeKafka) -> None:
            try:
                action(node)
            except BaseException as exc:  # noqa: BLE001 - handed back to the caller
                errors[i] = exc

        threads = [threading.Thread(target=run, args=(i, n), daemon=True) for i, n in enumerate(nodes)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return [e for e in errors if e is not None]
