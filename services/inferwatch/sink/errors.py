"""Errors of the sink."""

from __future__ import annotations


class SinkError(RuntimeError):
    """The sink cannot go on (bad configuration, Kafka unusable)."""


class DeadletterDeliveryError(SinkError):
    """Dead letters could not be delivered to Kafka; the batch's offsets must not be committed.

    ``undelivered`` is how many of them Kafka refused or did not confirm."""

    def __init__(self, message: str, undelivered: int = 0) -> None:
        super().__init__(message)
        self.undelivered = undelivered
