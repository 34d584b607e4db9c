"""The processor's own topics, created with the AdminClient (faust's declaration is turned off because
Kafka 4 rejects some of its old admin requests): the three table changelogs and the compacted topic of
uploaded reference profiles. Registry topics are applied by :func:`inferwatch.kafka.admin.apply_topics`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from inferwatch.config import Settings
from inferwatch.contract.topics import FEEDBACK, PREDICTIONS, TopicSpec, load_registry
from inferwatch.processor.settings import ProcessorSettings

if TYPE_CHECKING:
    from inferwatch.kafka.admin import ApplyReport

TABLES = ("windows", "joins", "meta")


def app_id(settings: Settings) -> str:
    """The faust app id (consumer group), isolated by the topic prefix."""
    from inferwatch.kafka.groups import PROCESSOR, group_id

    return group_id(settings, PROCESSOR)


def changelog_topic(settings: Settings, table: str) -> str:
    """Faust's changelog topic name of ``table``."""
    return f"{app_id(settings)}-{table}-changelog"


def references_topic(settings: Settings) -> str:
    """Compacted topic of uploaded reference profiles, key ``model@version``, value ``ReferenceProfile`` bytes."""
    return f"{settings.topic_prefix}inferwatch.processor.references"


def processor_specs(settings: Settings, cfg: ProcessorSettings) -> dict[str, TopicSpec]:
    """Registry topics plus the processor's internal topics, as specs for ``apply_topics``."""
    reg = load_registry()
    parts = reg[PREDICTIONS].partitions
    assert reg[FEEDBACK].partitions == parts
    specs = dict(reg)
    # Internal topics hold state the processor cannot rebuild elsewhere (windows, joins, uploaded
    # references): they are replicated like the events they come from, in every environment.
    replication = reg[PREDICTIONS].replication
    for t in TABLES:
        # The changelog topic name does not fit the registry's name pattern: build it unvalidated.
        retention = cfg.join_retention_s * 1000 if t == "joins" else -1
        specs[t] = TopicSpec.model_construct(
            name=changelog_topic(settings, t).removeprefix(settings.topic_prefix), description=f"changelog of {t}",
            partitions=parts, replication=replication, retention_ms=retention,
            cleanup_policy="compact,delete" if t == "joins" else "compact",
            key="table key", schema_="-", producers=["processor"], consumers=["processor"],
            config={"max.message.bytes": "16777216"})
    specs["references"] = TopicSpec.model_construct(
        name=references_topic(settings).removeprefix(settings.topic_prefix), description="uploaded references",
        partitions=1, replication=replication, retention_ms=-1, cleanup_policy="compact", key="model@version",
        schema_="-", producers=["cli"], consumers=["processor"], config={"max.message.bytes": "16777216"})
    return specs


def ensure_topics(settings: Settings, cfg: ProcessorSettings, environment: str | None = None) -> ApplyReport:
    """Create or update every topic the processor reads or writes (replication of ``environment``,
    see :func:`inferwatch.contract.topics.resolve_environment`); return what was done."""
    from inferwatch.kafka.admin import apply_topics

    return apply_topics(settings, processor_specs(settings, cfg), environment=environment)
