"""Map one OpenTelemetry span to a ``prediction.v1`` event, or say it is no model call.

Which spans are model calls (anything else is ignored and counted):

* ``inferwatch.model`` is set (an explicit opt-in), or
* OpenInference: ``openinference.span.kind`` is ``LLM``, or
* GenAI semantic conventions: ``gen_ai.operation.name`` is ``chat``, ``text_completion``,
  ``generate_content`` or ``completion``; with no operation name, a ``gen_ai.request.model`` or
  ``gen_ai.response.model`` (older OpenLLMetry spans). Embeddings, tool and agent spans are not.

What each field comes from:

* ``model``/``model_version``: the attribute lists of :class:`~inferwatch.otlp.config.OtlpMapping`
  (request model, then response model; the version defaults to the response model, e.g.
  ``gpt-4o`` / ``gpt-4o-2024-08-06``). Characters outside the name alphabet become ``_``.
* ``ts``: the span's end (ms), ``latency_ms``: end - start.
* ``error``: the status message (or ``error.type``, or ``"error"``) when the status is ERROR.
* ``llm.input_tokens``/``output_tokens``: ``gen_ai.usage.input_tokens``/``output_tokens`` (or the
  older ``prompt_tokens``/``completion_tokens``), ``llm.token_count.prompt``/``completion``.
* ``llm.finish_reason``: the first of ``gen_ai.response.finish_reasons``; ``outputs.label`` is the
  same (``unknown`` when the span names none), so the share of ``length`` answers is a metric.
* ``llm.token_logprobs``: a double-array attribute (no convention defines one; see the config).
* ``llm.prompt``/``completion``: ``gen_ai.input.messages``/``gen_ai.output.messages`` (text parts),
  ``gen_ai.prompt.N.content``/``gen_ai.completion.N.content``, the ``gen_ai.content.prompt``/
  ``gen_ai.content.completion`` span events, OpenInference's ``llm.input_messages.N.message.content``
  /``llm.output_messages.N.message.content`` or ``input.value``/``output.value``. Then the SDK's
  redaction rules apply (``llm_text: hash`` keeps keyed hashes only).
* ``segment``: the config's table (``service.name``, ``deployment.environment``, the provider).
* ``event_id``: ``otlp-<trace id><span id>`` (hex), so a batch the exporter sends again is
  deduplicated downstream; ``prediction_id``: ``inferwatch.prediction_id`` or ``<trace>-<span>``;
  ``tags``: ``otel.trace_id``, ``otel.span_id``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from pydantic import ValidationError

from inferwatch.contract import limits as L
from inferwatch.contract.events import PredictionV1
from inferwatch.otlp.config import OtlpMapping
from inferwatch.otlp.errors import Unmappable
from inferwatch.sdk.errors import EventValidationError
from inferwatch.sdk.redaction import Redaction

Attrs = dict[str, Any]

_MODEL_CALL_OPS = frozenset({"chat", "text_completion", "generate_content", "completion"})
_NOT_NAME = re.compile(rf"[^{L.NAME_ALPHABET}]")
_INDEXED = re.compile(r"^(gen_ai\.prompt|gen_ai\.completion|llm\.input_messages|llm\.output_messages)\.(\d+)\.")
_INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt",
                 "llm.usage.prompt_tokens")
_OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion",
                  "llm.usage.completion_tokens")
_MAX_DEPTH = 16


def any_value(v: AnyValue, depth: int = 0) -> Any:
    """The Python value of an OTLP ``AnyValue`` (arrays as lists, kvlists as dicts, bytes as bytes)."""
    kind = v.WhichOneof("value")
    if kind == "string_value":  # most attributes: first, one comparison
        return v.string_value
    if kind is None:
        return None
    if kind in ("array_value", "kvlist_value"):
        if depth >= _MAX_DEPTH:
            raise Unmappable(f"attribute value nested deeper than {_MAX_DEPTH} levels")
        if kind == "array_value":
            return [any_value(x, depth + 1) for x in v.array_value.values]
        return {kv.key: any_value(kv.value, depth + 1) for kv in v.kvlist_value.values}
    return getattr(v, kind)


def attributes(kvs: Any) -> Attrs:
    """A dict of a repeated ``KeyValue`` field (a later duplicate key wins)."""
    return {kv.key: any_value(kv.value) for kv in kvs}


def is_model_call(attrs: Mapping[str, Any]) -> bool:
    """Whether a span with these attributes describes a model call (see the module docstring)."""
    if "inferwatch.model" in attrs:
        return True
    if str(attrs.get("openinference.span.kind", "")).upper() == "LLM":
        return True
    op = attrs.get("gen_ai.operation.name")
    if op is not None:
        return str(op) in _MODEL_CALL_OPS
    return "gen_ai.request.model" in attrs or "gen_ai.response.model" in attrs


def hex_id(b: bytes) -> str:
    """Lower-case hex of a trace or span id."""
    return b.hex()


def event_id(trace_id: bytes, span_id: bytes) -> str:
    """The event id of the span's event: stable across retries of the same span (≤ 53 characters)."""
    return f"otlp-{hex_id(trace_id)}{hex_id(span_id)}"


