"""Real Kafka for the tests, in this order of preference:

1. ``INFERWATCH_KAFKA_BOOTSTRAP`` if set (it must answer);
2. testcontainers, where a Docker engine answers;
3. else the native KRaft broker of ``infra/kafka`` started on free ports in a temp dir.

When none is possible the tests *fail* with a message that says what to install.

:func:`kafka_cluster` always starts a native cluster of several nodes (a test that kills a node
needs one it owns).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException
from confluent_kafka.admin import AdminClient


class KafkaNotAvailable(RuntimeError):
    """No real Kafka could be had; the message says why and what to do."""


def answers(bootstrap: str, timeout_s: float = 10.0) -> bool:
    """Whether a Kafka cluster answers a metadata request at ``bootstrap``."""
    try:
        AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=timeout_s)
        return True
    except KafkaException:
        return False


def docker_answers() -> bool:
    """Whether a Docker engine (not only the client) answers."""
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextmanager
def real_kafka(tmp_dir: Path) -> Iterator[str]:
    """Yield the bootstrap address of a real Kafka, started here if need be, stopped after."""
    env = os.environ.get("INFERWATCH_KAFKA_BOOTSTRAP")
    if env:
        if not answers(env, timeout_s=20):
            raise KafkaNotAvailable(f"INFERWATCH_KAFKA_BOOTSTRAP={env} is set but no Kafka answers there")
        yield env
        return
    if docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:4.1.0").with_kraft() as kc:  # pragma: no cover - no Docker here
            yield kc.get_bootstrap_server()
        return
    if not shutil.which("java"):
        raise KafkaNotAvailable(
            "no Kafka: INFERWATCH_KAFKA_BOOTSTRAP unset, no Docker engine, and no `java` on PATH for the "
            "native broker; install a JDK 17+ (apt-get install openjdk-17-jre-headless) or set "
            "INFERWATCH_KAFKA_BOOTSTRAP"
        )
    from inferwatch.infra.kafka_native import NativeKafka, free_port

    broker = NativeKafka(tmp_dir / "kafka", port=free_port(), controller_port=free_port())
    try:
        broker.start(timeout_s=120)
    except Exception as exc:
        raise KafkaNotAvailable(f"the native Kafka broker of infra/kafka failed to start: {exc}") from exc
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@contextmanager
def kafka_cluster(tmp_dir: Path, brokers: int = 3) -> Iterator[Any]:
    """Yield a started :class:`~inferwatch.infra.kafka_native.NativeCluster` of ``brokers`` nodes, stopped after.

    Each node gets a small heap (the machine runs three JVMs at once); its logs are attached to
    the error when the cluster does not start.
    """
    if not shutil.which("java"):
        raise KafkaNotAvailable(
            "no `java` on PATH for the native Kafka cluster; install a JDK 17+ (apt-get install openjdk-17-jre-headless)"
        )
    from inferwatch.infra.kafka_native import NativeCluster

    cluster = NativeCluster.on_free_ports(tmp_dir / "kafka-cluster", brokers, heap="-Xmx384m")
    try:
        cluster.start(timeout_s=180)
    except Exception as exc:
        raise KafkaNotAvailable(f"the native Kafka cluster failed to start: {exc}\n{cluster.logs(20)}") from exc
    try:
        yield cluster
    finally:
        cluster.stop()


def new_prefix() -> str:
    """A unique topic prefix: each test gets its own topics on the shared broker."""
    return f"t{uuid.uuid4().hex[:10]}."


def consume_all(
    bootstrap: str, topic: str, expected: int, timeout_s: float = 60.0, group: str | None = None
) -> list[Any]:
    """Read ``topic`` from the beginning until ``expected`` messages or ``timeout_s``; return them."""
    import time

    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group or f"test-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    c.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < expected and time.monotonic() < deadline:
            for m in c.consume(num_messages=10_000, timeout=0.5):
                if m.error() is None:
                    out.append(m)
    finally:
        c.close()
    return out
