"""Fast decoding of raw Kafka values into typed events with msgspec.

Wire format: one UTF-8 JSON object per message, ``prediction.v1`` on the predictions topic and
``feedback.v1`` on the feedback topic (see ``inferwatch.contract.events``). The msgspec structs
mirror the pydantic contract's constraints that the processor relies on (names, types, ranges);
unknown fields are ignored as the v1 compatibility rule demands. A message that fails becomes a
:class:`Rejected` with the reason, to be sent to the dead-letter topic with stage ``processor``.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import re
import time
from dataclasses import dataclass
from operator import attrgetter
from typing import Annotated, Literal

import msgspec

from inferwatch.contract.events import DeadletterV1

# msgspec checks ``pattern`` with ``re.search``: ``\A…\Z`` (not ``^…$``, where ``$`` also matches
# before a trailing newline) gives the contract's full-match semantics, so ``"m\n"`` is refused.
_PATTERN = r"\A[A-Za-z0-9_.:/@+-]+\Z"
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=_PATTERN)]
Version = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_PATTERN)]
# The hot fields (model, version of every prediction) are checked by the cached batch check below
# instead of a regex per event; same alphabet and lengths as Name/Version.
_Model = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
_Version = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Ts = Annotated[int, msgspec.Meta(ge=0, le=32503680000000)]
Short = Annotated[str, msgspec.Meta(max_length=256)]
NonPos = Annotated[float, msgspec.Meta(le=0.0)]
Feature = float | int | bool | Short | None


class Outputs(msgspec.Struct, frozen=True):
    """``outputs`` of a prediction."""

    label: Short | None = None
    score: float | None = None
    probabilities: dict[Short, Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]] | None = None
    value: float | None = None

    def __post_init__(self) -> None:
        if self.label is None and self.score is None and self.probabilities is None and self.value is None:
            raise ValueError("outputs needs at least one of label, score, probabilities, value")


class LLM(msgspec.Struct, frozen=True):
    """``llm`` block of a prediction."""

    prompt: str | None = None
    completion: str | None = None
    prompt_hash: str | None = None
    completion_hash: str | None = None
    completion_chars: Annotated[int, msgspec.Meta(ge=0)] | None = None
    refusal: bool | None = None
    token_logprobs: list[NonPos] | None = None
    top_logprobs: list[list[NonPos]] | None = None
    output_tokens: Annotated[int, msgspec.Meta(ge=0)] | None = None


class Lineage(msgspec.Struct, frozen=True):
    """One ``lineage`` entry."""

    model: Name
    model_version: Version
    kind: str = "items"
    share: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 1.0


class Prediction(msgspec.Struct, frozen=True, gc=False):
    """A ``prediction.v1`` event, as far as the processor reads it."""

    event_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    prediction_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    ts: Ts
    model: _Model  # Name: checked by _bad_names (cached full match)
    model_version: _Version  # Version: checked by _bad_names
    schema_version: Literal["prediction.v1"] = "prediction.v1"
    latency_ms: Annotated[float, msgspec.Meta(ge=0.0)] | None = None
    error: str | None = None
    inputs: dict[str, Feature] = {}  # key names checked by _bad_names (cached, one regex per new name)
    outputs: Outputs | None = None
    segment: dict[str, Short] = {}
    embedding: Annotated[list[float], msgspec.Meta(min_length=1, max_length=65536)] | None = None
    llm: LLM | None = None
    lineage: list[Lineage] | None = None

    def __post_init__(self) -> None:
        if self.outputs is None and self.error is None:
            raise ValueError("a prediction needs outputs, or an error when it failed")


class Feedback(msgspec.Struct, frozen=True, gc=False):
    """A ``feedback.v1`` event."""

    event_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    prediction_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    ts: Ts
    model: Name
    model_version: Version | None = None
    schema_version: Literal["feedback.v1"] = "feedback.v1"
    label: Short | None = None
    value: float | None = None

    def __post_init__(self) -> None:
        if self.label is None and self.value is None:
            raise ValueError("feedback needs a label or a value")


@dataclass(frozen=True)
class Raw:
    """One Kafka message as the processor receives it."""

    value: bytes
    topic: str = ""
    partition: int = 0
    offset: int = 0
    key: bytes | None = None


@dataclass(frozen=True)
class Rejected:
    """An invalid message and why."""

    raw: Raw
    reason: str
    schema: str

    def to_deadletter(self) -> DeadletterV1:
        """The dead-letter event for this message (stage ``processor``)."""
        eid = hashlib.sha1(f"{self.raw.topic}/{self.raw.partition}/{self.raw.offset}".encode()).hexdigest()
        return DeadletterV1(
            event_id=eid,
            ts=int(time.time() * 1000),
            stage="processor",
            reason=self.reason[:4096] or "invalid",
            source_topic=self.raw.topic or None,
            source_partition=self.raw.partition,
            source_offset=self.raw.offset,
            expected_schema=self.schema,
            key_b64=base64.b64encode(self.raw.key).decode() if self.raw.key is not None else None,
            payload_b64=base64.b64encode(self.raw.value).decode(),
        )


_NAME_RE = re.compile(r"[A-Za-z0-9_.:/@+-]{1,128}")  # used with fullmatch: no trailing-newline loophole
_GOOD_NAMES: set[str] = set()


def _name_ok(k: str) -> bool:
    if k in _GOOD_NAMES:
        return True
    if _NAME_RE.fullmatch(k) is None:
        return False
    if len(_GOOD_NAMES) >= 100_000:  # bounded memory when names are unbounded
        _GOOD_NAMES.clear()
    _GOOD_NAMES.add(k)
    return True


def _check_names(e: Prediction) -> str | None:
    """The first invalid name of ``e`` (model, version, feature or segment key), or None."""
    if not _name_ok(e.model):
        return f"invalid name {e.model[:140]!r} - at `$.model`"
    if len(e.model_version) > 64 or not _name_ok(e.model_version):
        return f"invalid name {e.model_version[:140]!r} - at `$.model_version`"
    for where, d in (("inputs", e.inputs), ("segment", e.segment)):
        for k in d:
            if not _name_ok(k):
                return f"invalid name {k[:140]!r} - at `$.{where}`"
    return None


def _all_names_known(evs: list[Prediction]) -> bool:
    """True when every name of every event was seen valid before: set operations in C, no per-event
    Python loop (names repeat across events, so this is the common case)."""
    names = set(map(attrgetter("model"), evs))
    names.update(map(attrgetter("model_version"), evs))
    names = names.union(*map(attrgetter("inputs"), evs), *map(attrgetter("segment"), evs))
    if _GOOD_NAMES.issuperset(names):
        return True
    return all(map(_name_ok, names)) and all(len(v) <= 64 for v in set(map(attrgetter("model_version"), evs)))


_PRED = msgspec.json.Decoder(Prediction)
_FEED = msgspec.json.Decoder(Feedback)


def _decode(dec: msgspec.json.Decoder, schema: str, raws: list[Raw]):  # type: ignore[no-untyped-def]
    good = []
    bad: list[Rejected] = []
    decode = dec.decode
    # A batch allocates many containers and no cycles: the cyclic GC would scan them again and again.
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        for r in raws:
            try:
                e = decode(r.value)
            except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, TypeError) as exc:
                bad.append(Rejected(r, str(exc) or type(exc).__name__, schema))
                continue
            good.append((r, e))
    finally:
        if paused:
            gc.enable()
    if dec is _PRED and good and not _all_names_known([e for _, e in good]):
        keep = []
        for r, e in good:  # rare: a batch with an invalid name; find which events carry it
            why = _check_names(e)
            if why is None:
                keep.append((r, e))
            else:
                bad.append(Rejected(r, why, schema))
        good = keep
    return good, bad


def decode_predictions(raws: list[Raw]) -> tuple[list[tuple[Raw, Prediction]], list[Rejected]]:
    """Decode prediction messages; invalid ones are returned as rejections, never raised."""
    return _decode(_PRED, "prediction.v1", raws)


def decode_feedback(raws: list[Raw]) -> tuple[list[tuple[Raw, Feedback]], list[Rejected]]:
    """Decode feedback messages; invalid ones are returned as rejections, never raised."""
    return _decode(_FEED, "feedback.v1", raws)