class SpanMapper:
    """Maps spans under one :class:`OtlpMapping` and one redaction (or none)."""

    def __init__(self, mapping: OtlpMapping, redaction: Redaction | None) -> None:
        self.mapping = mapping
        self.redaction = redaction

    def map(self, span: Span, resource: Attrs) -> dict[str, Any] | None:
        """The validated (and redacted) event dict of ``span``, or ``None`` when it is no model call.

        Raises :class:`Unmappable` with the reason (and the field's path) when it is a model call
        that breaks the contract.
        """
        attrs = attributes(span.attributes)
        if not is_model_call(attrs):
            return None
        m = self.mapping
        trace_id, span_id = span.trace_id, span.span_id  # each read of a bytes field makes a new object
        if len(trace_id) != 16 or len(span_id) != 8:
            raise Unmappable("a span needs a 16-byte trace id and an 8-byte span id", "span_id")
        trace_hex, span_hex = trace_id.hex(), span_id.hex()
        ev: dict[str, Any] = {
            "schema_version": "prediction.v1",
            "event_id": f"otlp-{trace_hex}{span_hex}",  # = event_id(trace_id, span_id)
        }
        pid = _first(attrs, resource, m.prediction_id)
        ev["prediction_id"] = str(pid) if pid is not None else f"{trace_hex}-{span_hex}"
        end, start = span.end_time_unix_nano, span.start_time_unix_nano
        if not end and not start:
            raise Unmappable("the span has neither a start nor an end time", "ts")
        ev["ts"] = (end or start) // 1_000_000
        model = _first(attrs, resource, m.model)
        if model is None:
            raise Unmappable(f"no model name: none of {', '.join(m.model)} is set", "model")
        ev["model"] = _name(model, "model", L.NAME_MAX)
        version = _first(attrs, resource, m.model_version)
        ev["model_version"] = _name(version, "model_version", L.VERSION_MAX) if version is not None else m.default_version
        if end and start and end >= start:
            ev["latency_ms"] = (end - start) / 1e6
        llm = self._llm(span, attrs)
        if span.status.code == Status.STATUS_CODE_ERROR:
            err = span.status.message or attrs.get("error.type") or "error"
            ev["error"] = str(err)[: L.ERROR_MAX]
        else:
            ev["outputs"] = {"label": llm.get("finish_reason") or "unknown"}
        seg = {}
        for key, names in m.segment.items():
            v = _first(attrs, resource, names)
            if v is not None and v != "":
                seg[key] = _text(v)[: L.SHORT_TEXT_MAX]
        if seg:
            ev["segment"] = seg
        if llm:
            ev["llm"] = llm
        ev["tags"] = {"otel.trace_id": trace_hex, "otel.span_id": span_hex}
        try:
            PredictionV1.model_validate(ev)
        except ValidationError as exc:
            first = exc.errors()[0]
            path = ".".join(str(x) for x in first.get("loc", ()))
            raise Unmappable(f"{path}: {first.get('msg')}", path or None) from None
        if self.redaction is not None:
            try:
                ev = self.redaction.prediction(ev)
            except EventValidationError as exc:
                raise Unmappable(str(exc), exc.field) from None
        return ev

    def _llm(self, span: Span, attrs: Attrs) -> dict[str, Any]:
        m = self.mapping
        out: dict[str, Any] = {}
        n = _count(attrs, _INPUT_TOKENS, "llm.input_tokens")
        if n is not None:
            out["input_tokens"] = n
        n = _count(attrs, _OUTPUT_TOKENS, "llm.output_tokens")
        if n is not None:
            out["output_tokens"] = n
        fr = _first(attrs, {}, m.finish_reason)
        if isinstance(fr, list | tuple):
            fr = fr[0] if fr else None
        if fr is not None and fr != "":
            out["finish_reason"] = _text(fr)[: L.SHORT_TEXT_MAX]
        lp = _first(attrs, {}, m.token_logprobs)
        if lp is not None:
            if not isinstance(lp, list) or not all(isinstance(x, float | int) and not isinstance(x, bool) for x in lp):
                raise Unmappable("llm.token_logprobs: expected an array of numbers", "llm.token_logprobs")
            out["token_logprobs"] = [float(x) for x in lp]
        if m.capture_text:
            prompt, completion = _texts(span, attrs)
            cap = m.max_text_chars
            if prompt is not None:
                out["prompt"] = prompt[:cap]
            if completion is not None:
                out["completion"] = completion[:cap]
                if len(completion) > cap:
                    out["completion_chars"] = min(len(completion), L.LLM_COUNT_MAX)
        return out


