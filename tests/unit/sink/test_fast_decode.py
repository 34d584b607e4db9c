"""The sink's msgspec fast path accepts and rejects exactly like the contract's pydantic models.

``decode_many`` (msgspec first, pydantic for what msgspec refuses) must give, for every message,
what ``decode`` (pydantic only) gives: the same event data and the same stored row, or the same
rejection reason. Checked on every example file of every schema and on generated events, valid
ones and mutated ones (wrong types, bounds, name patterns, lengths, JSON oddities).
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inferwatch.contract.events import EVENT_MODELS
from inferwatch.contract.structs import STRUCTS
from inferwatch.paths import schemas_dir
from inferwatch.sink import arrow_tables
from inferwatch.sink.contract_decode import Rejected, decode, decode_many
from tests.unit.sink.strategies import FEEDBACK, PREDICTION, mutated

EXAMPLES = sorted((schemas_dir() / "examples").glob("*/*/*.json"))
SCHEMA_OF = {name.split(".")[0]: name for name in EVENT_MODELS}


def _same(schema: str, raws: list[bytes | None]) -> int:
    """Assert decode_many == decode message by message; return how many went through msgspec."""
    fast = decode_many(schema, raws)
    fast_hits = 0
    for raw, got in zip(raws, fast, strict=True):
        want = decode(schema, raw)
        if isinstance(want, Rejected):
            assert got == want, raw
            continue
        assert not isinstance(got, Rejected), (raw, got)
        if isinstance(got, msgspec.Struct):
            fast_hits += 1
            assert msgspec.to_builtins(got) == want.model_dump(mode="json"), raw
        k = arrow_tables.Kafka("t", 0, [0])
        assert arrow_tables.build(schema, [got], k)[1].equals(arrow_tables.build(schema, [want], k)[1]), raw
    return fast_hits


def test_struct_fields_mirror_the_contract() -> None:
    for schema, struct in STRUCTS.items():
        assert set(struct.__struct_fields__) == set(EVENT_MODELS[schema].model_fields), schema


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: "/".join(p.parts[-3:]))
def test_every_example_file(path: Path) -> None:
    schema = SCHEMA_OF[path.parts[-3]]
    hits = _same(schema, [path.read_bytes()])
    if schema in STRUCTS and path.parts[-2] == "valid":
        assert hits == 1, "a valid example should take the fast path"


def test_batches_mixing_good_and_bad_keep_order() -> None:
    for schema in STRUCTS:
        name = schema.split(".")[0]
        raws: list[bytes | None] = [p.read_bytes() for p in EXAMPLES if p.parts[-3] == name]
        raws += [None, b"", b"{", b"\xff\xfe", b'"\\ud800"', b"[]", b"null", b"1e400"]
        _same(schema, raws * 2)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated(PREDICTION), min_size=1, max_size=6))
def test_generated_predictions(raws: list[bytes]) -> None:
    _same("prediction.v1", list(raws))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated(FEEDBACK), min_size=1, max_size=6))
def test_generated_feedback(raws: list[bytes]) -> None:
    _same("feedback.v1", list(raws))


def test_the_generators_reach_both_outcomes() -> None:
    """Guard against a vacuous property: generated events both take the fast path and get rejected."""
    seen = {"fast": 0, "pydantic": 0, "rejected": 0}

    @settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(mutated(PREDICTION))
    def run(raw: bytes) -> None:
        got = decode_many("prediction.v1", [raw])[0]
        kind = "fast" if isinstance(got, msgspec.Struct) else "rejected" if isinstance(got, Rejected) else "pydantic"
        seen[kind] += 1

    run()
    assert seen["fast"] > 5 and seen["rejected"] > 5 and seen["pydantic"] > 0, seen
