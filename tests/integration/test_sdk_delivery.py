"""The SDK against the real broker: exactly-once consumption of 100k events, and bad calls.

Each test uses its own topic prefix on the session broker (fixture ``settings``).
"""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from inferwatch import InferenceLogger
from inferwatch.config import Settings
from inferwatch.contract.events import FeedbackV1, PredictionV1
from inferwatch.sdk.errors import EventValidationError
from tests.support.kafka import consume_all

pytestmark = pytest.mark.integration


def test_100k_events_are_consumed_back_exactly_once(settings: Settings, tmp_path: Any) -> None:
    n = 100_000
    sent: set[str] = set()
    with InferenceLogger("photo-verifier", "3.2.0", settings=settings, spool_dir=tmp_path / "spool") as log:
        for i in range(n):
            sent.add(log.prediction(
                inputs={"image_width": 4032 + i % 7, "image_height": 3024, "device": "pixel-9"},
                outputs={"label": "genuine", "score": 0.93}, latency_ms=12.5,
                segment={"device": "pixel-9", "app_version": "8.1"},
            ))
        assert log.flush(60)
        stats = log.stats()
    assert stats["logged"] == n and stats["dropped"] == 0
    msgs = consume_all(settings.kafka_bootstrap, settings.predictions_topic, n, timeout_s=120)
    ids = [orjson.loads(m.value())["event_id"] for m in msgs]
    assert len(ids) == n
    assert set(ids) == sent
    assert {m.key() for m in msgs} == {b"photo-verifier"}
    PredictionV1.model_validate_json(msgs[0].value())


# -- hypothesis: bad types raise ValueError naming the field; nothing bad reaches the topic ------

names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
good_scalar = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**63), 2**63 - 1), st.booleans(),
    st.integers(2**64, 2**1000),  # beyond 64 bits: sent as the double the contract reads (contract/limits.py)
    st.text(max_size=20), st.none(),
)
good_inputs = st.dictionaries(names, good_scalar, max_size=8)
good_outputs = st.fixed_dictionaries({}, optional={
    "label": st.text(max_size=20), "score": st.floats(allow_nan=False, allow_infinity=False),
    "value": st.floats(-1e6, 1e6),
    "probabilities": st.dictionaries(st.text(max_size=5), st.floats(0.0, 1.0), max_size=3),
}).filter(lambda d: bool(d))
good_segment = st.dictionaries(names, st.text(max_size=20), max_size=4)
bad_scalar = st.one_of(
    st.just(math.nan), st.just(math.inf), st.just(-math.inf), st.lists(st.integers(), max_size=2),
    st.dictionaries(names, st.integers(), max_size=1), st.binary(max_size=3), st.text(min_size=257, max_size=300),
    st.integers(min_value=2**1024), st.just(object()),  # beyond a double's range
)
bad_name = st.one_of(st.just(""), st.just("has space"), st.just("é"), st.integers(), st.text(min_size=129, max_size=130, alphabet="a"))


@st.composite
def calls(draw: st.DrawFn) -> tuple[str | None, dict[str, Any]]:
    kwargs: dict[str, Any] = {"inputs": draw(good_inputs), "outputs": draw(good_outputs),
                              "segment": draw(good_segment), "latency_ms": draw(st.floats(0, 1e4))}
    bad = draw(st.sampled_from([None, "inputs", "outputs", "segment", "latency_ms", "embedding"]))
    if bad == "inputs":
        if draw(st.booleans()):
            kwargs["inputs"] = {**kwargs["inputs"], "bad_feature": draw(bad_scalar)}
        else:
            kwargs["inputs"] = {**kwargs["inputs"], draw(bad_name): 1.0}
    elif bad == "outputs":
        kwargs["outputs"] = draw(st.one_of(
            st.just({}), st.just({"lbl": "x"}), st.just({"score": math.nan}), st.just({"label": 3}),
            st.just({"probabilities": {"a": 1.5}}), st.just("genuine"), st.just({"score": "high"}),
        ))
    elif bad == "segment":
        kwargs["segment"] = draw(st.one_of(
            st.just({"device": 9}), st.just({"has space": "x"}), st.just(["device"]),
            st.just({"device": "x" * 300}),
        ))
    elif bad == "latency_ms":
        kwargs["latency_ms"] = draw(st.one_of(st.just(-1.0), st.just(math.nan), st.just("12"), st.just([1.0])))
    elif bad == "embedding":
        kwargs["embedding"] = draw(st.one_of(st.just([]), st.just([1.0, math.nan]), st.just("vec"), st.just([[1.0]])))
    return bad, kwargs


def test_bad_calls_raise_naming_the_field_and_nothing_bad_reaches_the_topic(settings: Settings, tmp_path: Any) -> None:
    log = InferenceLogger("m", "1", settings=settings, spool_dir=tmp_path / "spool")
    accepted: set[str] = set()

    @hsettings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(calls())
    def check(case: tuple[str | None, dict[str, Any]]) -> None:
        bad, kwargs = case
        if bad is None:
            accepted.add(log.prediction(**kwargs))
            return
        with pytest.raises(ValueError) as exc_info:
            log.prediction(**kwargs)
        err = exc_info.value
        assert isinstance(err, EventValidationError)
        assert err.field.split(".")[0].split("[")[0] == bad, str(err)
        assert str(err).startswith(err.field)

    check()
    fb = log.feedback(next(iter(accepted)), label="fake")
    assert log.flush(30)
    log.close()
    msgs = consume_all(settings.kafka_bootstrap, settings.predictions_topic, len(accepted), timeout_s=60)
    assert len(msgs) == len(accepted)
    for m in msgs:
        PredictionV1.model_validate_json(m.value())  # what the fast path accepted, the contract accepts
    assert {orjson.loads(m.value())["prediction_id"] for m in msgs} == accepted
    fmsgs = consume_all(settings.kafka_bootstrap, settings.feedback_topic, 1, timeout_s=30)
    assert FeedbackV1.model_validate_json(fmsgs[0].value()).event_id == fb