def _first(attrs: Mapping[str, Any], resource: Mapping[str, Any], names: list[str] | tuple[str, ...]) -> Any:
    for n in names:
        v = attrs.get(n)
        if v is not None:
            return v
    for n in names:
        v = resource.get(n)
        if v is not None:
            return v
    return None


def _text(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bytes):
        return v.hex()
    return orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS).decode() if isinstance(v, list | dict) else str(v)


def _name(v: Any, path: str, max_len: int) -> str:
    s = _NOT_NAME.sub("_", _text(v))
    if not s or len(s) > max_len:
        raise Unmappable(f"{path}: a name of 1..{max_len} characters is needed, got {len(s)}", path)
    return s


def _count(attrs: Mapping[str, Any], names: tuple[str, ...], path: str) -> int | None:
    v = _first(attrs, {}, names)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or v != v or not 0 <= v <= L.LLM_COUNT_MAX or v != int(v):
        raise Unmappable(f"{path}: expected a token count in 0..{L.LLM_COUNT_MAX}, got {v!r}"[:500], path)
    return int(v)


def _texts(span: Span, attrs: Attrs) -> tuple[str | None, str | None]:
    """Prompt and completion texts from the conventions' attributes and events (first found wins)."""
    prompt = _messages_text(attrs.get("gen_ai.input.messages"))
    completion = _messages_text(attrs.get("gen_ai.output.messages"))
    indexed: dict[str, dict[int, str]] = {}
    if prompt is None or completion is None:
        for k, v in attrs.items():
            mt = _INDEXED.match(k)
            if mt and k.endswith(".content") and isinstance(v, str):
                indexed.setdefault(mt.group(1), {})[int(mt.group(2))] = v
    for name in ("gen_ai.prompt", "llm.input_messages"):
        if prompt is None and name in indexed:
            prompt = "\n".join(t for _, t in sorted(indexed[name].items()))
    for name in ("gen_ai.completion", "llm.output_messages"):
        if completion is None and name in indexed:
            completion = "\n".join(t for _, t in sorted(indexed[name].items()))
    if prompt is None or completion is None:
        for e in span.events:
            if e.name not in ("gen_ai.content.prompt", "gen_ai.content.completion"):
                continue
            ea = attributes(e.attributes)
            if e.name == "gen_ai.content.prompt" and prompt is None and isinstance(ea.get("gen_ai.prompt"), str):
                prompt = ea["gen_ai.prompt"]
            if e.name == "gen_ai.content.completion" and completion is None and isinstance(ea.get("gen_ai.completion"), str):
                completion = ea["gen_ai.completion"]
    if prompt is None and isinstance(attrs.get("input.value"), str):
        prompt = attrs["input.value"]
    if completion is None and isinstance(attrs.get("output.value"), str):
        completion = attrs["output.value"]
    return prompt, completion


def _messages_text(v: Any) -> str | None:
    """The text of a ``gen_ai.input.messages``/``output.messages`` value: the text parts of its messages
    joined by newlines; the value itself when it is not the conventions' JSON."""
    if v is None:
        return None
    doc = v
    if isinstance(v, str):
        try:
            doc = orjson.loads(v)
        except orjson.JSONDecodeError:
            return v
    if not isinstance(doc, list):
        return _text(v)
    parts: list[str] = []
    for msg in doc:
        if not isinstance(msg, dict):
            continue
        for p in msg.get("parts") or ():
            if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("content"), str):
                parts.append(p["content"])
        if isinstance(msg.get("content"), str):  # the older {"role", "content"} form
            parts.append(msg["content"])
    return "\n".join(parts) if parts else _text(v)
