"""The sink's msgspec fast path accepts and rejects exactly like the contract's pydantic models.

``decode_many`` (msgspec first, pydantic for what msgspec refuses) must give, for every message,
what ``decode`` (pydantic only) gives: the same event data and the same stored row, or the same
rejection reason. Checked on every example file of every schema and on generated events, valid
ones and mutated ones (wrong types, bounds, name patterns, lengths, JSON oddities).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inferwatch.contract.events import EVENT_MODELS
from inferwatch.paths import schemas_dir
from inferwatch.sink import columns
from inferwatch.sink.decode import Rejected, decode, decode_many
from inferwatch.sink.structs import STRUCTS

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
        k = columns.Kafka("t", 0, [0])
        assert columns.build(schema, [got], k)[1].equals(columns.build(schema, [want], k)[1]), raw
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


# -- generated events ---------------------------------------------------------------------------
# Valid events, then at most one mutation: a field (top level or nested) replaced by an odd value
# (at and beyond every boundary, wrong types) or dropped, a bad map key, and several encodings.

NAMES = st.from_regex(r"\A[A-Za-z0-9_.:/@+-]{1,12}\Z")
TEXT = st.text(max_size=8)
IDS = st.text(min_size=1, max_size=10)
FLOATS = st.floats(-1e6, 1e6)
INTS = st.integers(0, 10**6)
UNIT = st.floats(0.0, 1.0)
LOGPROB = st.floats(-50.0, 0.0)
FEATURE = st.one_of(st.none(), st.booleans(), INTS, FLOATS, TEXT)
ODD = st.one_of(
    st.sampled_from(["", "a b", "m\n", "é", "x" * 64, "x" * 65, "x" * 128, "x" * 129, "s" * 256, "s" * 257,
                     "é" * 257, "\u2028", "😀", "5", "1.5", "true", "null", "prediction.v1", "feedback.v1"]),
    st.sampled_from([None, True, False, 0, -1, 1, 2, 1.5, -0.0, -1e-300, 1e308, -1e308, 1.01, 0.1,
                     2**31, 2**32, 2**63, 2**64, 10**20, -(2**63) - 1, 32503680000000, 32503680000001]),
    # deepcopy: a mutation must never change the shared sample (hypothesis replays draws)
    st.sampled_from([[], {}, [1.0], [0.5, -0.5], {"a": 1}, [[-1.0]], {"label": "x"}]).map(copy.deepcopy),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=4))


def _maybe(s: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), s)


OUTPUTS = st.fixed_dictionaries({"label": TEXT}, optional={
    "score": _maybe(FLOATS), "probabilities": _maybe(st.dictionaries(TEXT, UNIT, max_size=3)),
    "value": _maybe(FLOATS)})
LLM = st.fixed_dictionaries({}, optional={
    "prompt": _maybe(TEXT), "completion": _maybe(TEXT), "prompt_hash": _maybe(IDS), "completion_hash": _maybe(IDS),
    "completion_chars": _maybe(INTS), "refusal": _maybe(st.booleans()), "input_tokens": _maybe(INTS),
    "output_tokens": _maybe(INTS), "finish_reason": _maybe(TEXT),
    "token_logprobs": _maybe(st.lists(LOGPROB, max_size=4)),
    "top_logprobs": _maybe(st.lists(st.lists(LOGPROB, max_size=2), max_size=2))})
LINEAGE = st.lists(st.fixed_dictionaries(
    {"model": NAMES, "model_version": NAMES},
    optional={"kind": st.sampled_from(["items", "embedding", "features", "other"]), "share": UNIT}), max_size=3)
PREDICTION = st.fixed_dictionaries(
    {"event_id": IDS, "prediction_id": IDS, "ts": st.integers(0, 2**45), "model": NAMES, "model_version": NAMES,
     "outputs": OUTPUTS},
    optional={
        "schema_version": st.just("prediction.v1"), "latency_ms": _maybe(st.floats(0.0, 1e6)), "error": _maybe(TEXT),
        "inputs": st.dictionaries(NAMES, FEATURE, max_size=5), "segment": st.dictionaries(NAMES, TEXT, max_size=3),
        "embedding": _maybe(st.lists(FLOATS, min_size=1, max_size=3)), "llm": _maybe(LLM),
        "lineage": _maybe(LINEAGE), "tags": st.dictionaries(NAMES, TEXT, max_size=3), "unknown_field": ODD,
    })
FEEDBACK = st.fixed_dictionaries(
    {"event_id": IDS, "prediction_id": IDS, "ts": st.integers(0, 2**45), "model": NAMES, "label": TEXT},
    optional={"schema_version": st.just("feedback.v1"), "model_version": _maybe(NAMES), "value": _maybe(FLOATS),
              "tags": st.dictionaries(NAMES, TEXT, max_size=3), "extra": ODD})


def _containers(ev: Any, out: list[Any]) -> list[Any]:
    """Every dict and non-empty list inside ``ev`` (mutation targets)."""
    if isinstance(ev, dict):
        out.append(ev)
        for v in ev.values():
            _containers(v, out)
    elif isinstance(ev, list) and ev:
        out.append(ev)
        for v in ev:
            _containers(v, out)
    return out


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[dict[str, Any]]) -> bytes:
    """A valid event, maybe mutated once somewhere inside, then one of several encodings."""
    ev = draw(base)
    what = draw(st.sampled_from(["none", "none", "value", "drop", "key"]))
    target = draw(st.sampled_from(_containers(ev, [])))
    if what != "none" and target:
        if isinstance(target, list):
            target[draw(st.integers(0, len(target) - 1))] = draw(ODD)
        else:
            key = draw(st.sampled_from(sorted(target)))
            if what == "value":
                target[key] = draw(ODD)
            elif what == "drop":
                del target[key]
            else:
                bad = draw(st.sampled_from(["", "a b", "m\n", "é", "x" * 129, "v" * 65, "ok"]))
                target[bad] = target.pop(key)
    enc = draw(st.sampled_from(["compact", "ascii", "spaced", "dup", "stringly"]))
    if enc == "ascii":
        return json.dumps(ev, ensure_ascii=True).encode()
    if enc == "spaced":
        return json.dumps(ev, indent=2, ensure_ascii=False).encode()
    if enc == "dup":  # a repeated key: both decoders keep the last value
        k = draw(st.sampled_from(sorted(ev)))
        return (json.dumps({k: draw(ODD)})[:-1] + ", " + json.dumps(ev)[1:]).encode()
    if enc == "stringly":  # top-level numbers as strings: pydantic's lax mode accepts some of them
        return json.dumps({k: str(v) if type(v) in (int, float) else v for k, v in ev.items()}).encode()
    return json.dumps(ev, ensure_ascii=False, separators=(",", ":")).encode()


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
