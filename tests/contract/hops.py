"""Every hop's own decision on one event (message bytes), with the field its refusal names.

A hop answers :class:`Verdict`: accepted, or refused with the *field* its reason names — the path of
struct fields from the event's root (``inputs``, ``outputs.score``, ``lineage.model``), map keys
and list indexes left out, ``""`` for the event as a whole (not JSON, not an object, a rule over
several fields). Each hop's error (pydantic's ``loc``, msgspec's ``$.a[...].b``, the SDK's
``inputs['k']``, jsonschema's ``absolute_path``) is normalised by :func:`field_of` against the
contract's model tree, so the hops can be compared.

The hops, each run the way the service runs it:

* ``json_schema``: the generated JSON Schema (``schemas/events``), draft 2020-12, with two rules of
  the contract that Python's JSON Schema stack does not give by itself: patterns are ECMA-262 (``$``
  is the end of the text; Python's ``re`` also matches before a final newline) and an ``integer``
  is a JSON integer literal (``1.0`` is a float token). JSON is parsed strictly: no NaN/Infinity
  literals, no lone surrogates (RFC 8259 leaves them undefined; every other hop refuses them).
* ``pydantic``: :func:`inferwatch.contract.validate` (the contract's models, strict wire types).
* ``sdk``: a real ``InferenceLogger.prediction()``/``feedback()`` call made from the event (its C
  fast path when the call is the common one, the Python checks otherwise), pointed at a closed port.
  The SDK writes ``event_id``/``schema_version`` itself and its API has no way to say "null" for a
  field that None means "absent" for, so events that differ from a valid one only there are not SDK
  calls (``None``: not applicable). Unknown keys in ``outputs``/``llm``/``lineage`` are left out of
  the call (the contract ignores them; the SDK refuses them as a caller's typo).
* ``sdk_c``: the C encoder alone (``inferwatch.native._encode``): it returns bytes only for calls it
  is sure of, and those bytes must be a valid event.
* ``sink``: ``inferwatch.sink.batch.process`` on the batch (C flat decoder, msgspec structs, pydantic
  for the reasons): a row, or a dead letter with its ``error_path``.
* ``processor``: ``ProcessorCore.process_prediction_values``/``process_feedback`` (C columns and the
  msgspec structs; ``fast=False``: the structs alone): counted, or rejected with a reason.
* ``c_decoder``/``py_twin``: ``inferwatch.native.prediction_columns`` alone: ``ok`` may only be true for
  an event the contract accepts (a fast path may refuse more, never accept more).
"""

from __future__ import annotations

import json
import re
import socket
import typing
from dataclasses import dataclass
from typing import Any

import jsonschema
from pydantic import BaseModel, ValidationError
from pydantic_core import from_json

from inferwatch.contract import ContractError, jsonschema_gen, validate
from inferwatch.contract.events import EVENT_MODELS
from inferwatch.contract.validate import _path


@dataclass(frozen=True)
class Verdict:
    """One hop's decision: ``ok``, and when refused the field its reason names."""

    ok: bool
    field: str = ""
    detail: str = ""
    fields: tuple[str, ...] = ()
    """Every field the hop names (the JSON Schema reports all errors; the others name one)."""
    errors: int = 1
    """How many rules the event breaks (the contract's verdict counts them; others say 1)."""

    def names(self) -> tuple[str, ...]:
        """The fields this refusal names."""
        return self.fields or (self.field,)


OK = Verdict(True)


