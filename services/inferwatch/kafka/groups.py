"""Every Kafka consumer group of Inferwatch, named in one place.

A deployment's groups carry its topic prefix the same way for every service
(``<prefix>inferwatch-<service>``), so two deployments sharing a cluster never share a group, and
``inferwatch status`` finds each service's lag by the same rule the service uses.
"""

from __future__ import annotations

from inferwatch.config import Settings

PROCESSOR = "processor"
SINK = "sink"
ALERTER = "alerter"
PROCESSOR_REFERENCES = "processor-refs"
"""The processor's reader of the references topic (it assigns partitions itself and commits nothing)."""
ALERTER_STATE_RESTORE = "alerter-restore"
"""The alerter's reader of its state changelog on assignment (it assigns partitions itself, commits nothing)."""
ALERTER_SILENCES = "alerter-silences"
"""Every alerter's reader of the silences topic (it reads the whole topic itself, commits nothing)."""


def group_id(settings: Settings, service: str) -> str:
    """The consumer group of ``service`` in the deployment of ``settings``."""
    return f"{settings.topic_prefix}inferwatch-{service}"
