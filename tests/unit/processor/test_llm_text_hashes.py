"""Inconsistency from plain prompt/completion text: a caller that logs the text but no hashes (the
SDK's default without redaction) still gets ``llm.inconsistency_rate``; given hashes win."""

from __future__ import annotations

import orjson

from inferwatch.processor.core.event_arrays import llm_columns
from inferwatch.processor.core.raw_events import Raw, decode_predictions


def _events(llms: list[dict]) -> list:  # type: ignore[type-arg]
    raws = []
    for i, llm in enumerate(llms):
        ev = {"schema_version": "prediction.v1", "event_id": f"e{i}", "prediction_id": f"p{i}", "ts": 1_000 + i,
              "model": "m", "model_version": "1", "outputs": {"label": "A"}, "llm": llm}
        raws.append(Raw(orjson.dumps(ev), "t", 0, i, b"m"))
    good, bad = decode_predictions(raws)
    assert not bad
    return [e for _, e in good]


def test_text_is_hashed_when_no_hash_is_given() -> None:
    cols = llm_columns(_events([{"prompt": "grade essay 1", "completion": "B"},
                                {"prompt": "grade essay 1", "completion": "C"},
                                {"prompt": "grade essay 2", "completion": "B"}]), [])
    assert cols is not None
    assert cols.prompt_hash[0] == cols.prompt_hash[1] != cols.prompt_hash[2]
    assert cols.completion_hash[0] != cols.completion_hash[1]
    assert cols.completion_hash[0] == cols.completion_hash[2]


def test_given_hashes_win() -> None:
    cols = llm_columns(_events([{"prompt": "x", "prompt_hash": "h1", "completion": "y"}]), [])
    assert cols is not None and cols.prompt_hash[0] == "h1" and cols.completion_hash[0] is not None
    none = llm_columns(_events([{"completion_chars": 3}]), [])
    assert none is not None and none.prompt_hash[0] is None
