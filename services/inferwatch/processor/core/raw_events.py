"""Fast decoding of raw Kafka values into typed events with msgspec.

Wire format: one UTF-8 JSON object per message, ``prediction.v1`` on the predictions topic and
``feedback.v1`` on the feedback topic (see ``inferwatch.contract.events``). The structs are the
contract's own msgspec mirrors (:mod:`inferwatch.contract.structs`, the same ones the sink
decodes with), so the processor accepts and refuses exactly what the sink and the contract do
(``tests/contract/test_cross_hop.py``). A message that fails becomes a :class:`Rejected` with the
reason, to be sent to the dead-letter topic with stage ``processor``.
"""

from __future__ import annotations

import base64
import gc
import time
from dataclasses import dataclass

import msgspec

from inferwatch.contract import limits
from inferwatch.contract.errors import ContractError
from inferwatch.contract.events import DeadletterV1
from inferwatch.contract.structs import (
    FeedbackV1,
    LineageRef,
    LLMBlock,
    Outputs,
    PredictionV1,
    bad_names,
    name_error,
)
from inferwatch.contract.validate import validate

# The processor's names for the contract's structs.
Prediction = PredictionV1
Feedback = FeedbackV1
LLM = LLMBlock
Lineage = LineageRef

__all__ = ["LLM", "Feedback", "Lineage", "Outputs", "Prediction", "Raw", "Rejected", "decode_feedback",
           "decode_predictions"]


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
        return DeadletterV1(
            event_id=limits.deadletter_id("processor", self.raw.topic, self.raw.partition, self.raw.offset),
            ts=int(time.time() * 1000),
            stage="processor",
            reason=self.reason[: limits.REASON_MAX] or "invalid",
            source_topic=self.raw.topic or None,
            source_partition=self.raw.partition,
            source_offset=self.raw.offset,
            expected_schema=self.schema,
            key_b64=base64.b64encode(self.raw.key).decode() if self.raw.key is not None else None,
            payload_b64=base64.b64encode(self.raw.value).decode(),
        )


_PRED = msgspec.json.Decoder(Prediction)
_FEED = msgspec.json.Decoder(Feedback)


def _by_the_contract(dec: msgspec.json.Decoder, schema: str, raw: bytes | None) -> PredictionV1 | FeedbackV1 | None:
    """The struct of a message msgspec refused but the contract accepts, else None (rare: refused
    messages only). msgspec validates a repeated key's every value as it parses, while the contract
    keeps the last one (``{"ts": "x", "ts": 1}`` is valid); the contract decides, as in the sink."""
    try:
        ev = validate(schema, raw)  # type: ignore[arg-type]
    except (ContractError, TypeError):
        return None
    try:
        return msgspec.convert(ev.model_dump(), dec.type)  # type: ignore[no-any-return]
    except msgspec.ValidationError:  # a struct stricter than the model (never, while test_structs_mirror holds)
        return None


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
                e = _by_the_contract(dec, schema, r.value)
                if e is None:
                    bad.append(Rejected(r, str(exc) or type(exc).__name__, schema))
                    continue
            good.append((r, e))
    finally:
        if paused:
            gc.enable()
    if good and bad_names([e for _, e in good], Prediction if dec is _PRED else Feedback) is not None:
        keep = []
        for r, e in good:  # rare: a batch with an invalid name; find which events carry it
            why = name_error(e)
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
