"""The common prediction event, checked and serialised in one step: the pure-Python twin of the C
accelerator :mod:`inferwatch.native._encode`.

Wire format: prediction.v1 as UTF-8 JSON, exactly ``orjson.dumps`` of
``{"schema_version", "event_id", "prediction_id", "ts", "model", "model_version", "inputs",
"outputs"[, "latency_ms"][, "segment"]}`` (keys in that order, the caller's dicts in their own
order). The C module writes the same bytes without building the dict or calling orjson.

``Encoder.prediction(inputs, outputs, latency_ms, segment)`` returns ``(event_id, payload)`` for
the common call -- plain dicts of plain values under valid names -- and ``None`` for anything
else; the logger then takes its fully checked path, which converts what can be converted and
raises ``EventValidationError`` naming the field. So the encoder never decides that an event is
invalid, only that it is not the common case; both implementations accept exactly the same calls
(a hypothesis test compares them byte for byte).

:func:`fast_prediction` builds the C module's ``FastPrediction``: ``InferenceLogger.prediction``'s
whole common case (encode, count, ``produce()``, spool on ``BufferError``, serve delivery reports
every 256 events) without the interpreter, installed by the logger on itself. Its twin and
reference is the Python method, which a machine without the C module runs.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from inferwatch.contract import limits
from inferwatch.native import load
from inferwatch.sdk.call_checks import known_names_superset as _known_names_superset
from inferwatch.sdk.ids import IdGenerator

# The contract's limits (the C twin reads the same numbers from native/contract_limits.h).
_NAME = re.compile(rf"[{limits.NAME_ALPHABET}]{{1,{limits.NAME_MAX}}}")
_SHORT = limits.SHORT_TEXT_MAX
_MAX_INPUTS = limits.MAX_INPUTS
_MAX_SEGMENT = limits.MAX_SEGMENT
_I64_MIN = -(1 << 63)
_U64_MAX = (1 << 64) - 1

Encoded = tuple[str, bytes]


class EncoderLike(Protocol):
    """What the logger needs from an encoder (the C type and :class:`PyEncoder` alike)."""

    def prediction(self, inputs: Any, outputs: Any, latency_ms: Any, segment: Any, /) -> Encoded | None:
        """``(event_id, payload)`` for the common call, else None (take the checked path)."""
        ...

    def use_ids(self, prefix: str, counter: itertools.count[int], /) -> None:
        """Event ids are ``prefix + str(next(counter))`` (see ``IdGenerator.subscribe``)."""
        ...


def _name(k: Any) -> bool:
    return type(k) is str and _NAME.fullmatch(k) is not None


def _names(d: dict[Any, Any]) -> bool:
    # Names that passed validate.check_name before are in its set: one C call for the common case.
    return _known_names_superset(d) or all(_name(k) for k in d)


def _utf8(v: str) -> bool:
    """Whether ``v`` is valid UTF-8 material (lone surrogates are not; orjson refuses them)."""
    if v.isascii():
        return True
    try:
        v.encode()
    except UnicodeEncodeError:
        return False
    return True


class PyEncoder:
    """The reference implementation (and the fallback where the C module is not built)."""

    def __init__(self, model: str, model_version: str) -> None:
        self.model = model
        self.model_version = model_version
        self.prefix = ""
        self.counter: itertools.count[int] | None = None

    def use_ids(self, prefix: str, counter: itertools.count[int], /) -> None:
        """Event ids are ``prefix + str(next(counter))`` (see ``IdGenerator.subscribe``)."""
        self.prefix = prefix
        self.counter = counter

    def prediction(self, inputs: Any, outputs: Any, latency_ms: Any, segment: Any, /) -> Encoded | None:
        """``(event_id, payload)`` for the common call, else None (see the module docstring)."""
        if type(inputs) is not dict or type(outputs) is not dict or not outputs or len(inputs) > _MAX_INPUTS:
            return None
        if latency_ms is not None and not (type(latency_ms) is float and 0.0 <= latency_ms < 1e300):
            return None
        if segment is not None and type(segment) is not dict:
            return None
        # The same checks as the C module, inline: a call per value would double the cost.
        if not _names(inputs):
            return None
        for v in inputs.values():
            t = type(v)
            if t is float:
                if v - v != 0.0:  # inf - inf and nan - nan are nan
                    return None
            elif t is str:
                if len(v) > _SHORT or not _utf8(v):
                    return None
            elif t is int:
                if not _I64_MIN <= v <= _U64_MAX:
                    return None
            elif v is not None and t is not bool:
                return None
        for k, v in outputs.items():
            if type(k) is not str:
                return None
            if k == "label":
                if type(v) is not str or len(v) > _SHORT or not _utf8(v):
                    return None
            elif k == "score" or k == "value":
                if type(v) is not float or v - v != 0.0:
                    return None
            else:
                return None
        if segment:
            if len(segment) > _MAX_SEGMENT or not _names(segment):
                return None
            for v in segment.values():
                if type(v) is not str or len(v) > _SHORT or not _utf8(v):
                    return None
        if self.counter is None:
            raise RuntimeError("PyEncoder: use_ids() was never called")
        eid = f"{self.prefix}{next(self.counter)}"
        ev: dict[str, Any] = {
            "schema_version": "prediction.v1",
            "event_id": eid,
            "prediction_id": eid,
            "ts": time.time_ns() // 1_000_000,
            "model": self.model,
            "model_version": self.model_version,
            "inputs": inputs,
            "outputs": outputs,
        }
        if latency_ms is not None:
            ev["latency_ms"] = latency_ms
        if segment:
            ev["segment"] = segment
        return eid, orjson.dumps(ev)


def make_encoder(model: str, model_version: str, ids: IdGenerator) -> EncoderLike:
    """The C encoder when it is built, else :class:`PyEncoder` (same results, slower)."""
    native = load("_encode")
    enc: EncoderLike = PyEncoder(model, model_version) if native is None else native.Encoder(model, model_version)
    ids.subscribe(enc.use_ids)
    return enc


def encoder_kind(enc: EncoderLike) -> str:
    """``"c"`` or ``"python"``: which implementation ``enc`` is (for stats and benchmarks)."""
    return "python" if isinstance(enc, PyEncoder) else "c"



def fast_prediction(
    enc: EncoderLike,
    produce: Callable[..., Any],
    topic: str,
    key: bytes,
    logged: itertools.count[int],
    on_overflow: Callable[[bytes], Any],
    on_produce_error: Callable[[Any, bytes], Any],
    kafka_exception: type[BaseException],
    every_256: Callable[[], Any],
    checked: Callable[..., str],
    full: Callable[..., str],
) -> Any | None:
    """The C version of ``InferenceLogger.prediction`` for one logger, or None without the C module.

    It has the method's signature and does what the method's fast path does (encode, count,
    ``produce``, spool on ``BufferError``, serve delivery reports every 256 events) without the
    interpreter; uncommon events go to ``checked`` and argument lists it does not parse to ``full``
    (the Python method), so both behave alike (the Python method is its twin; tests compare them).
    """
    native = load("_encode")
    if native is None or isinstance(enc, PyEncoder):
        return None
    return native.FastPrediction(enc, produce, topic, key, logged, on_overflow, on_produce_error,
                                 kafka_exception, every_256, checked, full)
