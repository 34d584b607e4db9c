"""The flat fast path of ``prediction.v1`` builds exactly the rows and dead letters of the exact path.

:func:`inferwatch.sink.batch.process` decodes a predictions batch into flat columns
(:func:`inferwatch.native.prediction_columns.decode_predictions`) and builds the table from them
(:mod:`inferwatch.sink.prediction_table`), sending only the messages the fast decoder refuses through the exact
path (msgspec structs / pydantic, :func:`inferwatch.sink.batch._exact`). For the same messages the
result must equal what the exact path alone gives: the same Arrow table (values, types, row order)
and the same dead letters. Checked with the compiled decoder (when built) and its Python twin, on
the schema examples and on generated batches mixing valid, invalid and refused events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inferwatch.native import load
from inferwatch.native.prediction_columns import decode_predictions, decode_predictions_py
from inferwatch.paths import schemas_dir
from inferwatch.sink import batch, prediction_table
from inferwatch.sink.batch import RawMessage, process
from tests.unit.sink.strategies import PLAIN_PREDICTION, PREDICTION, mutated

MIXED = st.one_of(PLAIN_PREDICTION.map(orjson.dumps), mutated(PLAIN_PREDICTION), mutated(PREDICTION))
"""Messages: valid plain events (the fast path's), plain ones maybe mutated, any prediction maybe mutated."""
EXAMPLES = sorted((schemas_dir() / "examples" / "prediction").glob("*/*.json"))
DECODERS: dict[str, Callable[..., Any]] = {"python": decode_predictions_py}
if load("_decode") is not None:
    DECODERS["compiled"] = decode_predictions


@pytest.fixture(params=sorted(DECODERS))
def decoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test with each available flat decoder."""
    monkeypatch.setattr(batch, "decode_predictions", DECODERS[request.param])
    yield request.param


def _msgs(raws: Sequence[bytes | None], first: int = 100) -> list[RawMessage]:
    return [RawMessage(first + 3 * i, b"k" if i % 2 else None, r) for i, r in enumerate(raws)]


def _dl(d: Any) -> dict[str, Any]:
    return d.model_dump(exclude={"ts"})  # ts: when the dead letter was made


def _same(raws: Sequence[bytes | None]) -> None:
    """process() == the exact path, for the messages ``raws``."""
    msgs = _msgs(raws)
    got = process("prediction.v1", "t.p", 2, msgs)
    want_rows, want_dls = batch._exact("prediction.v1", "t.p", 2, msgs)
    assert [_dl(d) for d in got.dead_letters] == [_dl(d) for d in want_dls]
    if want_rows is None or not want_rows.num_rows:
        assert got.rows is None or not got.rows.num_rows
        return
    assert got.rows is not None
    assert got.rows.schema.equals(want_rows.schema), (got.rows.schema, want_rows.schema)
    for name in want_rows.column_names:
        assert got.rows[name].equals(want_rows[name]), (name, got.rows[name], want_rows[name])
    assert got.rows.equals(want_rows)


def test_every_example_file_alone_and_together(decoder: str) -> None:
    raws = [p.read_bytes() for p in EXAMPLES]
    for r in raws:
        _same([r])
    _same(raws + [None, b"", b"{", b"\xff\xfe", b"[]", b"null"] + raws[::-1])


def test_valid_plain_examples_take_the_fast_path(decoder: str) -> None:
    plain = [p.read_bytes() for p in EXAMPLES if p.parts[-2] == "valid"
             and not any(k in orjson.loads(p.read_bytes()) for k in ("embedding", "llm", "lineage"))]
    assert plain
    assert DECODERS[decoder](plain).ok.all()


def _event(i: int, **over: object) -> dict[str, object]:
    ev: dict[str, object] = {
        "event_id": f"e{i}", "prediction_id": f"p{i}", "ts": 1_700_000_000_000 + i, "model": f"m{i % 3}",
        "model_version": "v1", "latency_ms": float(i % 7),
        "inputs": {"w": i, "h": i / 3, "front": i % 2 == 0, "device": f"d{i % 4}", "gone": None},
        "outputs": {"label": "cat" if i % 3 else "dog", "score": 0.5, "probabilities": {"cat": 0.5, "dog": 0.5}},
        "segment": {"device": f"d{i % 4}"}, "tags": {"r": "eu"} if i % 5 else {},
    }
    ev.update(over)
    return ev


def test_a_large_batch_with_refused_and_invalid_messages_in_between(decoder: str) -> None:
    raws: list[bytes | None] = [orjson.dumps(_event(i)) for i in range(300)]
    raws[5] = orjson.dumps(_event(5, embedding=[0.5, 1.0]))  # valid, refused by the fast decoder
    raws[17] = orjson.dumps(_event(17, latency_ms=-1.0))  # invalid
    raws[18] = orjson.dumps(_event(18, outputs=None, error="timeout", inputs={}))
    raws[40] = orjson.dumps(_event(40, llm={"output_tokens": 3}))
    raws[41] = b"{not json"
    raws[299] = None
    _same(raws)
    got = process("prediction.v1", "t", 0, _msgs(raws, 0))
    assert got.rows is not None and got.rows.num_rows == 300 - 3
    assert got.rows.column("kafka_offset").to_pylist() == [3 * i for i in range(300) if i not in (17, 41, 299)]


def test_only_refused_or_only_invalid(decoder: str) -> None:
    _same([orjson.dumps(_event(i, embedding=[1.0])) for i in range(3)])
    _same([orjson.dumps(_event(i, ts=-1)) for i in range(3)])
    _same([orjson.dumps(_event(0)), orjson.dumps(_event(1, ts=-1))])


def test_flat_table_has_one_row_per_message() -> None:
    raws = [orjson.dumps(_event(i)) for i in range(4)] + [b"{"]
    cols = decode_predictions(raws)
    t = prediction_table.predictions(cols, "t", 1, np.arange(5))
    assert t.num_rows == 5 and t.column("event_id").to_pylist() == ["e0", "e1", "e2", "e3", None]
    assert dict(t.column("inputs_num")[0].as_py()) == {"w": 0.0, "h": 0.0, "front": 1.0}
    assert t.column("inputs_null")[1].as_py() == ["gone"]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(MIXED,
                min_size=1, max_size=8))
def test_generated_batches(decoder: str, raws: list[bytes]) -> None:
    _same(raws)


def test_the_generated_batches_reach_both_paths() -> None:
    """Guard against a vacuous property: generated messages are both accepted and refused by the fast decoder."""
    seen = {"fast": 0, "refused": 0}

    @settings(max_examples=100, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(MIXED)
    def run(raw: bytes) -> None:
        seen["fast" if decode_predictions([raw]).ok[0] else "refused"] += 1

    run()
    assert seen["fast"] > 30 and seen["refused"] > 10, seen


