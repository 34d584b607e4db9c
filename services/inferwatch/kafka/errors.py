"""Errors of the Kafka plumbing."""

from __future__ import annotations


class KafkaUnavailableError(RuntimeError):
    """The cluster could not be reached in time."""


class TopicApplyError(RuntimeError):
    """A topic could not be created or updated as the registry says."""


class KafkaConfigError(ValueError):
    """The Kafka client settings (``INFERWATCH_KAFKA_SECURITY``) cannot be applied; the message names the option."""
