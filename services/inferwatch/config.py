"""Configuration shared by every service: frozen settings read from ``INFERWATCH_*`` env vars."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from inferwatch.contract import topics as _t


class SettingsError(Exception):
    """A configuration error shown as one line (the CLI prints it and exits 1).

    Not a ``ValueError`` on purpose: pydantic passes it through instead of wrapping it in a
    multi-line ``ValidationError``.
    """


class Settings(BaseSettings):
    """Settings common to all hops. Each field can be set by ``INFERWATCH_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="INFERWATCH_", frozen=True, extra="ignore")

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers.")
    topic_prefix: str = Field("", description="Prefix of every topic name (isolates deployments/tests).")
    kafka_security: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Security settings of every Kafka client, JSON in the env var, librdkafka's names "
            "(security.protocol, sasl.mechanism, sasl.username, sasl.password, ssl.ca.location, ...); "
            "the processor's aiokafka clients get the same (inferwatch.kafka.clientconf)."
        ),
    )
    redaction_salt: SecretStr | None = Field(None, description=(
        "Key of the SDK's redaction hashes (at least 16 bytes); unset = a random one kept in "
        "<data_dir>/redaction.salt, made on first use. Model servers whose hashes must match share it."))
    clickhouse_url: str | None = Field(None, description="ClickHouse server URL; unset = embedded chDB.")
    clickhouse_user: str = "default"
    clickhouse_password: str = Field("", repr=False)
    clickhouse_database: str = "inferwatch"
    data_dir: Path = Field(Path(".inferwatch"), description="Local state: chDB store, rocksdb tables, alerter state.")
    api_host: str = "127.0.0.1"
    api_port: int = 8787
    # repr=False: a Settings printed in a log or a traceback does not show the token
    api_token: str | None = Field(None, repr=False, description="Bearer token required by every HTTP route but /healthz.")
    api_token_file: Path | None = Field(
        None, description="File holding the API token (read once at start, trailing newline stripped)."
    )

    @model_validator(mode="after")
    def _resolve_api_token(self) -> Settings:
        if self.api_token_file is not None:
            if self.api_token is not None:
                raise SettingsError("set INFERWATCH_API_TOKEN or INFERWATCH_API_TOKEN_FILE, not both")
            # frozen model: the file's content becomes api_token once, here, for every reader
            object.__setattr__(self, "api_token", read_token_file(self.api_token_file))
        elif self.api_token is not None:
            _check_token(self.api_token, "INFERWATCH_API_TOKEN")
        return self

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        # credentials never reach a log line or a traceback: DSN passwords and Kafka secrets masked
        from inferwatch.redact import redact_config, redact_dsn

        for name, value in super().__repr_args__():
            if name == "kafka_security" and isinstance(value, dict):
                value = redact_config(value)
            elif name == "clickhouse_url" and isinstance(value, str):
                value = redact_dsn(value)
            yield name, value

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

    @property
    def detections_topic(self) -> str:
        return self.topic(_t.DETECTIONS)


def _check_token(token: str, source: str) -> str:
    if not token:
        raise SettingsError(f"{source} is empty: give a token, or unset it (loopback-only servers need none)")
    if any(not (0x21 <= ord(c) <= 0x7E) for c in token):
        # a header carries printable ASCII without spaces; another token could never match
        raise SettingsError(f"{source}: the token must be printable ASCII without spaces")
    return token


def read_token_file(path: Path) -> str:
    """The token in ``path`` without its trailing newline; :class:`SettingsError` if unreadable or empty."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"INFERWATCH_API_TOKEN_FILE {path}: cannot read the token: {exc}") from None
    return _check_token(text.rstrip("\r\n"), f"INFERWATCH_API_TOKEN_FILE {path}")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only reaches this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere, so it counts as reachable


def check_bind(host: str, token: str | None, service: str) -> None:
    """Refuse (:class:`SettingsError`) to serve HTTP on a non-loopback ``host`` without a token."""
    if token is None and not is_loopback(host):
        raise SettingsError(
            f"{service}: refusing to listen on {host} without a token; set INFERWATCH_API_TOKEN "
            "or INFERWATCH_API_TOKEN_FILE, or listen on 127.0.0.1"
        )
