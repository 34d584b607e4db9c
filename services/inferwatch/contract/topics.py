"""The topic registry: ``schemas/topics/<topic>.yaml`` loaded into typed specs.

Topic names can carry a prefix (``INFERWATCH_TOPIC_PREFIX``) so that several deployments or
test runs share one cluster without seeing each other's events.

Replication is set per *Kafka environment*: ``dev`` (one broker: one replica) and ``cluster``
(three or more brokers: three replicas, ``min.insync.replicas`` 2, so an ``acks=all`` write
survives the loss of one broker and a second loss stops writes instead of losing them). The
environment comes from ``INFERWATCH_KAFKA_ENVIRONMENT``; unset, it is derived from the number
of brokers the cluster reports (see :func:`resolve_environment`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from inferwatch.paths import schemas_dir

PREDICTIONS = "inferwatch.predictions"
FEEDBACK = "inferwatch.feedback"
METRICS = "inferwatch.metrics"
ALERTS = "inferwatch.alerts"
DEADLETTER = "inferwatch.deadletter"
DETECTIONS = "inferwatch.detections"
ALERTER_STATE = "inferwatch.alerter-state"
"""The alerters' per-partition state changelog (internal: compacted, co-partitioned with the metrics topic)."""
ALERTER_SILENCES = "inferwatch.alerter-silences"
"""Every silence, read in full by every alerter (internal: compacted, keyed by silence id)."""
INTERNAL_TOPICS = (ALERTER_STATE, ALERTER_SILENCES)
"""Topics that hold a service's own state: no event schema, not written to the store."""
ALL_TOPICS = (PREDICTIONS, FEEDBACK, METRICS, ALERTS, DEADLETTER, DETECTIONS, *INTERNAL_TOPICS)

TopicKey = Literal["predictions", "feedback", "metrics", "alerts", "deadletter", "detections"]

KafkaEnvironment = Literal["dev", "cluster"]
KAFKA_ENVIRONMENTS: tuple[str, ...] = get_args(KafkaEnvironment)
#: Env var that names the Kafka environment whose replication settings apply.
ENVIRONMENT_VAR = "INFERWATCH_KAFKA_ENVIRONMENT"
#: Brokers from which an unset environment is taken to be ``cluster``.
CLUSTER_MIN_BROKERS = 3


class Replication(BaseModel):
    """How many copies of each partition, and how many must have a write before ``acks=all`` succeeds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    factor: Annotated[int, Field(ge=1, le=7)]
    min_insync_replicas: Annotated[int, Field(ge=1, le=7)]

    @model_validator(mode="after")
    def _isr_within_factor(self) -> Replication:
        # min ISR above the factor would refuse every acks=all write
        if self.min_insync_replicas > self.factor:
            raise ValueError(f"min_insync_replicas {self.min_insync_replicas} exceeds factor {self.factor}")
        return self


def default_replication() -> dict[KafkaEnvironment, Replication]:
    """One replica on a development broker; three, two in sync, on a cluster."""
    return {"dev": Replication(factor=1, min_insync_replicas=1),
            "cluster": Replication(factor=3, min_insync_replicas=2)}


class TopicSpec(BaseModel):
    """One entry of the topic registry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^inferwatch\.[a-z_]+(-[a-z_]+)*$")]
    description: str
    partitions: Annotated[int, Field(ge=1, le=1024)]
    replication: dict[KafkaEnvironment, Replication] = Field(
        default_factory=default_replication,
        description="Replication factor and min.insync.replicas per Kafka environment (dev, cluster).")
    retention_ms: Annotated[int, Field(ge=-1)]
    cleanup_policy: Literal["delete", "compact", "compact,delete"] = "delete"
    key: str = Field(description="What the message key is, and why.")
    schema_: str = Field(alias="schema", description="The event schema name, e.g. prediction.v1.")
    producers: list[str]
    consumers: list[str]
    config: dict[str, str] = Field(default_factory=dict, description="Extra topic configs.")

    def full_name(self, prefix: str = "") -> str:
        """The topic's name on the cluster, with the deployment's prefix."""
        return f"{prefix}{self.name}"

    @model_validator(mode="after")
    def _every_environment(self) -> TopicSpec:
        missing = [e for e in KAFKA_ENVIRONMENTS if e not in self.replication]
        if missing:
            raise ValueError(f"replication: missing environment(s) {', '.join(missing)}")
        if "min.insync.replicas" in self.config:
            raise ValueError("config: set min.insync.replicas under replication.<environment>, not in config")
        return self

    def replication_for(self, environment: KafkaEnvironment) -> Replication:
        """The replication settings of ``environment``."""
        return self.replication[environment]

    def topic_config(self, environment: KafkaEnvironment = "dev") -> dict[str, str]:
        """The topic-level configs to apply on a cluster of ``environment``."""
        cfg = {"retention.ms": str(self.retention_ms), "cleanup.policy": self.cleanup_policy,
               "min.insync.replicas": str(self.replication_for(environment).min_insync_replicas)}
        cfg.update(self.config)
        return cfg


def load_registry(directory: Path | None = None) -> dict[str, TopicSpec]:
    """Every topic of the registry, by its (unprefixed) name."""
    import yaml  # the platform extra; the SDK never loads the registry

    directory = directory or schemas_dir() / "topics"
    specs: dict[str, TopicSpec] = {}
    for path in sorted(directory.glob("*.yaml")):
        with path.open() as fh:
            raw = yaml.safe_load(fh)
        try:
            spec = TopicSpec.model_validate(raw)
        except Exception as exc:  # one clear line naming the file
            raise ValueError(f"{path}: invalid topic spec: {exc}") from exc
        if path.stem != spec.name:
            raise ValueError(f"{path}: file name must equal the topic name {spec.name!r}")
        specs[spec.name] = spec
    return specs


def environment_from_env() -> KafkaEnvironment | None:
    """``INFERWATCH_KAFKA_ENVIRONMENT`` if set (``dev`` or ``cluster``), else ``None``; ValueError otherwise."""
    raw = os.environ.get(ENVIRONMENT_VAR, "").strip()
    if not raw:
        return None
    if raw not in KAFKA_ENVIRONMENTS:
        raise ValueError(f"{ENVIRONMENT_VAR}={raw!r}: must be one of {', '.join(KAFKA_ENVIRONMENTS)}")
    return raw  # type: ignore[return-value]  # checked against the Literal's values above


def resolve_environment(brokers: int, explicit: str | None = None) -> KafkaEnvironment:
    """The Kafka environment to apply: ``explicit``, else the env var, else by broker count.

    Derived, ``cluster`` needs at least :data:`CLUSTER_MIN_BROKERS` brokers: applying the dev
    settings to a cluster would lower ``min.insync.replicas`` of its topics to 1.
    """
    if explicit:
        if explicit not in KAFKA_ENVIRONMENTS:
            raise ValueError(f"Kafka environment {explicit!r}: must be one of {', '.join(KAFKA_ENVIRONMENTS)}")
        return explicit  # type: ignore[return-value]  # checked above
    return environment_from_env() or ("cluster" if brokers >= CLUSTER_MIN_BROKERS else "dev")


def topic(name: str, prefix: str = "") -> str:
    """The full name of registry topic ``name`` under ``prefix``."""
    return f"{prefix}{name}"
