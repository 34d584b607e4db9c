"""The topic registry is complete and consistent with the event contract."""

from __future__ import annotations

import pytest

from inferwatch.contract import EVENT_MODELS
from inferwatch.contract.topics import (
    ALERTER_STATE,
    ALL_TOPICS,
    ENVIRONMENT_VAR,
    FEEDBACK,
    INTERNAL_TOPICS,
    METRICS,
    PREDICTIONS,
    Replication,
    TopicSpec,
    load_registry,
    resolve_environment,
)


def test_registry_has_every_topic_with_a_known_schema() -> None:
    reg = load_registry()
    assert set(reg) == set(ALL_TOPICS)
    for spec in reg.values():
        assert spec.producers and spec.consumers
        if spec.name in INTERNAL_TOPICS:
            # a service's own state: no event schema, and the sink (which stores events) does not read it
            assert spec.schema_.startswith("internal:") and "sink" not in spec.consumers, spec.name
            assert spec.cleanup_policy == "compact" and spec.retention_ms == -1, spec.name
        else:
            assert spec.schema_ in EVENT_MODELS, f"{spec.name}: unknown schema {spec.schema_}"
            assert "sink" in spec.consumers, spec.name


def test_alerter_state_is_copartitioned_with_the_metrics_topic() -> None:
    # a record's partition is the metrics partition its state belongs to (issue #13)
    reg = load_registry()
    assert reg[ALERTER_STATE].partitions == reg[METRICS].partitions


def test_predictions_and_feedback_are_copartitioned() -> None:
    reg = load_registry()
    assert reg[PREDICTIONS].partitions == reg[FEEDBACK].partitions


# -- replication per Kafka environment (issue #13) ------------------------------------------------

_BASE = {
    "name": "inferwatch.example", "description": "d", "partitions": 1, "retention_ms": 1000,
    "key": "k", "schema": "prediction.v1", "producers": ["sdk"], "consumers": ["sink"],
}


def test_every_topic_has_one_replica_in_dev_and_survives_one_broker_loss_in_a_cluster() -> None:
    for spec in load_registry().values():
        assert spec.replication_for("dev") == Replication(factor=1, min_insync_replicas=1), spec.name
        assert spec.replication_for("cluster") == Replication(factor=3, min_insync_replicas=2), spec.name
        assert spec.topic_config("cluster")["min.insync.replicas"] == "2"
        assert spec.topic_config("dev")["min.insync.replicas"] == "1"


def test_processor_internal_topics_follow_the_registry_replication() -> None:
    from inferwatch.config import Settings
    from inferwatch.processor.settings import ProcessorSettings
    from inferwatch.processor.topics import processor_specs

    reg = load_registry()
    specs = processor_specs(Settings(topic_prefix="p."), ProcessorSettings())
    internal = [s for k, s in specs.items() if k not in reg]
    assert len(internal) == 4  # three changelogs and the references
    for spec in internal:
        assert spec.replication_for("cluster").factor == 3, spec.name
        assert spec.topic_config("cluster")["min.insync.replicas"] == "2", spec.name


@pytest.mark.parametrize(
    ("replication", "message"),
    [
        ({"dev": {"factor": 1, "min_insync_replicas": 2}, "cluster": {"factor": 3, "min_insync_replicas": 2}},
         "exceeds factor"),
        ({"dev": {"factor": 1, "min_insync_replicas": 1}}, "missing environment(s) cluster"),
        ({"dev": {"factor": 1, "min_insync_replicas": 1}, "cluster": {"factor": 3, "min_insync_replicas": 2},
          "prod": {"factor": 5, "min_insync_replicas": 3}}, "prod"),
        ({"dev": {"factor": 0, "min_insync_replicas": 1}, "cluster": {"factor": 3, "min_insync_replicas": 2}},
         "factor"),
        ({"dev": {"factor": 1, "min_insync_replicas": 1, "acks": "all"},
          "cluster": {"factor": 3, "min_insync_replicas": 2}}, "acks"),
    ],
)
def test_bad_replication_is_refused_with_its_reason(replication: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TopicSpec.model_validate({**_BASE, "replication": replication})


def test_min_insync_replicas_only_under_replication() -> None:
    with pytest.raises(ValueError, match="under replication"):
        TopicSpec.model_validate({**_BASE, "config": {"min.insync.replicas": "2"}})


def test_the_old_replication_factor_key_is_refused() -> None:
    with pytest.raises(ValueError, match="replication_factor"):
        TopicSpec.model_validate({**_BASE, "replication_factor": 3})


def test_environment_is_explicit_then_env_var_then_broker_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENVIRONMENT_VAR, raising=False)
    assert resolve_environment(1) == "dev"
    assert resolve_environment(2) == "dev"
    assert resolve_environment(3) == "cluster"
    assert resolve_environment(3, "dev") == "dev"
    monkeypatch.setenv(ENVIRONMENT_VAR, "cluster")
    assert resolve_environment(1) == "cluster"
    assert resolve_environment(1, "dev") == "dev"
    monkeypatch.setenv(ENVIRONMENT_VAR, "production")
    with pytest.raises(ValueError, match="INFERWATCH_KAFKA_ENVIRONMENT='production'"):
        resolve_environment(3)
    with pytest.raises(ValueError, match="must be one of dev, cluster"):
        resolve_environment(3, "prod")
