"""Validate decoded events against the contract, with errors that name the field and the rule.

Wire types are strict (pydantic's strict mode): an integer field takes a JSON integer (not ``1.0``,
not ``"1"``), a number field a JSON number, a boolean ``true``/``false``. That is what the JSON
Schema says and what the msgspec structs of the sink and the processor check; pydantic's lax mode
would accept ``"5"`` for a timestamp that every other hop refuses. Python code that builds events
from its own values (``PredictionV1(...)``) is not affected.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError
from pydantic_core import from_json

from inferwatch.contract.errors import ContractError, UnknownSchemaError
from inferwatch.contract.events import EVENT_MODELS, _Event


def _path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            # pydantic puts union branch names (e.g. "float", "constrained-str") into loc; they are
            # not fields and would only confuse the reader of the path.
            if item in {"float", "int", "bool", "str", "constrained-str", "constrained-float", "list[float]", "none"}:
                continue
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def validate(schema: str, data: dict[str, Any] | bytes | str) -> _Event:
    """Validate ``data`` as the event ``schema`` (e.g. ``"prediction.v1"``) and return the model.

    Raises :class:`ContractError` naming the first offending field's path and the broken rule.
    """
    model = EVENT_MODELS.get(schema)
    if model is None:
        raise UnknownSchemaError(f"unknown schema {schema!r}; known: {sorted(EVENT_MODELS)}")
    if isinstance(data, bytes | str):
        try:
            data = parse_json(data)
        except ValueError as exc:
            raise ContractError(schema, "", "json", f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ContractError(schema, "", "type", "an event must be a JSON object")
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        raise ContractError(schema, _path(tuple(err["loc"])), err["type"], err["msg"]) from None


def parse_json(raw: bytes | str) -> Any:
    """The wire's JSON: strict RFC 8259 (no NaN/Infinity, no lone surrogates, no BOM), numbers of
    any size, and the last of duplicate keys wins — everywhere, before any field is validated.

    (pydantic's own JSON mode takes ``NaN``, and validates a map's entries while it parses them,
    so ``{"a": [1], "a": 2}`` failed on the first one in a map but not among an event's fields.)
    Raises ``ValueError`` with the parser's message.
    """
    return from_json(raw, allow_inf_nan=False)


def validate_any(data: dict[str, Any] | bytes | str) -> _Event:
    """Validate an event by the ``schema_version`` it names."""
    if isinstance(data, bytes | str):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ContractError("?", "", "json", f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ContractError("?", "", "type", "an event must be a JSON object")
    schema = data.get("schema_version")
    if not isinstance(schema, str) or schema not in EVENT_MODELS:
        raise ContractError("?", "schema_version", "enum", f"unknown or missing schema_version {schema!r}")
    return validate(schema, data)
