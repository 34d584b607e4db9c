"""A three-node KRaft cluster on loopback (issue #13): topics replicated per the registry's
``cluster`` environment, ``acks=all`` writes that survive a node killed with SIGKILL, and
``topics apply`` reporting the replication factor it cannot change.

One cluster for the whole module (three JVMs on a small machine); the test that kills a node
restarts it and waits until every replica is back in sync before it returns.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import ConfigResource
from typer.testing import CliRunner

from inferwatch.config import Settings
from inferwatch.contract.topics import ALL_TOPICS, ENVIRONMENT_VAR, PREDICTIONS, load_registry
from inferwatch.kafka.admin import admin_client, apply_topics
from inferwatch.kafka.errors import TopicApplyError
from inferwatch.processor.settings import ProcessorSettings
from inferwatch.processor.topics import ensure_topics, processor_specs
from inferwatch.sdk.producer_config import producer_config
from tests.support.kafka import kafka_cluster, new_prefix

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with kafka_cluster(tmp_path_factory.mktemp("cluster"), brokers=3) as c:
        yield c


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # the environment is derived from the broker count unless a test sets it
    monkeypatch.delenv(ENVIRONMENT_VAR, raising=False)


def _min_isr(s: Settings, topic: str) -> str:
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    admin = admin_client(s)  # kept referenced until the result is in (its handle ends with it)
    return str(admin.describe_configs([res])[res].result(timeout=30)["min.insync.replicas"].value)


def _replicas(s: Settings, topic: str) -> dict[int, tuple[list[int], list[int]]]:
    """Per partition: (replicas, in-sync replicas)."""
    md = admin_client(s).list_topics(topic=topic, timeout=30).topics[topic]
    return {p.id: (list(p.replicas), list(p.isrs)) for p in md.partitions.values()}


def _six_free_ports() -> int:
    """A port p such that p, p+10, p+20 and one above each are free now (what ``up --brokers 3`` uses)."""
    import socket

    from inferwatch.infra.kafka_native import free_port

    for _ in range(50):
        base = free_port()
        try:
            socks = []
            for port in (base, base + 1, base + 10, base + 11, base + 20, base + 21):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no six consecutive free ports")


# First in the module, so it runs before the module's cluster starts (one 3-node cluster at a time).
def test_inferwatch_up_brokers_3_starts_a_cluster_and_down_stops_it(tmp_path: Path) -> None:
    from inferwatch.cli.main import app
    from inferwatch.infra.kafka_native import NativeCluster, free_port

    base = _six_free_ports()
    env = {"INFERWATCH_KAFKA_BOOTSTRAP": f"127.0.0.1:{base}", "INFERWATCH_DATA_DIR": str(tmp_path),
           "INFERWATCH_API_PORT": str(free_port())}
    runner = CliRunner()
    nodes = NativeCluster(tmp_path / f"kafka-cluster-{base}", [base, base + 10, base + 20], [base + 1, base + 11, base + 21])
    try:
        up = runner.invoke(app, ["up", "--brokers", "3"], env=env)
        assert up.exit_code == 0, up.output
        assert "environment cluster, 3 broker(s)" in up.output
        assert nodes.running() == [1, 2, 3]
        s = Settings(kafka_bootstrap=nodes.bootstrap)
        assert sorted(admin_client(s).list_topics(timeout=30).brokers) == [1, 2, 3]
        assert all(len(r) == 3 for r, _ in _replicas(s, s.predictions_topic).values())
        down = runner.invoke(app, ["down"], env=env)
        assert down.exit_code == 0, down.output
        assert "stopping the native cluster" in down.output
        assert nodes.running() == []
    finally:
        nodes.stop()


def test_the_cluster_has_three_brokers_and_a_controller_quorum(cluster: Any) -> None:
    s = Settings(kafka_bootstrap=cluster.bootstrap)
    md = admin_client(s).list_topics(timeout=30)
    assert sorted(md.brokers) == [1, 2, 3]
    assert cluster.running() == [1, 2, 3]
    props = (cluster.node(2).data_dir / "server.properties").read_text()
    assert "node.id=2\n" in props
    assert "controller.quorum.voters=1@127.0.0.1:" in props
    assert "offsets.topic.replication.factor=3\n" in props and "min.insync.replicas=2\n" in props


def test_topics_apply_with_the_cluster_environment_replicates_every_topic(cluster: Any) -> None:
    s = Settings(kafka_bootstrap=cluster.bootstrap, topic_prefix=new_prefix())
    rep = apply_topics(s)
    assert rep.environment == "cluster" and rep.brokers == 3
    internal = ensure_topics(s, ProcessorSettings())
    assert internal.not_applied == []
    specs = processor_specs(s, ProcessorSettings())
    assert len(specs) == len(ALL_TOPICS) + 4  # the changelogs and the references too
    for spec in specs.values():
        name = spec.full_name(s.topic_prefix)
        parts = _replicas(s, name)
        assert parts and all(len(r) == 3 for r, _ in parts.values()), (name, parts)
        assert _min_isr(s, name) == "2", name


def test_apply_reports_a_replication_factor_it_cannot_change(cluster: Any) -> None:
    from inferwatch.cli.main import app

    s = Settings(kafka_bootstrap=cluster.bootstrap, topic_prefix=new_prefix())
    assert apply_topics(s, environment="dev").created  # one replica each
    env = {"INFERWATCH_KAFKA_BOOTSTRAP": cluster.bootstrap, "INFERWATCH_TOPIC_PREFIX": s.topic_prefix}
    runner = CliRunner()
    done = runner.invoke(app, ["topics", "apply"], env=env)
    assert done.exit_code == 0, done.output
    out = done.output
    assert "environment cluster (3 broker(s))" in out
    for t in ALL_TOPICS:
        assert f"{s.topic(t)}: replication factor 1, registry wants 3 (environment cluster)" in out
    assert "kafka-reassign-partitions.sh" in out
    # min.insync.replicas 2 on a one-replica topic would refuse every acks=all write: kept at 1
    assert _min_isr(s, s.predictions_topic) == "1"
    strict = runner.invoke(app, ["topics", "apply", "--strict"], env=env)
    assert strict.exit_code == 1 and f"--strict: {len(ALL_TOPICS)} difference(s)" in strict.output, strict.output
    # the dev environment asked explicitly matches: nothing to report
    dev = runner.invoke(app, ["topics", "apply", "--strict", "--environment", "dev"], env=env)
    assert dev.exit_code == 0 and "not applied" not in dev.output, dev.output


def test_cluster_replication_on_one_broker_is_refused_before_creating_anything(
    cluster: Any, tmp_path: Path
) -> None:
    from inferwatch.infra.kafka_native import NativeKafka, free_port

    single = NativeKafka(tmp_path / "one", free_port(), free_port(), heap="-Xmx256m")
    single.start(timeout_s=120)
    try:
        s = Settings(kafka_bootstrap=single.bootstrap, topic_prefix=new_prefix())
        with pytest.raises(TopicApplyError, match=r"needs 3 replicas \(environment cluster\) but .* has 1 broker"):
            apply_topics(s, environment="cluster")
        assert not [t for t in admin_client(s).list_topics(timeout=30).topics if t.startswith(s.topic_prefix)]
    finally:
        single.stop()


def _produce(p: Producer, topic: str, ids: list[str], failures: list[str], timeout_s: float = 60.0) -> None:
    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            failures.append(f"{msg.key()!r}: {err}")

    for i in ids:
        p.produce(topic, key=f"m{hash(i) % 5}".encode(), value=i.encode(), on_delivery=on_delivery)
        p.poll(0)
    left = p.flush(timeout_s)
    assert left == 0, f"{left} messages not delivered within {timeout_s}s"


def test_acks_all_writes_survive_a_node_killed_with_sigkill(cluster: Any) -> None:
    s = Settings(kafka_bootstrap=cluster.bootstrap, topic_prefix=new_prefix())
    apply_topics(s, {PREDICTIONS: load_registry()[PREDICTIONS]})
    topic = s.predictions_topic
    # the SDK's producer settings (acks=all, idempotent), with every delivery report
    conf = producer_config(cluster.bootstrap, None, {"delivery.report.only.error": False,
                                                     "message.timeout.ms": 60_000}, "cluster-test")
    assert conf["acks"] == "all"
    p = Producer(conf)
    failures: list[str] = []
    before = [f"a{i}-{uuid.uuid4().hex[:6]}" for i in range(3000)]
    _produce(p, topic, before, failures)
    # kill the leader of partition 0, as a crash would
    victim = admin_client(s).list_topics(topic=topic, timeout=30).topics[topic].partitions[0].leader
    cluster.kill(victim)
    assert victim not in cluster.running()
    after = [f"b{i}-{uuid.uuid4().hex[:6]}" for i in range(3000)]
    t0 = time.monotonic()
    _produce(p, topic, after, failures)
    failover_s = time.monotonic() - t0
    assert failures == []
    # read everything back while the node is still down (the group coordinator may have moved)
    c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": f"g-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    seen: set[str] = set()
    deadline = time.monotonic() + 60
    try:
        while len(seen) < 6000 and time.monotonic() < deadline:
            for m in c.consume(num_messages=5000, timeout=0.5):
                if m.error() is None:
                    seen.add(m.value().decode())
    finally:
        c.close()
    assert seen == set(before) | set(after), f"lost {len(set(before) | set(after) - seen)}"
    print(f"6000 acks=all writes, 3000 after killing node {victim}: {failover_s:.1f} s for those")  # noqa: T201
    # the node comes back, catches up, and every partition is fully in sync again
    cluster.restart(victim)
    assert cluster.running() == [1, 2, 3]
    deadline = time.monotonic() + 60
    while True:
        parts = _replicas(s, topic)
        if all(sorted(isr) == [1, 2, 3] for _, isr in parts.values()):
            break
        assert time.monotonic() < deadline, f"replicas not back in sync after 60 s: {parts}"
        time.sleep(0.5)
    _produce(p, topic, ["c-after-restart"], failures)
    assert failures == []
