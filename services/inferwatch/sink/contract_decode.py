"""Decode and validate Kafka message values against the contract.

Wire format: one UTF-8 JSON object per message (see ``inferwatch.contract.events``). The pydantic
models are the truth: :func:`decode` runs pydantic-core on the bytes (parse and validate in one
pass). :func:`decode_many`, the sink's hot path, first tries the msgspec mirrors of
``inferwatch.contract.structs`` (several times faster) and hands every message they refuse to
:func:`decode`, so a message is accepted exactly when the contract accepts it and a refused one
carries the contract's reason and path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from pydantic import ValidationError

from inferwatch.contract.events import EVENT_MODELS, _Event
from inferwatch.contract.structs import STRUCTS, bad_names
from inferwatch.contract.validate import _path, parse_json


@dataclass(frozen=True)
class Rejected:
    """Why a message could not be decoded: a reason, and the offending field's path when known."""

    reason: str
    error_path: str | None = None


def decode(schema: str, raw: bytes | None) -> _Event | Rejected:
    """The validated event of ``schema`` in ``raw`` (a pydantic model), or why it is not one."""
    if raw is None:
        return Rejected("empty message (null value)")
    model = EVENT_MODELS[schema]
    try:
        doc = parse_json(raw)  # the contract's JSON rules (see contract.validate.parse_json)
    except ValueError as exc:
        return Rejected(f"not valid JSON: {exc}")
    if not isinstance(doc, dict):
        return Rejected("an event must be a JSON object")
    try:
        return model.model_validate(doc, strict=True)  # wire types are strict (see contract.validate)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        path = _path(tuple(err["loc"]))
        return Rejected(f"{schema}: {path or '<event>'}: {err['msg']} ({err['type']})", path or None)


_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {s: msgspec.json.Decoder(t) for s, t in STRUCTS.items()}


def decode_many(schema: str, raws: Sequence[bytes | None]) -> list[Any]:
    """Decode every value of ``raws`` as ``schema``: one event or :class:`Rejected` per value, in order.

    Events are msgspec structs (fast path) or pydantic models (messages the fast path refused but
    the contract accepts); both have the contract's attribute names, which is all the column
    builders read.
    """
    dec = _DECODERS.get(schema)
    if dec is None:
        return [decode(schema, r) for r in raws]
    kind = STRUCTS[schema]
    fast = dec.decode
    out: list[Any] = []
    append = out.append
    slow = False
    for raw in raws:
        try:
            append(fast(raw))  # type: ignore[arg-type]
        except Exception:  # DecodeError/ValidationError, UnicodeDecodeError on bad UTF-8, TypeError on None
            append(decode(schema, raw))
            slow = True
    structs = [e for e in out if type(e) is kind] if slow else out
    bad = bad_names(structs, kind)
    if bad is not None:
        # Rare: a name breaks the contract's pattern; let the contract say why.
        idx = [i for i, e in enumerate(out) if type(e) is kind]
        for i, is_bad in zip(idx, bad, strict=True):
            if is_bad:
                out[i] = decode(schema, raws[i])
    return out
