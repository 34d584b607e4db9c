"""Names (model, version, feature and segment keys) follow the contract's full-match pattern: a
trailing newline, which Python's ``$`` would accept, is refused like pydantic refuses it."""

from __future__ import annotations

import orjson
import pydantic
import pytest

from inferwatch.contract.events import PredictionV1
from inferwatch.processor.core.raw_events import Raw, decode_feedback, decode_predictions


def ev(**over: object) -> dict:  # type: ignore[type-arg]
    e: dict = {"event_id": "e1", "prediction_id": "p1", "ts": 1000, "model": "m", "model_version": "1",  # type: ignore[type-arg]
               "outputs": {"label": "yes"}, "inputs": {"x": 1.0}, "segment": {"device": "d1"}}
    e.update(over)
    return e


@pytest.mark.parametrize("bad", [
    {"model": "m\n"}, {"model_version": "1\n"}, {"inputs": {"x\n": 1.0}}, {"segment": {"device\n": "d"}},
    {"model": "a b"}, {"model_version": "v" * 65}, {"model": ""},
    {"lineage": [{"model": "up\n", "model_version": "1"}]},
])
def test_invalid_names_are_rejected_like_the_contract(bad: dict) -> None:  # type: ignore[type-arg]
    raw = orjson.dumps(ev(**bad))
    with pytest.raises(pydantic.ValidationError):
        PredictionV1.model_validate_json(raw)
    good, rejected = decode_predictions([Raw(orjson.dumps(ev()), "p", 0, 0), Raw(raw, "p", 0, 1)])
    assert [r.offset for r, _ in good] == [0]
    assert [r.raw.offset for r in rejected] == [1] and rejected[0].reason


def test_valid_names_pass() -> None:
    raw = orjson.dumps(ev(model="team/model@eu+1", model_version="3.2.0-rc:1", inputs={"a.b_c": 1}))
    PredictionV1.model_validate_json(raw)
    good, rejected = decode_predictions([Raw(raw)])
    assert len(good) == 1 and not rejected


def test_feedback_model_trailing_newline_rejected() -> None:
    fb = {"event_id": "f1", "prediction_id": "p1", "ts": 1, "model": "m\n", "label": "yes"}
    good, rejected = decode_feedback([Raw(orjson.dumps(fb))])
    assert not good and len(rejected) == 1