# -- field paths ----------------------------------------------------------------------------------
def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``annotation`` (``Outputs | None``, ``list[LineageRef] | None``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        m = _model_of(arg)
        if m is not None:
            return m
    return None


_TOKEN = re.compile(r"\[[^\]]*\]|[^.\[\]]+")


def field_of(schema: str, path: str | list[Any]) -> str:
    """``path`` (any hop's spelling) as the contract's field path: struct fields only."""
    tokens = [str(t) for t in path] if isinstance(path, list) else _TOKEN.findall(path.lstrip("$"))
    node: type[BaseModel] | None = EVENT_MODELS[schema]
    out: list[str] = []
    for tok in tokens:
        if node is None:
            break  # inside a map or a list of scalars: keys and indexes are not fields
        name = tok.strip("'\"")
        if name in node.model_fields:
            out.append(name)
            node = _model_of(node.model_fields[name].annotation)
            if node is None:
                break
    return ".".join(out)


# -- JSON Schema ----------------------------------------------------------------------------------
class _StrictJSON(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _StrictJSON(f"{name} is not JSON")


def _check_strings(x: Any) -> None:
    if isinstance(x, str):
        x.encode("utf-8")  # lone surrogates raise
    elif isinstance(x, dict):
        for k, v in x.items():
            k.encode("utf-8")
            _check_strings(v)
    elif isinstance(x, list):
        for v in x:
            _check_strings(v)


def strict_json(raw: bytes | None) -> Any:
    """``raw`` parsed as strict RFC 8259 JSON (the last of duplicate keys wins, like every hop)."""
    if raw is None:
        raise _StrictJSON("null message")
    # bytes.decode is strict UTF-8 (no overlongs, no encoded surrogates); json.loads of a str then
    # refuses a byte-order mark, which json.loads of bytes would skip.
    doc = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    _check_strings(doc)
    return doc


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    if isinstance(instance, str):
        py = pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith("\\$") else pattern
        if re.search(py, instance) is None:
            yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _json_integer(checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


_BASE = jsonschema.Draft202012Validator
_Validator = jsonschema.validators.extend(
    _BASE,
    validators={"pattern": _ecma_pattern},
    type_checker=_BASE.TYPE_CHECKER.redefine("integer", _json_integer),
)
_VALIDATORS: dict[str, Any] = {}


def json_schema(schema: str, raw: bytes | None) -> Verdict:
    """The generated JSON Schema's decision (every error's field in ``detail``, ``|``-separated)."""
    try:
        doc = strict_json(raw)
    except (ValueError, RecursionError) as exc:
        return Verdict(False, "", f"json: {exc}")
    v = _VALIDATORS.get(schema)
    if v is None:
        v = _VALIDATORS[schema] = _Validator(jsonschema_gen.schema_for(schema))
    try:
        errors = list(v.iter_errors(doc))
    except RecursionError:
        return Verdict(False, "", "json: nesting too deep")
    if not errors:
        return OK
    fields = sorted({field_of(schema, _error_path(e)) for e in _leaves(errors)})
    return Verdict(False, fields[0], "|".join(fields), tuple(fields))


def _error_path(e: Any) -> list[Any]:
    """Where an error is; a missing property is the property's place, not its parent's."""
    path = list(e.absolute_path)
    if e.validator == "required":
        m = re.match(r"^'(.*)' is a required property$", e.message)
        if m:
            path.append(m.group(1))
    return path


def _leaves(errors: list[Any]) -> list[Any]:
    """The innermost errors: an ``anyOf`` (``X | None``) fails at its own place, its branches deeper."""
    out: list[Any] = []
    for e in errors:
        out += [e] if not e.context else [e, *_leaves(list(e.context))]
    return out


# -- pydantic ---------------------------------------------------------------------------------------
_RULES = {"prediction.v1": ("outputs", "error"), "feedback.v1": ("label", "value")}


def pydantic(schema: str, raw: bytes | None) -> Verdict:
    """:func:`inferwatch.contract.validate` on the bytes; ``errors`` counts every broken rule (pydantic
    checks the rule over several fields only once every field is valid, so it is counted here)."""
    try:
        validate(schema, raw if raw is not None else b"null")
    except ContractError as exc:
        n = 1
        if exc.path:
            try:
                doc = from_json(raw, allow_inf_nan=False)  # type: ignore[arg-type]
                EVENT_MODELS[schema].model_validate(doc, strict=True)
            except ValidationError as all_errors:
                # one error per branch of a union (a feature's float | bool | str | null) is one field
                n = len({field_of(schema, _path(tuple(e["loc"]))) for e in all_errors.errors()})
                if isinstance(doc, dict) and all(doc.get(k) is None for k in _RULES[schema]):
                    n += 1
        return Verdict(False, field_of(schema, exc.path), str(exc), errors=n)
    return OK


# -- msgspec reasons (processor) --------------------------------------------------------------------
_AT = re.compile(r"- at `([^`]*)`(?: in `([^`]*)`)?\s*$")


def msgspec_field(schema: str, reason: str) -> str:
    """The field a msgspec-style reason names (``... - at `$.inputs[...]```, ``- at `key` in `$.tags```)."""
    m = _AT.search(reason)
    where = "" if m is None else m.group(2) if m.group(1) == "key" and m.group(2) else m.group(1)
    missing = _MISSING.search(reason)
    if missing is not None:  # "Object missing required field `x` - at `$.a`": the field is a.x
        where = f"{where or '$'}.{missing.group(1)}"
    return field_of(schema, where)


_MISSING = re.compile(r"missing required field `([^`]*)`")


# -- the SDK ----------------------------------------------------------------------------------------
def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_PORT = _dead_port()
_OUTPUT_KEYS = ("label", "score", "probabilities", "value")
_LLM_KEYS = ("prompt", "completion", "prompt_hash", "completion_hash", "completion_chars", "refusal",
             "token_logprobs", "top_logprobs", "input_tokens", "output_tokens", "finish_reason")
_LINEAGE_KEYS = ("kind", "model", "model_version", "share")
_NOT_NULL = object()


def _known(d: Any, keys: tuple[str, ...]) -> Any:
    return {k: v for k, v in d.items() if k in keys} if isinstance(d, dict) else d


def sdk_call(schema: str, raw: bytes | None) -> dict[str, Any] | None:
    """The SDK call that would produce this event, or None when no call can (see the module docstring)."""
    try:
        ev = strict_json(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(ev, dict):
        return None
    eid = ev.get("event_id")
    if not (isinstance(eid, str) and 1 <= len(eid) <= 64) or ev.get("schema_version", schema) != schema:
        return None
    if "model" not in ev or "prediction_id" not in ev or "ts" not in ev:
        return None  # the SDK always writes them
    call: dict[str, Any] = {"model": ev["model"], "prediction_id": ev["prediction_id"], "ts_ms": ev["ts"]}
    if schema == "prediction.v1":
        if "model_version" not in ev:
            return None
        call["model_version"] = ev["model_version"]
        for k in ("inputs", "segment", "tags"):  # null is refused by the contract, "absent" to the SDK
            if k in ev and ev[k] is None:
                return None
        if ev.get("prediction_id") is None or ev.get("ts") is None:
            return None
        for k in ("inputs", "outputs", "latency_ms", "segment", "embedding", "error"):
            if k in ev:
                call[k] = ev[k]
        if "outputs" in call:
            call["outputs"] = _known(call["outputs"], _OUTPUT_KEYS)
        if "llm" in ev:
            call["llm"] = _known(ev["llm"], _LLM_KEYS)
        if "lineage" in ev:
            lin = ev["lineage"]
            call["lineage"] = [_known(x, _LINEAGE_KEYS) for x in lin] if isinstance(lin, list) else lin
        if "tags" in ev:
            call["tags"] = ev["tags"]
        return call
    # feedback.v1
    if ev.get("prediction_id") is None or ev.get("ts") is None or ("tags" in ev and ev["tags"] is None):
        return None
    call["model_version"] = ev.get("model_version")
    for k in ("label", "value", "tags"):
        if k in ev:
            call[k] = ev[k]
    return call


class SDK:
    """Real ``InferenceLogger`` objects (one per model name and version), pointed at a closed port."""

    def __init__(self) -> None:
        self.loggers: dict[tuple[Any, Any], Any] = {}

    def _logger(self, model: Any, version: Any) -> Any:
        from inferwatch.sdk import InferenceLogger

        key = (model, version)
        if key not in self.loggers:
            self.loggers[key] = InferenceLogger(model, version, bootstrap=f"127.0.0.1:{_PORT}", spool_dir=None,
                                                close_timeout_s=0.0)
        return self.loggers[key]

    def __call__(self, schema: str, raw: bytes | None) -> Verdict | None:
        """The SDK's decision on the call of this event, or None when it is not an SDK call."""
        from inferwatch.sdk import EventValidationError

        call = sdk_call(schema, raw)
        if call is None:
            return None
        model = call.pop("model")
        version = call.pop("model_version")
        try:
            if schema == "prediction.v1":
                log = self._logger(model, version)
                log.prediction(**call)
            else:
                log = self._logger(model, "sdk-feedback")
                log.feedback(call.pop("prediction_id"), call.pop("label", None), model_version=version, **call)
        except EventValidationError as exc:
            path = {"ts_ms": "ts"}.get(exc.field, exc.field)
            if path == "model_version" and schema == "feedback.v1" and version is None:
                path = "model"
            return Verdict(False, field_of(schema, path), str(exc))
        return OK

    def close(self) -> None:
        """Close every logger (nothing was delivered: there is no broker)."""
        for log in self.loggers.values():
            log.close(0.0)
        self.loggers.clear()


def sdk_c(raw: bytes | None) -> bool | None:
    """Whether the C encoder writes this prediction itself (None: not a call it is given)."""
    from inferwatch.native import load

    call = sdk_call("prediction.v1", raw)
    mod = load("_encode")
    if call is None or mod is None:
        return None
    if set(call) - {"model", "model_version", "prediction_id", "ts_ms", "inputs", "outputs", "latency_ms", "segment"}:
        return None
    try:
        enc = mod.Encoder(call["model"], call["model_version"])
    except (TypeError, ValueError):
        return None
    import itertools

    enc.use_ids("e", itertools.count())
    out = enc.prediction(call.get("inputs"), call.get("outputs"), call.get("latency_ms"), call.get("segment"))
    return out is not None
