"""Decoding, dead letters and column building of the sink (pure, no Kafka, no store)."""

from __future__ import annotations

import base64

import orjson
import pyarrow as pa
import pytest

from inferwatch.contract.events import PredictionV1
from inferwatch.sink.batch import RawMessage, process
from inferwatch.sink.contract_decode import Rejected, decode


def _pred(i: int, **over: object) -> dict[str, object]:
    ev: dict[str, object] = {
        "schema_version": "prediction.v1", "event_id": f"e{i}", "prediction_id": f"p{i}", "ts": 1_700_000_000_000 + i,
        "model": "photo-verifier", "model_version": "v3", "latency_ms": 12.5,
        "inputs": {"image_width": 4000, "is_front": True, "device": "phoneX", "missing": None},
        "outputs": {"label": "real", "score": 0.9, "probabilities": {"real": 0.9, "fake": 0.1}},
        "segment": {"device": "phoneX"}, "embedding": [0.1, 0.2],
        "llm": {"token_logprobs": [-0.5, -1.5], "output_tokens": 2, "completion": "abc"},
        "lineage": [{"kind": "embedding", "model": "enc", "model_version": "1", "share": 0.5}],
        "tags": {"region": "eu"},
    }
    ev.update(over)
    return ev


def _msg(off: int, ev: object) -> RawMessage:
    return RawMessage(off, b"photo-verifier", ev if isinstance(ev, bytes) else orjson.dumps(ev))


def test_valid_predictions_become_typed_rows() -> None:
    b = process("prediction.v1", "x.inferwatch.predictions", 3, [_msg(10, _pred(0)), _msg(11, _pred(1, error="e", outputs=None))])
    assert b.table == "predictions" and b.dead_letters == []
    assert b.dedup_token.startswith("x.inferwatch.predictions-3-10-11-")
    rows = b.rows.to_pylist()  # type: ignore[union-attr]
    r = rows[0]
    assert dict(r["inputs_num"]) == {"image_width": 4000.0, "is_front": 1.0}
    assert dict(r["inputs_cat"]) == {"device": "phoneX"} and r["inputs_null"] == ["missing"]
    assert r["output_label"] == "real" and dict(r["output_probabilities"]) == {"real": 0.9, "fake": 0.1}
    assert r["llm_logprob_mean"] == pytest.approx(-1.0) and r["llm_logprob_min"] == -1.5
    assert r["llm_completion_chars"] == 3
    assert r["lineage_model"] == ["enc"] and r["lineage_share"] == [0.5]
    assert r["kafka_offset"] == 10 and r["kafka_partition"] == 3
    assert rows[1]["output_label"] is None and rows[1]["error"] == "e" and rows[1]["kafka_offset"] == 11
    assert b.rows.schema.field("ts").type == pa.timestamp("ms", "UTC")  # type: ignore[union-attr]


def test_bad_messages_become_dead_letters_and_the_batch_goes_on() -> None:
    msgs = [_msg(0, _pred(0)), _msg(1, b"{not json"), _msg(2, _pred(2, outputs={"score": "high"})),
            _msg(3, {"schema_version": "feedback.v1"}), RawMessage(4, None, None), _msg(5, _pred(5))]
    b = process("prediction.v1", "t", 0, msgs)
    assert b.rows is not None and b.rows.column("event_id").to_pylist() == ["e0", "e5"]
    assert [d.source_offset for d in b.dead_letters] == [1, 2, 3, 4]
    d1, d2 = b.dead_letters[0], b.dead_letters[1]
    assert "JSON" in d1.reason and base64.b64decode(d1.payload_b64) == b"{not json"
    assert d2.error_path == "outputs.score" and d2.stage == "sink" and d2.expected_schema == "prediction.v1"
    assert d1.event_id == "dl:sink:t:0:1"  # deterministic: a replay produces the same dead letter (limits.deadletter_id)


def test_decode_agrees_with_the_pydantic_model() -> None:
    good = _pred(0)
    assert isinstance(decode("prediction.v1", orjson.dumps(good)), PredictionV1)
    bad = _pred(0, latency_ms=-1)
    assert isinstance(decode("prediction.v1", orjson.dumps(bad)), Rejected)
    with pytest.raises(ValueError):
        PredictionV1.model_validate(bad)


