"""librdkafka client settings built from :class:`inferwatch.config.Settings`."""

from __future__ import annotations

from typing import Any

from inferwatch.config import Settings


def base_config(settings: Settings) -> dict[str, Any]:
    """Bootstrap plus the security settings (SASL/SSL) every client needs."""
    conf: dict[str, Any] = {"bootstrap.servers": settings.kafka_bootstrap}
    conf.update(settings.kafka_security)
    return conf
