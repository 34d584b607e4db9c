"""Shared pieces of the alerter's integration tests: a rule file, snapshots, producing them, a configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from inferwatch.alerter.route.routing import parse_config
from inferwatch.config import Settings

RULES = """
rules:
  - name: errors
    metric: error_rate
    match: {segments: whole, min_count: 10}
    condition: value > 0.1
    severity: critical
    annotations: {summary: "{{ model }} error rate {{ value | round(2) }}"}
"""
T0 = 1_764_140_000_000


def write_rules(directory: Path) -> Path:
    """:data:`RULES` written to ``directory/rules.yaml``."""
    p = directory / "rules.yaml"
    p.write_text(RULES)
    return p


def snapshot(model: str, i: int, error_rate: float) -> bytes:
    """The ``i``-th one-minute ``metric_snapshot.v1`` of ``model`` (version 1) with ``error_rate``."""
    return orjson.dumps({
        "schema_version": "metric_snapshot.v1", "event_id": f"{model}-{i}", "ts": T0 + (i + 1) * 60_000,
        "model": model, "model_version": "1", "window_start": T0 + i * 60_000, "window_end": T0 + (i + 1) * 60_000,
        "window_s": 60, "count": 100, "metrics": {"error_rate": error_rate}, "reference": {"error_rate": 0.0},
    })


def produce(settings: Settings, msgs: list[tuple[str, bytes]]) -> None:
    """Produce ``(key, value)`` pairs to the metrics topic and wait for them."""
    p = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    for key, value in msgs:
        p.produce(settings.metrics_topic, value, key=key.encode())
    assert p.flush(30) == 0


def config(receivers: list[dict[str, Any]], routes: list[dict[str, Any]] | None = None, http_port: int = 0,
           backoff_max_s: float = 2) -> Any:
    """An alerter configuration for tests: start from the earliest snapshot, no group wait, fast retries."""
    return parse_config({
        "http": {"port": http_port}, "start_from": "earliest",
        "delivery": {"backoff_initial_s": 0.05, "backoff_max_s": backoff_max_s, "timeout_s": 2},
        "route": {"receiver": receivers[0]["name"], "group_by": ["model"], "group_wait": 0, "group_interval": "1s",
                  "repeat_interval": "1h", "routes": routes or []},
        "receivers": receivers,
    })