def test_invalid_dead_letters_are_stored_directly() -> None:
    b = process("deadletter.v1", "t.inferwatch.deadletter", 0, [_msg(7, b"\xff\xfe")])
    assert b.dead_letters == [] and b.table == "deadletter"
    assert b.rows is not None and b.rows.column("source_offset").to_pylist() == [7]


@pytest.mark.parametrize("schema", ["feedback.v1", "metric_snapshot.v1", "alert.v1", "deadletter.v1", "detection.v1"])
def test_every_schema_builds_from_its_examples(schema: str) -> None:
    from inferwatch.paths import schemas_dir

    name = schema.split(".")[0]
    files = sorted((schemas_dir() / "examples" / name).glob("valid*.json")) or sorted(
        (schemas_dir() / "examples" / name / "valid").glob("*.json"))
    assert files, f"no valid examples for {schema}"
    msgs = [RawMessage(i, None, f.read_bytes()) for i, f in enumerate(files)]
    b = process(schema, "t", 0, msgs)
    assert b.dead_letters == [] and b.rows is not None and b.rows.num_rows == len(files)


def test_numbers_the_table_cannot_hold_are_refused_by_the_contract() -> None:
    # The contract's bounds are the store's: a feature beyond a double and a token count beyond UInt32
    # are refused (naming the field), not accepted by the decoders and then lost at the insert.
    huge_input = orjson.dumps(_pred(1)).replace(b'"image_width":4000', b'"image_width":' + b"9" * 400)
    msgs = [_msg(0, _pred(0)), _msg(1, huge_input), _msg(2, _pred(2, llm={"output_tokens": 2**40})), _msg(3, _pred(3))]
    b = process("prediction.v1", "t", 0, msgs)
    assert b.rows is not None and b.rows.column("event_id").to_pylist() == ["e0", "e3"]
    assert [d.source_offset for d in b.dead_letters] == [1, 2]
    assert [d.error_path for d in b.dead_letters] == ["inputs.image_width", "llm.output_tokens"]


def test_dedup_token_tells_a_recreated_topic_from_a_replay() -> None:
    """The same offsets with other events (a topic deleted and re-created) get another token; the same
    messages again (a replay) get the same one, so the store drops only the replay."""
    first = process("prediction.v1", "t", 0, [_msg(0, _pred(0)), _msg(1, _pred(1))])
    replay = process("prediction.v1", "t", 0, [_msg(0, _pred(0)), _msg(1, _pred(1))])
    other = process("prediction.v1", "t", 0, [_msg(0, _pred(0, event_id="new-0")), _msg(1, _pred(1, event_id="new-1"))])
    assert first.dedup_token == replay.dedup_token
    assert other.dedup_token != first.dedup_token
    assert other.dedup_token.startswith("t-0-0-1-") and first.dedup_token.startswith("t-0-0-1-")


def test_detections_become_rows_and_malformed_ones_dead_letters() -> None:
    from inferwatch.paths import schemas_dir

    good = orjson.loads((schemas_dir() / "examples/detection/valid/new_segment_input_drift.json").read_bytes())
    half = {**good, "segment_value": None}  # a segment key without its value
    msgs = [_msg(0, good), _msg(1, half), _msg(2, {**good, "detector": "adwin"}), _msg(3, b"{"),
            _msg(4, {**good, "event_id": "d-2", "segment_key": None, "segment_value": None})]
    b = process("detection.v1", "t.inferwatch.detections", 1, msgs)
    assert b.table == "detections"
    assert [d.source_offset for d in b.dead_letters] == [1, 2, 3]
    assert [d.error_path for d in b.dead_letters] == [None, "detector", None]
    assert all(d.stage == "sink" and d.expected_schema == "detection.v1" for d in b.dead_letters)
    assert "both set or both null" in b.dead_letters[0].reason
    rows = b.rows.to_pylist()  # type: ignore[union-attr]
    assert [r["kafka_offset"] for r in rows] == [0, 4]
    assert rows[0]["segment_value"] == "pixel-9" and rows[0]["new_segment"] is True
    assert rows[0]["evidence_names"] == ["input.image_width", "input.image_height"]
    assert rows[0]["evidence_scores"] == [8.4, 7.9] and rows[0]["labels"] is None
    assert rows[1]["segment_key"] is None and rows[1]["segment_value"] is None
