"""Sink options (``INFERWATCH_SINK_*`` env vars), beside the shared :class:`inferwatch.config.Settings`."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from inferwatch.config import Settings


class SinkSettings(BaseSettings):
    """Batching, consumer group and retry. (The kill -9 test's crash hook is deliberately not an option:
    it is a constructor argument of :class:`inferwatch.sink.Sink`, so no environment can switch it on.)"""

    model_config = SettingsConfigDict(env_prefix="INFERWATCH_SINK_", frozen=True, extra="ignore")

    group_id: str | None = Field(None, description=(
        "Kafka consumer group of the sink; unset: <topic prefix>inferwatch-sink (inferwatch.kafka.groups)."))
    batch_rows: int = Field(50_000, ge=1, description="Insert when this many messages are buffered ...")
    batch_ms: int = Field(1000, ge=1, description="... or when the oldest buffered message waited this long.")
    caught_up_rows: int = Field(
        5_000, ge=1, description="... or when a poll came back empty (read up to the end of the partitions) "
        "and at least this many are buffered: waiting out batch_ms would not make the batch any fuller.",
    )
    session_timeout_ms: int = Field(
        45_000, ge=1000, description="Kafka group session timeout: how soon a dead sink's partitions move on."
    )
    retry_initial_s: float = Field(0.2, gt=0, description="First back-off after a failed insert.")
    retry_max_s: float = Field(10.0, gt=0, description="Longest back-off between insert attempts.")


def sink_group_id(settings: Settings, options: SinkSettings) -> str:
    """The sink's consumer group: ``options.group_id`` when set, else the deployment's
    (``<topic prefix>inferwatch-sink``, :mod:`inferwatch.kafka.groups`)."""
    from inferwatch.kafka.groups import SINK, group_id

    return options.group_id or group_id(settings, SINK)
