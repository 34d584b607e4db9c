"""librdkafka settings of the SDK's producers, and why each default is what it is.

Precedence: these defaults < ``Settings.kafka_security`` (SASL/SSL) < the caller's
``producer_config``. Keys are librdkafka's (``security.protocol``, ``sasl.mechanism``, ...).
"""

from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, Any] = {
    # No duplicates from retries, in-order per partition, all in-sync replicas ack.
    "enable.idempotence": True,
    "acks": "all",
    # lz4: cheapest CPU per byte of the codecs aiokafka (the processor) reads with cramjam.
    "compression.type": "lz4",
    # Large batches amortise per-request cost; 10 ms of linger costs a model server nothing.
    "linger.ms": 10,
    "batch.size": 1_000_000,
    "batch.num.messages": 10_000,
    # Bounded memory whatever the broker does: beyond this, produce() raises BufferError and the
    # SDK spools the event to disk instead.
    "queue.buffering.max.messages": 200_000,
    "queue.buffering.max.kbytes": 32_768,
    # An unreachable broker turns queued events into delivery failures (→ spool) within 30 s.
    "message.timeout.ms": 30_000,
    # Only failures come back to Python: success reports would cost a callback per event.
    "delivery.report.only.error": True,
    "socket.keepalive.enable": True,
}

REPLAY_OVERRIDES: dict[str, Any] = {
    # The replayer needs every report (success tells it the broker is back) and a short timeout
    # so a probe while the broker is still away fails fast.
    "delivery.report.only.error": False,
    "message.timeout.ms": 10_000,
    "queue.buffering.max.kbytes": 16_384,
}


def producer_config(
    bootstrap: str, security: dict[str, Any] | None, overrides: dict[str, Any] | None, client_id: str
) -> dict[str, Any]:
    """The main producer's configuration."""
    conf = dict(DEFAULTS)
    conf["bootstrap.servers"] = bootstrap
    conf["client.id"] = client_id
    conf.update(security or {})
    conf.update(overrides or {})
    return conf


def replay_config(main: dict[str, Any], replay_timeout_ms: int | None = None) -> dict[str, Any]:
    """The replay producer's configuration: the main one with full delivery reports."""
    conf = {k: v for k, v in main.items() if k not in ("on_delivery", "error_cb", "logger")}
    conf.update(REPLAY_OVERRIDES)
    if replay_timeout_ms is not None:
        conf["message.timeout.ms"] = replay_timeout_ms
    conf["client.id"] = f"{main.get('client.id', 'inferwatch-sdk')}-replay"
    return conf
