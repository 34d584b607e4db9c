"""Hypothesis strategies of sink input: valid events, then at most one mutation, in several encodings.

Shared by the decode parity tests (``test_fast_decode``) and the flat-columns parity tests (``test_prediction_table``).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

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


# Predictions the flat fast path can take (no embedding, LLM or lineage block), with the shapes it
# flattens: optional outputs and probabilities, null / bool / int (up to 64 bits) / float / string
# features, empty maps.
PLAIN_FEATURE = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), FLOATS, TEXT,
                          st.sampled_from([2**53 + 1, -(2**53) - 1, 0.1, -0.0, 5e-324]))
_PLAIN_OUT_OPTIONAL = {"label": _maybe(TEXT), "score": _maybe(FLOATS), "value": _maybe(FLOATS),
                       "probabilities": _maybe(st.dictionaries(TEXT, UNIT, max_size=3))}
PLAIN_OUTPUTS = st.one_of(*(
    st.fixed_dictionaries({k: v}, optional={o: s for o, s in _PLAIN_OUT_OPTIONAL.items() if o != k})
    for k, v in {"label": TEXT, "score": FLOATS, "value": FLOATS,
                 "probabilities": st.dictionaries(TEXT, UNIT, max_size=3)}.items()))
_PLAIN_REQUIRED = {"event_id": IDS, "prediction_id": IDS, "ts": st.integers(0, 2**45), "model": NAMES,
                   "model_version": NAMES}
_PLAIN_OPTIONAL = {
    "schema_version": st.just("prediction.v1"), "latency_ms": _maybe(st.floats(0.0, 1e6)),
    "inputs": st.dictionaries(NAMES, PLAIN_FEATURE, max_size=6),
    "segment": st.dictionaries(NAMES, TEXT, max_size=3), "tags": st.dictionaries(NAMES, TEXT, max_size=3),
}
PLAIN_PREDICTION = st.one_of(
    st.fixed_dictionaries(_PLAIN_REQUIRED | {"outputs": PLAIN_OUTPUTS}, optional=_PLAIN_OPTIONAL | {"error": _maybe(TEXT)}),
    st.fixed_dictionaries(_PLAIN_REQUIRED | {"error": TEXT}, optional=_PLAIN_OPTIONAL | {"outputs": _maybe(PLAIN_OUTPUTS)}),
)
"""Valid predictions the flat fast path can take (no embedding, LLM or lineage block)."""
