"""Hostile and valid bodies through the OTLP decoder (official protobuf classes, JSON mapping, gzip)."""

from __future__ import annotations

import gzip

import orjson
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from inferwatch.otlp.errors import BadRequest
from inferwatch.otlp.request_body import JSON, PROTOBUF, decode_request, encode_response, inflate
from tests.unit.otlp.spans import GENAI_CHAT, request_of


def otlp_json(req: object) -> bytes:
    """The OTLP JSON encoding of ``req``: protobuf JSON with hex ids (what OTLP/JSON senders write)."""
    doc = json_format.MessageToDict(req)  # type: ignore[arg-type]
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for s in ss["spans"]:
                for k in ("traceId", "spanId", "parentSpanId"):
                    if k in s:
                        import base64

                        s[k] = base64.b64decode(s[k]).hex()
                s["kind"] = 3  # enums as integers, as OTLP/JSON says
    return orjson.dumps(doc)


def test_protobuf_and_json_decode_to_the_same_request() -> None:
    req = request_of(("chat", GENAI_CHAT))
    a, mt = decode_request(req.SerializeToString(), PROTOBUF, None)
    assert mt == PROTOBUF and a == req
    b, mt = decode_request(otlp_json(req), "application/json; charset=utf-8", None)
    assert mt == JSON
    span = b.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id == req.resource_spans[0].scope_spans[0].spans[0].trace_id
    assert span.kind == 3


def test_gzip_bodies_are_inflated() -> None:
    req = request_of(("chat", GENAI_CHAT))
    got, _ = decode_request(gzip.compress(req.SerializeToString()), PROTOBUF, "gzip")
    assert got == req


def test_gzip_bomb_is_refused_within_the_limit() -> None:
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))  # 50 MiB of zeros in ~50 KiB
    assert len(bomb) < 100_000
    with pytest.raises(BadRequest) as err:
        inflate(bomb, "gzip", max_bytes=1024 * 1024)
    assert err.value.status == 413


def test_body_at_the_limit_is_accepted_one_byte_more_is_not() -> None:
    assert len(inflate(gzip.compress(b"x" * 1000), "gzip", max_bytes=1000)) == 1000
    with pytest.raises(BadRequest, match="over 999"):
        inflate(gzip.compress(b"x" * 1000), "gzip", max_bytes=999)
    with pytest.raises(BadRequest) as err:
        inflate(b"x" * 1000, None, max_bytes=999)
    assert err.value.status == 413


@pytest.mark.parametrize("body, ctype, cenc, status", [
    (b"\xff\xff\xff\xff", PROTOBUF, None, 400),  # malformed protobuf
    (b"\x0a\x80\x80\x80\x80\x10", PROTOBUF, None, 400),  # a length far beyond the body
    (b"{not json", JSON, None, 400),
    (b"[1, 2]", JSON, None, 400),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', JSON, None, 400),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 5}]}]}]}', JSON, None, 400),
    (b'{"resourceSpans": {"a": 1}}', JSON, None, 400),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 5}]}]}]}', JSON, None, 400),
    (b"{}", "text/plain", None, 415),
    (b"{}", None, None, 415),
    (b"{}", JSON, "br", 415),
    (b"not gzip", JSON, "gzip", 400),
    (gzip.compress(b"{}")[:-6], JSON, "gzip", 400),  # truncated
])
def test_hostile_bodies_are_refused_with_the_right_status(body: bytes, ctype: str | None, cenc: str | None,
                                                          status: int) -> None:
    with pytest.raises(BadRequest) as err:
        decode_request(body, ctype, cenc)
    assert err.value.status == status and err.value.message


def test_unknown_json_fields_are_ignored_and_empty_request_is_fine() -> None:
    req, _ = decode_request(b'{"resourceSpans": [], "somethingNew": 1}', JSON, None)
    assert len(req.resource_spans) == 0


def nested_request(depth: int) -> bytes:
    """A request whose one span has an attribute value nested ``depth`` arrays deep."""
    req = request_of(("chat", GENAI_CHAT))
    span = req.resource_spans[0].scope_spans[0].spans[0]
    kv = span.attributes.add()
    kv.key = "deep"
    v = kv.value
    for _ in range(depth):
        v = v.array_value.values.add()
    v.string_value = "bottom"
    return req.SerializeToString()


def test_deeply_nested_protobuf_is_refused_not_a_crash() -> None:
    with pytest.raises(BadRequest) as err:
        decode_request(nested_request(400), PROTOBUF, None)  # beyond protobuf's recursion limit
    assert err.value.status == 400


def test_nested_values_within_protobufs_limit_are_unmappable_past_16_levels() -> None:
    from inferwatch.otlp.config import OtlpMapping
    from inferwatch.otlp.errors import Unmappable
    from inferwatch.otlp.mapping import SpanMapper

    req, _ = decode_request(nested_request(20), PROTOBUF, None)
    with pytest.raises(Unmappable, match="deeper"):
        SpanMapper(OtlpMapping(), None).map(req.resource_spans[0].scope_spans[0].spans[0], {})


def test_response_in_the_request_media_type() -> None:
    resp = ExportTraceServiceResponse()
    resp.partial_success.rejected_spans = 2
    resp.partial_success.error_message = "why"
    assert ExportTraceServiceResponse.FromString(encode_response(resp, PROTOBUF)) == resp
    assert orjson.loads(encode_response(resp, JSON)) == {"partialSuccess": {"rejectedSpans": "2", "errorMessage": "why"}}
