"""The msgspec structs (sink and processor) carry exactly the pydantic models' fields and bounds.

A limit is written once (``contract/limits.py``) but used twice: by the pydantic models and by the
msgspec structs. This test reads both back — pydantic's field metadata, msgspec's type info — and
compares them field by field: the same fields, and under each one the same length bounds and numeric
bounds, wherever they sit in the type (a map's keys, a list's items, a union's branches). A bound
added to a model and forgotten in a struct (or the reverse) fails here, naming the field.
"""

from __future__ import annotations

import typing
from collections import Counter
from typing import Any

import annotated_types as at
import msgspec
import msgspec.inspect as mi
import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from inferwatch.contract import events, structs
from inferwatch.contract import limits as L

PAIRS = [
    (events.PredictionV1, structs.PredictionV1), (events.FeedbackV1, structs.FeedbackV1),
    (events.Outputs, structs.Outputs), (events.LLMBlock, structs.LLMBlock), (events.LineageRef, structs.LineageRef),
]
_BOUNDS = {at.MaxLen: ("max_length", "max_length"), at.MinLen: ("min_length", "min_length"),
           at.Ge: ("ge", "ge"), at.Le: ("le", "le"), at.Gt: ("gt", "gt"), at.Lt: ("lt", "lt")}


def _pyd_bounds(tp: Any, meta: list[Any], out: Counter[tuple[str, Any]]) -> None:
    for m in meta:
        for cls, (name, attr) in _BOUNDS.items():
            if isinstance(m, cls):
                out[(name, getattr(m, attr))] += 1
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return  # nested models are compared as their own pair
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        base, *extra = typing.get_args(tp)
        flat: list[Any] = []
        for e in extra:
            flat += list(e.metadata) if isinstance(e, FieldInfo) else [e]
        _pyd_bounds(base, flat, out)
        return
    args = typing.get_args(tp)
    if origin is dict and _is_name(args[0]):
        args = args[1:]  # a name key: its bounds are the batch name check's (test_name_keys_are_bounded_by_the_name_check)
    for arg in args:
        if origin is typing.Literal:
            break
        _pyd_bounds(arg, [], out)


def _is_name(tp: Any) -> bool:
    """Whether ``tp`` is the contract's Name type (its pattern), whose map keys msgspec leaves to the name check."""
    if typing.get_origin(tp) is not typing.Annotated:
        return False
    return any(getattr(m, "pattern", None) == L.NAME_PATTERN for e in typing.get_args(tp)[1:]
               for m in (e.metadata if isinstance(e, FieldInfo) else [e]))


def pydantic_bounds(model: type[BaseModel]) -> dict[str, Counter[tuple[str, Any]]]:
    """Every field's bounds, counted, from the model's metadata and its type's Annotated parts."""
    out: dict[str, Counter[tuple[str, Any]]] = {}
    for name, info in model.model_fields.items():
        c: Counter[tuple[str, Any]] = Counter()
        _pyd_bounds(info.annotation, list(info.metadata), c)
        out[name] = c
    return out


def _ms_bounds(t: Any, out: Counter[tuple[str, Any]]) -> None:
    if isinstance(t, mi.StructType):
        return
    for name in ("max_length", "min_length", "ge", "le", "gt", "lt"):
        v = getattr(t, name, None)
        if v is not None:
            out[(name, v)] += 1
    for attr in ("key_type", "value_type", "item_type"):
        sub = getattr(t, attr, None)
        if sub is not None:
            _ms_bounds(sub, out)
    for sub in getattr(t, "types", ()) or ():
        _ms_bounds(sub, out)


def msgspec_bounds(struct: type[msgspec.Struct]) -> dict[str, Counter[tuple[str, Any]]]:
    """Every field's bounds, counted, from msgspec's view of the struct."""
    info = mi.type_info(struct)
    assert isinstance(info, mi.StructType)
    out: dict[str, Counter[tuple[str, Any]]] = {}
    for f in info.fields:
        c: Counter[tuple[str, Any]] = Counter()
        _ms_bounds(f.type, c)
        out[f.name] = c
    return out


@pytest.mark.parametrize(("model", "struct"), PAIRS, ids=[m.__name__ for m, _ in PAIRS])
def test_struct_mirrors_model(model: type[BaseModel], struct: type[msgspec.Struct]) -> None:
    want, got = pydantic_bounds(model), msgspec_bounds(struct)
    assert set(got) == set(want), f"fields differ: model only {set(want) - set(got)}, struct only {set(got) - set(want)}"
    # A union in pydantic (FiniteFloat | bool | ShortText | None) carries each branch's bounds once,
    # like msgspec; compare the sets of bounds per field (the counts differ only by how often a
    # shared alias is spelled).
    diff = {f: (sorted(set(want[f])), sorted(set(got[f]))) for f in want if set(want[f]) != set(got[f])}
    assert not diff, "bounds differ (model, struct): " + "; ".join(f"{f}: {w} vs {g}" for f, (w, g) in diff.items())


def test_the_mirror_check_sees_a_forgotten_bound() -> None:
    """The comparison can fail: a struct without the inputs bound is told apart from the model."""

    class Loose(msgspec.Struct):
        inputs: dict[structs.NameLen, structs.Feature] = {}

    assert ("max_length", 2000) in pydantic_bounds(events.PredictionV1)["inputs"]
    assert ("max_length", 2000) not in msgspec_bounds(Loose)["inputs"]


def test_name_keys_are_bounded_by_the_name_check() -> None:
    """Map keys are plain str in the structs; their alphabet and length (1..NAME_MAX) are the batch
    name check's, whose patterns are built from the same limits."""
    assert structs.NAMES.pattern.pattern == f"[{L.NAME_ALPHABET}]{{1,{L.NAME_MAX}}}"
    assert structs.VERSIONS.pattern.pattern == f"[{L.NAME_ALPHABET}]{{1,{L.VERSION_MAX}}}"
    ev = structs.PredictionV1(event_id="e", prediction_id="p", ts=0, model="m", model_version="v", error="x",
                              inputs={"k" * (L.NAME_MAX + 1): 1.0})
    assert structs.name_error(ev) is not None and not structs.names_ok(ev)
