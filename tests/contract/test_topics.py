"""The topic registry is complete and consistent with the event contract."""

from __future__ import annotations

from inferwatch.contract import EVENT_MODELS
from inferwatch.contract.topics import ALL_TOPICS, FEEDBACK, PREDICTIONS, load_registry


def test_registry_has_every_topic_with_a_known_schema() -> None:
    reg = load_registry()
    assert set(reg) == set(ALL_TOPICS)
    for spec in reg.values():
        assert spec.schema_ in EVENT_MODELS, f"{spec.name}: unknown schema {spec.schema_}"
        assert spec.producers and spec.consumers


def test_predictions_and_feedback_are_copartitioned() -> None:
    reg = load_registry()
    assert reg[PREDICTIONS].partitions == reg[FEEDBACK].partitions
