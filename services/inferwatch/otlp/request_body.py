"""Decode an OTLP/HTTP traces request body into the official protobuf classes.

Wire formats (OTLP/HTTP, ``POST /v1/traces``):

* ``Content-Type: application/x-protobuf``: a serialised ``ExportTraceServiceRequest``;
* ``Content-Type: application/json``: the OTLP JSON encoding, i.e. protobuf's JSON mapping with
  OTLP's two differences: ``traceId``/``spanId``/``parentSpanId`` are hex strings (not base64), and
  enums are integers (protobuf's parser accepts those already). Keys are lowerCamelCase; unknown
  fields are ignored, as the specification asks of receivers.
* ``Content-Encoding: gzip`` on either, or none (``identity``).

Parsing is done by the classes of the ``opentelemetry-proto`` package (``ExportTraceServiceRequest``
and ``google.protobuf.json_format``), never by hand. The compressed size is bounded by the HTTP
door's body limit; the decompressed size by ``max_bytes`` here, counted while inflating, so a
gzip bomb costs at most ``max_bytes`` of memory before it is refused with 413.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from inferwatch.otlp.errors import BadRequest

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

#: Largest decompressed request body, in bytes (the door bounds the compressed one).
DEFAULT_MAX_DECODED_BYTES = 32 * 1024 * 1024

# Fields of the OTLP JSON encoding that carry ids as hex (protobuf's JSON mapping says base64).
_HEX_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def media_type(content_type: str | None) -> str:
    """``application/x-protobuf`` or ``application/json`` from a Content-Type header (parameters such
    as ``charset`` ignored); anything else is a 415."""
    mt = (content_type or "").split(";", 1)[0].strip().lower()
    if mt in (PROTOBUF, JSON):
        return mt
    raise BadRequest(415, f"unsupported Content-Type {content_type!r}: send {PROTOBUF} or {JSON}")


def inflate(body: bytes, content_encoding: str | None, max_bytes: int = DEFAULT_MAX_DECODED_BYTES) -> bytes:
    """The body without its Content-Encoding (``gzip`` or none), refused with 413 past ``max_bytes``."""
    enc = (content_encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        if len(body) > max_bytes:
            raise BadRequest(413, f"request body over {max_bytes} bytes")
        return body
    if enc != "gzip":
        raise BadRequest(415, f"unsupported Content-Encoding {content_encoding!r}: send gzip or none")
    d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing only
    try:
        # One byte more than allowed tells "over the limit" apart from "exactly at it".
        out = d.decompress(body, max_bytes + 1)
        if len(out) > max_bytes:
            raise BadRequest(413, f"request body over {max_bytes} bytes once decompressed")
        if not d.eof:
            raise BadRequest(400, "truncated gzip body")
    except zlib.error as exc:
        raise BadRequest(400, f"malformed gzip body: {exc}") from None
    return out


def parse(body: bytes, mt: str) -> ExportTraceServiceRequest:
    """An ``ExportTraceServiceRequest`` from an (inflated) body of media type ``mt``; 400 when malformed."""
    req = ExportTraceServiceRequest()
    if mt == PROTOBUF:
        try:
            req.ParseFromString(body)
        except (DecodeError, RecursionError, ValueError) as exc:
            raise BadRequest(400, f"malformed protobuf: {exc or type(exc).__name__}") from None
        return req
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(400, f"malformed JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequest(400, "malformed OTLP JSON: the body must be an object")
    try:
        _hex_ids_to_base64(doc)
        json_format.ParseDict(doc, req, ignore_unknown_fields=True)
    except Exception as exc:  # noqa: BLE001 - whatever the parser trips on, the body is what is wrong
        raise BadRequest(400, f"malformed OTLP JSON: {str(exc)[:500] or type(exc).__name__}") from None
    return req


def decode_request(body: bytes, content_type: str | None, content_encoding: str | None,
                   max_bytes: int = DEFAULT_MAX_DECODED_BYTES) -> tuple[ExportTraceServiceRequest, str]:
    """The request and its media type (the response is written in the same one)."""
    mt = media_type(content_type)
    return parse(inflate(body, content_encoding, max_bytes), mt), mt


def encode_response(resp: ExportTraceServiceResponse, mt: str) -> bytes:
    """The response body in the request's media type (OTLP JSON writes int64 as strings, as here)."""
    if mt == PROTOBUF:
        return resp.SerializeToString()
    return orjson.dumps(json_format.MessageToDict(resp))


def _hex_ids_to_base64(doc: dict[str, Any]) -> None:
    """Rewrite the hex ids of spans and links to base64 in place, so protobuf's parser reads them."""
    for rs in _list(doc, "resourceSpans", "resource_spans"):
        for ss in _list(rs, "scopeSpans", "scope_spans"):
            for span in _list(ss, "spans"):
                _ids(span)
                for link in _list(span, "links"):
                    _ids(link)


def _list(obj: Any, *names: str) -> list[Any]:
    if not isinstance(obj, dict):
        raise ValueError(f"expected an object, got {type(obj).__name__}")
    for n in names:
        v = obj.get(n)
        if v is not None:
            if not isinstance(v, list):
                raise ValueError(f"{n}: expected a list, got {type(v).__name__}")
            return v
    return []


def _ids(obj: Any) -> None:
    if not isinstance(obj, dict):
        raise ValueError(f"expected an object, got {type(obj).__name__}")
    for f in _HEX_ID_FIELDS:
        v = obj.get(f)
        if v is None or v == "":
            continue
        if not isinstance(v, str):
            raise ValueError(f"{f}: expected a hex string, got {type(v).__name__}")
        try:
            obj[f] = base64.b64encode(binascii.unhexlify(v)).decode()
        except (binascii.Error, ValueError):
            raise ValueError(f"{f}: not a hex string: {v[:40]!r}") from None
