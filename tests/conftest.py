"""Fixtures shared by every suite: a real Kafka broker for the session and a fresh namespace per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from inferwatch.config import Settings
from tests.support.kafka import KafkaNotAvailable, new_prefix, real_kafka


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The bootstrap address of a real Kafka broker (see tests/support/kafka.py)."""
    try:
        with real_kafka(tmp_path_factory.mktemp("kafka")) as bootstrap:
            yield bootstrap
    except KafkaNotAvailable as exc:
        pytest.fail(f"real Kafka is required: {exc}", pytrace=False)


@pytest.fixture
def settings(kafka_bootstrap: str, tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    """Settings for one test: the session broker, its own topic prefix (topics applied), its own data dir."""
    from inferwatch.kafka.admin import apply_topics

    s = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=new_prefix(), data_dir=tmp_path / "data")
    apply_topics(s)
    return s


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests marked ``slow`` (minutes each) after all the others, so a quick failure shows first."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is not None)  # stable: the rest keep their order
