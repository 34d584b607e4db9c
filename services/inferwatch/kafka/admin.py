"""Create or update the registry's topics on a cluster, idempotently, with the AdminClient.

Replication follows the registry's settings for the Kafka environment (``dev`` or ``cluster``,
see :func:`inferwatch.contract.topics.resolve_environment`). A new topic gets the environment's
replication factor and ``min.insync.replicas``; an existing topic whose replication factor
differs is reported (Kafka changes it only by a partition reassignment), never silently left.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

from inferwatch.config import Settings
from inferwatch.contract.topics import (
    ENVIRONMENT_VAR,
    KafkaEnvironment,
    TopicSpec,
    load_registry,
    resolve_environment,
)
from inferwatch.kafka.clientconf import base_config
from inferwatch.kafka.errors import KafkaUnavailableError, TopicApplyError


@dataclass(frozen=True)
class ReplicationMismatch:
    """An existing topic whose replication factor is not the registry's for the environment."""

    topic: str
    current: int
    wanted: int
    environment: str
    bootstrap: str

    def __str__(self) -> str:
        return (
            f"{self.topic}: replication factor {self.current}, registry wants {self.wanted} "
            f"(environment {self.environment}); Kafka cannot change it by a config: reassign its partitions "
            f"with kafka-reassign-partitions.sh --bootstrap-server {self.bootstrap.split(',')[0]} "
            f"--reassignment-json-file <plan with {self.wanted} replicas per partition> --execute, "
            "or delete and re-create the topic"
        )


@dataclass
class ApplyReport:
    """What ``apply_topics`` did, topic by topic.

    ``warnings`` and ``replication`` list what the registry asks and the cluster was not made to
    do (fewer partitions, another replication factor): ``inferwatch topics apply --strict`` fails on them.
    """

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    replication: list[ReplicationMismatch] = field(default_factory=list)
    environment: str = "dev"
    brokers: int = 0

    @property
    def not_applied(self) -> list[str]:
        """Everything the cluster still differs in from the registry, one line each."""
        return self.warnings + [str(m) for m in self.replication]


def admin_client(settings: Settings) -> AdminClient:
    """An AdminClient for the configured cluster."""
    return AdminClient(base_config(settings))


def wait_for_cluster(settings: Settings, timeout_s: float = 30.0) -> int:
    """Block until the cluster answers a metadata request; returns the broker count."""
    admin = admin_client(settings)
    try:
        md = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise KafkaUnavailableError(
            f"Kafka at {settings.kafka_bootstrap} did not answer within {timeout_s:.0f}s "
            f"(start it with `make up` or set INFERWATCH_KAFKA_BOOTSTRAP): {exc}"
        ) from None
    return len(md.brokers)


def _partition_count(admin: AdminClient, name: str, timeout_s: float) -> int:
    """The topic's partition count from fresh metadata. Right after a topic is created a broker
    can list it with no partitions yet; asking again until they show avoids a bogus "increase"."""
    deadline = time.monotonic() + timeout_s
    while True:
        md = admin.list_topics(topic=name, timeout=timeout_s).topics.get(name)
        have = len(md.partitions) if md is not None and md.error is None else 0
        if have or time.monotonic() > deadline:
            return have
        time.sleep(0.1)


def _min_isr(spec: TopicSpec, environment: KafkaEnvironment, replicas: int) -> str:
    """The environment's ``min.insync.replicas``, at most ``replicas``: above the topic's actual
    replication factor every ``acks=all`` write would fail with NOT_ENOUGH_REPLICAS."""
    return str(min(spec.replication_for(environment).min_insync_replicas, replicas))


def _replication_factor(admin: AdminClient, name: str, timeout_s: float) -> int:
    """The topic's replication factor (replicas of its partitions, the largest), 0 if unknown."""
    md = admin.list_topics(topic=name, timeout=timeout_s).topics.get(name)
    if md is None or md.error is not None or not md.partitions:
        return 0
    return max(len(p.replicas) for p in md.partitions.values())


