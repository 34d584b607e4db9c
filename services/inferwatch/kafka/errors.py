"""Errors of the Kafka plumbing."""

from __future__ import annotations


class KafkaUnavailableError(RuntimeError):
    """The cluster could not be reached in time."""


class TopicApplyError(RuntimeError):
    """A topic could not be created or updated as the registry says."""
