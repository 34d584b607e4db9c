"""msgspec mirrors of the high-volume events (``prediction.v1``, ``feedback.v1``) for the sink's fast path.

Wire format: one UTF-8 JSON object per Kafka message, as in ``inferwatch.contract.events`` (the
pydantic models there are the truth). These structs carry every constraint of the contract that
msgspec can check in C: types, string/collection lengths, numeric bounds, literals, and the model
validators (as ``__post_init__``). Two rules are checked in :func:`names_ok` instead:

* the name pattern of models, versions and map keys. Python's ``re`` is not the engine
  pydantic uses (``$`` matches before a trailing newline in Python, not in pydantic-core), and a
  regex per map key would cost more than the rest of the decode; names repeat, so a set of names
  already checked makes the test nearly free.
* finiteness needs no check: msgspec refuses numbers out of the float range ("Number out of
  range") and JSON has no NaN/Infinity literals, so a decoded float is always finite.

The fast path may only be *stricter* than the contract (it refuses ``"5"`` for an int, which
pydantic's lax mode accepts): whatever it refuses is decided again by the pydantic model, so the
accept/reject outcome and the dead-letter reasons stay the contract's. The parity test in
``tests/unit/sink/test_fast_decode.py`` proves this on the schema examples and on generated events.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from operator import attrgetter
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

_MAXF = sys.float_info.max

Short = Annotated[str, Meta(max_length=256)]
Finite = Annotated[float, Meta(ge=-_MAXF, le=_MAXF)]  # belt and braces: see the module docstring
Unit = Annotated[float, Meta(ge=0.0, le=1.0)]
NonPos = Annotated[float, Meta(ge=-_MAXF, le=0.0)]
NonNegInt = Annotated[int, Meta(ge=0)]
Hash = Annotated[str, Meta(min_length=1, max_length=128)]
EventId = Annotated[str, Meta(min_length=1, max_length=64)]
PredictionId = Annotated[str, Meta(min_length=1, max_length=128)]
TimestampMs = Annotated[int, Meta(ge=0, le=32503680000000)]
Feature = Finite | int | bool | Short | None


class Outputs(msgspec.Struct, frozen=True, gc=False):
    """``outputs`` of ``prediction.v1``."""

    label: Short | None = None
    score: Finite | None = None
    probabilities: Annotated[dict[Short, Unit], Meta(max_length=1000)] | None = None
    value: Finite | None = None

    def __post_init__(self) -> None:
        if self.label is None and self.score is None and self.probabilities is None and self.value is None:
            raise ValueError("outputs needs at least one of label, score, probabilities, value")


class LLMBlock(msgspec.Struct, frozen=True, gc=False):
    """``llm`` of ``prediction.v1``."""

    prompt: Annotated[str, Meta(max_length=1_000_000)] | None = None
    completion: Annotated[str, Meta(max_length=1_000_000)] | None = None
    prompt_hash: Hash | None = None
    completion_hash: Hash | None = None
    completion_chars: NonNegInt | None = None
    refusal: bool | None = None
    token_logprobs: Annotated[list[NonPos], Meta(max_length=100_000)] | None = None
    top_logprobs: Annotated[list[list[NonPos]], Meta(max_length=100_000)] | None = None
    input_tokens: NonNegInt | None = None
    output_tokens: NonNegInt | None = None
    finish_reason: Short | None = None


class LineageRef(msgspec.Struct, frozen=True, gc=False):
    """One ``lineage`` entry of ``prediction.v1`` (``model``/``model_version`` checked by :func:`names_ok`)."""

    model: str
    model_version: str
    kind: Literal["items", "embedding", "features", "other"] = "items"
    share: Unit = 1.0


class PredictionV1(msgspec.Struct, frozen=True, gc=False):
    """``prediction.v1``; names (model, version, map keys) are checked by :func:`names_ok`."""

    event_id: EventId
    prediction_id: PredictionId
    ts: TimestampMs
    model: str
    model_version: str
    schema_version: Literal["prediction.v1"] = "prediction.v1"
    latency_ms: Annotated[float, Meta(ge=0.0, le=_MAXF)] | None = None
    error: Annotated[str, Meta(max_length=4096)] | None = None
    inputs: Annotated[dict[str, Feature], Meta(max_length=2000)] = {}
    outputs: Outputs | None = None
    segment: Annotated[dict[str, Short], Meta(max_length=32)] = {}
    embedding: Annotated[list[Finite], Meta(min_length=1, max_length=65536)] | None = None
    llm: LLMBlock | None = None
    lineage: Annotated[list[LineageRef], Meta(max_length=64)] | None = None
    tags: Annotated[dict[str, Short], Meta(max_length=64)] = {}

    def __post_init__(self) -> None:
        if self.outputs is None and self.error is None:
            raise ValueError("a prediction needs outputs, or an error when it failed")


class FeedbackV1(msgspec.Struct, frozen=True, gc=False):
    """``feedback.v1``; names are checked by :func:`names_ok`."""

    event_id: EventId
    prediction_id: PredictionId
    ts: TimestampMs
    model: str
    schema_version: Literal["feedback.v1"] = "feedback.v1"
    model_version: str | None = None
    label: Short | None = None
    value: Finite | None = None
    tags: Annotated[dict[str, Short], Meta(max_length=64)] = {}

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


# The contract's Name (1..128) and Version (1..64) types: same alphabet, different lengths.
NAMES = _Names(r"[A-Za-z0-9_.:/@+-]{1,128}")
VERSIONS = _Names(r"[A-Za-z0-9_.:/@+-]{1,64}")


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


STRUCTS: dict[str, type[PredictionV1] | type[FeedbackV1]] = {
    "prediction.v1": PredictionV1,
    "feedback.v1": FeedbackV1,
}
"""Schemas with a fast path; the other (low-volume) schemas are decoded by their pydantic model."""