def apply_topics(
    settings: Settings,
    specs: dict[str, TopicSpec] | None = None,
    timeout_s: float = 30.0,
    environment: str | None = None,
) -> ApplyReport:
    """Make the cluster's topics match the registry: create missing ones (with the environment's
    replication), raise partition counts, and set topic configs (retention, cleanup,
    ``min.insync.replicas``). Partitions are never reduced and replication factors never changed
    (Kafka cannot by these calls): both are reported in the returned :class:`ApplyReport`.

    ``environment``: ``dev`` or ``cluster``; ``None`` = ``INFERWATCH_KAFKA_ENVIRONMENT``, else
    ``cluster`` when the cluster has 3 brokers or more. Raises :class:`TopicApplyError` before
    creating anything when a topic needs more replicas than the cluster has brokers.
    """
    specs = specs if specs is not None else load_registry()
    admin = admin_client(settings)
    try:
        md = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise KafkaUnavailableError(f"Kafka at {settings.kafka_bootstrap} unreachable: {exc}") from None
    existing = md.topics
    try:
        env = resolve_environment(len(md.brokers), environment)
    except ValueError as exc:
        raise TopicApplyError(str(exc)) from None
    report = ApplyReport(environment=env, brokers=len(md.brokers))
    for spec in specs.values():
        rf = spec.replication_for(env).factor
        if spec.full_name(settings.topic_prefix) not in existing and rf > len(md.brokers):
            raise TopicApplyError(
                f"{spec.full_name(settings.topic_prefix)} needs {rf} replicas (environment {env}) but the cluster at "
                f"{settings.kafka_bootstrap} has {len(md.brokers)} broker(s): start more (`inferwatch up --brokers 3`) "
                f"or set {ENVIRONMENT_VAR}=dev"
            )

    to_create: list[NewTopic] = []
    raced: set[str] = set()
    for spec in specs.values():
        name = spec.full_name(settings.topic_prefix)
        if name not in existing:
            to_create.append(
                NewTopic(name, num_partitions=spec.partitions, replication_factor=spec.replication_for(env).factor,
                         config=spec.topic_config(env))
            )
    if to_create:
        for name, fut in admin.create_topics(to_create, operation_timeout=timeout_s).items():
            try:
                fut.result(timeout=timeout_s)
                report.created.append(name)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" in str(exc):
                    # The metadata we listed was stale (a just-created topic, or a concurrent
                    # apply won the race): treat it as existing and reconcile it below.
                    raced.add(name)
                else:
                    raise TopicApplyError(f"creating {name}: {exc}") from None

    for spec in specs.values():
        name = spec.full_name(settings.topic_prefix)
        if name in report.created:
            continue
        changed = False
        have = len(existing[name].partitions) if name in existing else 0
        if name in raced or have == 0:
            have = _partition_count(admin, name, timeout_s)
        if have < spec.partitions:
            fut = admin.create_partitions([NewPartitions(name, spec.partitions)])[name]
            fut.result(timeout=timeout_s)
            changed = True
        elif have > spec.partitions:
            report.warnings.append(f"{name} has {have} partitions, registry says {spec.partitions}; Kafka cannot shrink")
        wanted = spec.topic_config(env)
        replicas = _replication_factor(admin, name, timeout_s)
        want_rf = spec.replication_for(env).factor
        if replicas and replicas != want_rf:
            report.replication.append(ReplicationMismatch(name, replicas, want_rf, env, settings.kafka_bootstrap))
            wanted["min.insync.replicas"] = _min_isr(spec, env, replicas)
        res = ConfigResource(ConfigResource.Type.TOPIC, name)
        current = admin.describe_configs([res])[res].result(timeout=timeout_s)
        diff = {k: v for k, v in wanted.items() if k not in current or current[k].value != v}
        if diff:
            res = ConfigResource(
                ConfigResource.Type.TOPIC,
                name,
                incremental_configs=[
                    ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in diff.items()
                ],
            )
            admin.incremental_alter_configs([res])[res].result(timeout=timeout_s)
            changed = True
        (report.updated if changed else report.unchanged).append(name)
    return report
