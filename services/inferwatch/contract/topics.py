"""The topic registry: ``schemas/topics/<topic>.yaml`` loaded into typed specs.

Topic names can carry a prefix (``INFERWATCH_TOPIC_PREFIX``) so that several deployments or
test runs share one cluster without seeing each other's events.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from inferwatch.paths import schemas_dir

PREDICTIONS = "inferwatch.predictions"
FEEDBACK = "inferwatch.feedback"
METRICS = "inferwatch.metrics"
ALERTS = "inferwatch.alerts"
DEADLETTER = "inferwatch.deadletter"
ALL_TOPICS = (PREDICTIONS, FEEDBACK, METRICS, ALERTS, DEADLETTER)

TopicKey = Literal["predictions", "feedback", "metrics", "alerts", "deadletter"]


class TopicSpec(BaseModel):
    """One entry of the topic registry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^inferwatch\.[a-z_]+$")]
    description: str
    partitions: Annotated[int, Field(ge=1, le=1024)]
    replication_factor: Annotated[int, Field(ge=1, le=7)] = 1
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

    def topic_config(self) -> dict[str, str]:
        """The topic-level configs to apply on the cluster."""
        cfg = {"retention.ms": str(self.retention_ms), "cleanup.policy": self.cleanup_policy}
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


def topic(name: str, prefix: str = "") -> str:
    """The full name of registry topic ``name`` under ``prefix``."""
    return f"{prefix}{name}"
