"""Store options an operator sets through ``INFERWATCH_*`` env vars, beside the shared Settings."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class StoreSettings(BaseSettings):
    """How migrations are rendered: ``INFERWATCH_RETENTION_DAYS``, ``INFERWATCH_CLICKHOUSE_CLUSTER``."""

    model_config = SettingsConfigDict(env_prefix="INFERWATCH_", frozen=True, extra="ignore")

    retention_days: int = Field(90, ge=1, le=36500, description="TTL of every history table, in days.")
    clickhouse_cluster: str | None = Field(
        None, description="Cluster name: apply schemas/clickhouse/cluster/ (ON CLUSTER) instead of the single-node DDL."
    )
