"""msgspec mirrors of the high-volume events (``prediction.v1``, ``feedback.v1``), shared by the sink and the processor.

Wire format: one UTF-8 JSON object per Kafka message, as in :mod:`inferwatch.contract.events` (the
pydantic models there are the truth). Every number comes from :mod:`inferwatch.contract.limits`.
These structs carry every constraint of the contract that msgspec can check in C: types, string and
collection lengths, numeric bounds, literals, and the model validators (as ``__post_init__``). Two
rules are checked otherwise:

* the name pattern of models, versions and map keys, by :func:`bad_names` / :func:`name_error`.
  Python's ``re`` is not the engine pydantic uses (``$`` matches before a trailing newline in
  Python, not in pydantic-core), and a regex per map key would cost more than the rest of the
  decode; names repeat, so a set of names already checked makes the test nearly free.
* finiteness needs no check: msgspec refuses numbers out of the float range ("Number out of
  range") and JSON has no NaN/Infinity literals, so a decoded float is always finite.

Types are strict, like the contract on the wire (``"5"`` is not an int, ``1.0`` is not an int,
``1`` is not a bool). The sink and the processor decode with these same structs, so both hops
accept and refuse the same events; ``tests/contract/test_cross_hop.py`` proves it against the
pydantic models, the JSON Schema, the SDK and the C decoders.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from operator import attrgetter
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from inferwatch.contract import limits as L

Short = Annotated[str, Meta(max_length=L.SHORT_TEXT_MAX)]
Finite = Annotated[float, Meta(ge=-L.FLOAT_MAX, le=L.FLOAT_MAX)]  # belt and braces: see the module docstring
Unit = Annotated[float, Meta(ge=0.0, le=1.0)]
NonPos = Annotated[float, Meta(ge=-L.FLOAT_MAX, le=0.0)]
Count = Annotated[int, Meta(ge=0, le=L.LLM_COUNT_MAX)]
Hash = Annotated[str, Meta(min_length=1, max_length=L.HASH_MAX)]
EventId = Annotated[str, Meta(min_length=1, max_length=L.EVENT_ID_MAX)]
PredictionId = Annotated[str, Meta(min_length=1, max_length=L.PREDICTION_ID_MAX)]
TimestampMs = Annotated[int, Meta(ge=L.TS_MIN_MS, le=L.TS_MAX_MS)]
# Lengths of names; their alphabet is checked by bad_names()/name_error() (see the module docstring).
# Map keys (inputs, segment, tags) are plain ``str``: a constrained key type costs msgspec ~40 ns a
# key (0.8 µs on a 20-feature event), and the batch name check already bounds their length.
NameLen = Annotated[str, Meta(min_length=1, max_length=L.NAME_MAX)]
VersionLen = Annotated[str, Meta(min_length=1, max_length=L.VERSION_MAX)]
Feature = Finite | bool | Short | None
"""Any JSON number is a double (an int token too, as in the contract's ``FeatureValue``)."""


class Outputs(msgspec.Struct, frozen=True, gc=False):
    """``outputs`` of ``prediction.v1``."""

    label: Short | None = None
    score: Finite | None = None
    probabilities: Annotated[dict[Short, Unit], Meta(max_length=L.MAX_PROBABILITIES)] | None = None
    value: Finite | None = None

    def __post_init__(self) -> None:
        if self.label is None and self.score is None and self.probabilities is None and self.value is None:
            raise ValueError("outputs needs at least one of label, score, probabilities, value")


class LLMBlock(msgspec.Struct, frozen=True, gc=False):
    """``llm`` of ``prediction.v1``."""

    prompt: Annotated[str, Meta(max_length=L.LLM_TEXT_MAX)] | None = None
    completion: Annotated[str, Meta(max_length=L.LLM_TEXT_MAX)] | None = None
    prompt_hash: Hash | None = None
    completion_hash: Hash | None = None
    completion_chars: Count | None = None
    refusal: bool | None = None
    token_logprobs: Annotated[list[NonPos], Meta(max_length=L.MAX_LOGPROBS)] | None = None
    top_logprobs: Annotated[
        list[Annotated[list[NonPos], Meta(max_length=L.MAX_TOP_LOGPROBS_PER_TOKEN)]], Meta(max_length=L.MAX_LOGPROBS)
    ] | None = None
    input_tokens: Count | None = None
    output_tokens: Count | None = None
    finish_reason: Short | None = None


class LineageRef(msgspec.Struct, frozen=True, gc=False):
    """One ``lineage`` entry of ``prediction.v1`` (``model``/``model_version`` checked by :func:`names_ok`)."""

    model: NameLen
    model_version: VersionLen
    kind: Literal["items", "embedding", "features", "other"] = "items"  # = limits.LINEAGE_KINDS
    share: Unit = 1.0


class PredictionV1(msgspec.Struct, frozen=True, gc=False):
    """``prediction.v1``; names (model, version, map keys) are checked by :func:`names_ok`."""

    event_id: EventId
    prediction_id: PredictionId
    ts: TimestampMs
    model: NameLen
    model_version: VersionLen
    schema_version: Literal["prediction.v1"] = "prediction.v1"
    latency_ms: Annotated[float, Meta(ge=0.0, le=L.FLOAT_MAX)] | None = None
    error: Annotated[str, Meta(max_length=L.ERROR_MAX)] | None = None
    inputs: Annotated[dict[str, Feature], Meta(max_length=L.MAX_INPUTS)] = {}
    outputs: Outputs | None = None
    segment: Annotated[dict[str, Short], Meta(max_length=L.MAX_SEGMENT)] = {}
    embedding: Annotated[list[Finite], Meta(min_length=1, max_length=L.MAX_EMBEDDING)] | None = None
    llm: LLMBlock | None = None
    lineage: Annotated[list[LineageRef], Meta(max_length=L.MAX_LINEAGE)] | None = None
    tags: Annotated[dict[str, Short], Meta(max_length=L.MAX_TAGS)] = {}

    def __post_init__(self) -> None:
        if self.outputs is None and self.error is None:
            raise ValueError("a prediction needs outputs, or an error when it failed")


class FeedbackV1(msgspec.Struct, frozen=True, gc=False):
    """``feedback.v1``; names are checked by :func:`names_ok`."""

    event_id: EventId
    prediction_id: PredictionId
    ts: TimestampMs
    model: NameLen
    schema_version: Literal["feedback.v1"] = "feedback.v1"
    model_version: VersionLen | None = None
    label: Short | None = None
    value: Finite | None = None
    tags: Annotated[dict[str, Short], Meta(max_length=L.MAX_TAGS)] = {}

    def __post_init__(self) -> None:
        if self.label is None and self.value is None:
            raise ValueError("feedback needs a label or a value")


class _Names:
    """Names already found to match a contract pattern (fullmatch, so no trailing-newline loophole)."""

    __slots__ = ("known", "limit", "pattern")

    def __init__(self, pattern: str, limit: int = 200_000) -> None:
        self.pattern = re.compile(pattern)
        self.known: set[str] = set()
        self.limit = limit  # bounded memory when names are unbounded (e.g. per-user tag keys)

    def ok(self, name: str) -> bool:
        if name in self.known:
            return True
        if self.pattern.fullmatch(name) is None:
            return False
        if len(self.known) >= self.limit:
            self.known.clear()
        self.known.add(name)
        return True

    def all_ok(self, names: Iterable[str]) -> bool:
        # issuperset runs in C; the loop only runs for names never seen before.
        if self.known.issuperset(names):
            return True
        return all(self.ok(n) for n in names)


# The contract's Name and Version types: same alphabet, different lengths.
NAMES = _Names(rf"[{L.NAME_ALPHABET}]{{1,{L.NAME_MAX}}}")
VERSIONS = _Names(rf"[{L.NAME_ALPHABET}]{{1,{L.VERSION_MAX}}}")


def _names(evs: list[Any], kind: type) -> tuple[set[str], set[str]]:
    """Every Name and every Version used by ``evs`` (sets built in C: dict keys, attributes)."""
    names: set[str] = set(map(attrgetter("model"), evs)).union(*map(attrgetter("tags"), evs))
    if kind is PredictionV1:
        names = names.union(*map(attrgetter("inputs"), evs), *map(attrgetter("segment"), evs))
    versions = set(map(attrgetter("model_version"), evs))
    versions.discard(None)
    for e in evs:
        if kind is PredictionV1 and e.lineage:
            names.update(r.model for r in e.lineage)
            versions.update(r.model_version for r in e.lineage)
    return names, versions


def bad_names(evs: list[Any], kind: type) -> list[bool] | None:
    """Which of ``evs`` (all of type ``kind``) break the contract's name rules; None when none does.

    The check runs once per batch over the set of distinct names, so its cost does not grow with
    the number of map keys per event.
    """
    if not evs:
        return None
    names, versions = _names(evs, kind)
    bad_n = {n for n in names if not NAMES.ok(n)}
    bad_v = {v for v in versions if not VERSIONS.ok(v)}
    if not bad_n and not bad_v:
        return None
    out: list[bool] = []
    for e in evs:
        n, v = _names([e], kind)
        out.append(not (bad_n.isdisjoint(n) and bad_v.isdisjoint(v)))
    return out


def names_ok(ev: PredictionV1 | FeedbackV1) -> bool:
    """The name rules of the contract that the structs leave out, for one event."""
    return bad_names([ev], type(ev)) is None


def name_error(ev: PredictionV1 | FeedbackV1) -> str | None:
    """Why ``ev`` breaks a name rule (in msgspec's words, with the field's path), or None.

    Fields in the contract's order, so the first offending field is the one pydantic names too.
    """
    if not NAMES.ok(ev.model):
        return _bad(ev.model, "`$.model`")
    if ev.model_version is not None and not VERSIONS.ok(ev.model_version):
        return _bad(ev.model_version, "`$.model_version`")
    if type(ev) is PredictionV1:
        for where, d in (("inputs", ev.inputs), ("segment", ev.segment)):
            if not NAMES.all_ok(d):
                return _bad(next(k for k in d if not NAMES.ok(k)), f"`$.{where}`")
        for i, ref in enumerate(ev.lineage or ()):
            if not NAMES.ok(ref.model):
                return _bad(ref.model, f"`$.lineage[{i}].model`")
            if not VERSIONS.ok(ref.model_version):
                return _bad(ref.model_version, f"`$.lineage[{i}].model_version`")
    if not NAMES.all_ok(ev.tags):
        return _bad(next(k for k in ev.tags if not NAMES.ok(k)), "`$.tags`")
    return None


def _bad(value: str, at: str) -> str:
    # The processor's dead-letter reasons have said this since its first version; kept word for word.
    return f"invalid name {value[:140]!r} - at {at}"


STRUCTS: dict[str, type[PredictionV1] | type[FeedbackV1]] = {
    "prediction.v1": PredictionV1,
    "feedback.v1": FeedbackV1,
}
"""Schemas with a fast path; the other (low-volume) schemas are decoded by their pydantic model."""
