"""Configuration shared by every service: frozen settings read from ``INFERWATCH_*`` env vars."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from inferwatch.contract import topics as _t


class Settings(BaseSettings):
    """Settings common to all hops. Each field can be set by ``INFERWATCH_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="INFERWATCH_", frozen=True, extra="ignore")

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers.")
    topic_prefix: str = Field("", description="Prefix of every topic name (isolates deployments/tests).")
    kafka_security: dict[str, str] = Field(
        default_factory=dict,
        description="Extra librdkafka settings (security.protocol, sasl.*, ssl.*), JSON in the env var.",
    )
    clickhouse_url: str | None = Field(None, description="ClickHouse server URL; unset = embedded chDB.")
    clickhouse_user: str = "default"
    clickhouse_password: str = ""
    clickhouse_database: str = "inferwatch"
    data_dir: Path = Field(Path(".inferwatch"), description="Local state: chDB store, rocksdb tables, alerter state.")
    api_host: str = "127.0.0.1"
    api_port: int = 8787
    api_token: str | None = Field(None, description="Bearer token required by the HTTP API (not /healthz).")

    def topic(self, name: str) -> str:
        """The full name of registry topic ``name`` (e.g. ``inferwatch.predictions``)."""
        return _t.topic(name, self.topic_prefix)

    @property
    def predictions_topic(self) -> str:
        return self.topic(_t.PREDICTIONS)

    @property
    def feedback_topic(self) -> str:
        return self.topic(_t.FEEDBACK)

    @property
    def metrics_topic(self) -> str:
        return self.topic(_t.METRICS)

    @property
    def alerts_topic(self) -> str:
        return self.topic(_t.ALERTS)

    @property
    def deadletter_topic(self) -> str:
        return self.topic(_t.DEADLETTER)
