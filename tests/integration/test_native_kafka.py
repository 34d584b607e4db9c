"""The native broker of infra/kafka: start/stop twice leaves nothing behind; clear one-line errors."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from inferwatch.infra import NativeCluster, NativeKafka, NativeKafkaError, free_port, repo_root
from tests.support.kafka import answers

pytestmark = pytest.mark.integration

SCRIPT = repo_root() / "infra" / "kafka" / "kafka.sh"


def _broker_pids(data_dir: Path) -> list[str]:
    out = subprocess.run(["pgrep", "-f", f"kafka.Kafka {data_dir}"], capture_output=True, text=True)
    return out.stdout.split()


def test_start_stop_twice_leaves_no_process(tmp_path: Path) -> None:
    """Once with start() and stop(), once as a context manager (which stops it on an error inside)."""
    broker = NativeKafka(tmp_path / "k", port=free_port(), controller_port=free_port())
    assert repr(broker) == f"NativeKafka(bootstrap='{broker.bootstrap}', data_dir='{tmp_path / 'k'}')"

    def serves(bootstrap: str) -> None:
        assert broker.is_running()
        assert answers(bootstrap, timeout_s=20)

    serves(broker.start(timeout_s=120))
    broker.stop()
    assert not broker.is_running() and _broker_pids(tmp_path / "k") == []
    with pytest.raises(RuntimeError, match="inside"), broker as started:
        assert started is broker
        serves(broker.bootstrap)
        raise RuntimeError("an error inside")
    assert not broker.is_running()
    assert _broker_pids(tmp_path / "k") == []
    with socket.socket() as s:  # the port is free again
        s.bind(("127.0.0.1", broker.port))


def test_a_cluster_shows_every_node_and_its_data_dir(tmp_path: Path) -> None:
    cluster = NativeCluster.on_free_ports(tmp_path / "c", 3)
    nodes = ",".join(f"127.0.0.1:{n.port}" for n in cluster.nodes)
    assert repr(cluster) == f"NativeCluster(bootstrap='{nodes}', data_dir='{tmp_path / 'c'}')"


def test_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        broker = NativeKafka(tmp_path / "k", port=port, controller_port=free_port())
        with pytest.raises(NativeKafkaError, match=f"port {port} is already in use"):
            broker.start(timeout_s=60)
    assert _broker_pids(tmp_path / "k") == []


def test_missing_java_is_one_clear_line(tmp_path: Path) -> None:
    # A PATH with the tools the script needs but no java.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "env", "cat", "mkdir", "dirname", "sed", "grep", "awk", "head", "tail", "sha256sum",
                 "cut", "tr", "ls", "rm", "sleep", "date", "ps", "kill", "basename", "readlink", "realpath", "mvn"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    env = dict(os.environ, PATH=str(bin_dir), KAFKA_PORT=str(free_port()),
               KAFKA_CONTROLLER_PORT=str(free_port()), KAFKA_DATA_DIR=str(tmp_path / "k"))
    res = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode != 0
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert any("java not found" in ln for ln in lines), res.stderr
