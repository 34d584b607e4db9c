"""Consumer groups are named in one place, prefixed the same way for every service."""

from __future__ import annotations

from inferwatch.api.lag import service_groups
from inferwatch.config import Settings
from inferwatch.kafka.groups import group_id
from inferwatch.processor.topics import app_id
from inferwatch.sink.settings import SinkSettings, sink_group_id


def test_every_service_group_carries_the_deployment_prefix() -> None:
    s = Settings(topic_prefix="team-a.")
    groups = {svc: g for svc, g, _ in service_groups(s)}
    assert groups == {"processor": "team-a.inferwatch-processor", "sink": "team-a.inferwatch-sink",
                      "alerter": "team-a.inferwatch-alerter"}
    assert app_id(s) == group_id(s, "processor")
    # the sink itself uses the group status reports lag for (it used to be unprefixed: two
    # deployments on one cluster shared one sink group)
    assert sink_group_id(s, SinkSettings()) == "team-a.inferwatch-sink"
    assert sink_group_id(s, SinkSettings(group_id="mine")) == "mine"


def test_no_prefix_keeps_the_historical_names() -> None:
    s = Settings()
    assert [g for _, g, _ in service_groups(s)] == ["inferwatch-processor", "inferwatch-sink", "inferwatch-alerter"]
