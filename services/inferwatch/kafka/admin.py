"""Create or update the registry's topics on a cluster, idempotently, with the AdminClient."""

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
from inferwatch.contract.topics import TopicSpec, load_registry
from inferwatch.kafka.clientconf import base_config
from inferwatch.kafka.errors import KafkaUnavailableError, TopicApplyError


@dataclass
class ApplyReport:
    """What ``apply_topics`` did, topic by topic."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


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


def apply_topics(
    settings: Settings, specs: dict[str, TopicSpec] | None = None, timeout_s: float = 30.0
) -> ApplyReport:
    """Make the cluster's topics match the registry: create missing ones, raise partition counts,
    and set topic configs (retention, cleanup). Partitions are never reduced (Kafka cannot)."""
    specs = specs if specs is not None else load_registry()
    admin = admin_client(settings)
    report = ApplyReport()
    try:
        existing = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        raise KafkaUnavailableError(f"Kafka at {settings.kafka_bootstrap} unreachable: {exc}") from None

    to_create: list[NewTopic] = []
    raced: set[str] = set()
    for spec in specs.values():
        name = spec.full_name(settings.topic_prefix)
        if name not in existing:
            to_create.append(
                NewTopic(name, num_partitions=spec.partitions, replication_factor=spec.replication_factor,
                         config=spec.topic_config())
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
        res = ConfigResource(ConfigResource.Type.TOPIC, name)
        current = admin.describe_configs([res])[res].result(timeout=timeout_s)
        wanted = spec.topic_config()
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
