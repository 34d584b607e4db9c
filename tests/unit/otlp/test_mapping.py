"""Spans made by the official OpenTelemetry SDK, mapped to prediction.v1 events (and refusals)."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from inferwatch.contract.events import PredictionV1
from inferwatch.otlp.config import OtlpMapping, load_mapping
from inferwatch.otlp.errors import ConfigError, Unmappable
from inferwatch.otlp.mapping import SpanMapper, attributes
from inferwatch.sdk.redaction import Redaction
from tests.unit.otlp.spans import GENAI_CHAT, OPENINFERENCE_LLM, request_of

SALT = "s" * 32


def mapped(req: ExportTraceServiceRequest, mapper: SpanMapper | None = None) -> list[dict[str, Any] | None]:
    m = mapper or SpanMapper(OtlpMapping(), None)
    return [m.map(span, attributes(rs.resource.attributes))
            for rs in req.resource_spans for ss in rs.scope_spans for span in ss.spans]


def test_genai_chat_span_becomes_a_prediction() -> None:
    req = request_of(("chat gpt-4o", GENAI_CHAT))
    span = req.resource_spans[0].scope_spans[0].spans[0]
    [ev] = mapped(req)
    assert ev is not None
    PredictionV1.model_validate(ev)
    assert ev["model"] == "gpt-4o" and ev["model_version"] == "gpt-4o-2024-08-06"
    assert ev["event_id"] == f"otlp-{span.trace_id.hex()}{span.span_id.hex()}"
    assert ev["ts"] == span.end_time_unix_nano // 1_000_000
    assert ev["latency_ms"] == pytest.approx((span.end_time_unix_nano - span.start_time_unix_nano) / 1e6)
    assert ev["outputs"] == {"label": "stop"}
    assert ev["segment"] == {"service": "chatbot", "environment": "prod", "provider": "openai"}
    llm = ev["llm"]
    assert (llm["input_tokens"], llm["output_tokens"], llm["finish_reason"]) == (12, 30, "stop")
    assert llm["prompt"] == "what is 2+2?" and llm["completion"] == "4"
    assert ev["tags"]["otel.span_id"] == span.span_id.hex()
    assert "error" not in ev


def test_openinference_llm_span_becomes_a_prediction() -> None:
    [ev] = mapped(request_of(("llm", OPENINFERENCE_LLM)))
    assert ev is not None
    assert ev["model"] == "claude-3-5-sonnet" and ev["model_version"] == "unknown"
    assert ev["llm"]["prompt"] == "hello" and ev["llm"]["completion"] == "hi there"
    assert (ev["llm"]["input_tokens"], ev["llm"]["output_tokens"]) == (7, 3)
    assert ev["outputs"] == {"label": "unknown"} and ev["segment"]["provider"] == "anthropic"


def test_older_openllmetry_attributes_and_logprobs() -> None:
    attrs = {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-3.5-turbo", "gen_ai.usage.prompt_tokens": 5,
             "gen_ai.usage.completion_tokens": 2, "gen_ai.prompt.0.content": "a", "gen_ai.prompt.1.content": "b",
             "gen_ai.completion.0.content": "c", "gen_ai.completion.0.finish_reason": "length",
             "inferwatch.llm.token_logprobs": [-0.25, -1.5]}
    [ev] = mapped(request_of(("openai.chat", attrs)))
    assert ev is not None
    assert ev["llm"]["prompt"] == "a\nb" and ev["llm"]["completion"] == "c"
    assert ev["llm"]["token_logprobs"] == [-0.25, -1.5]
    assert ev["outputs"] == {"label": "length"} and ev["llm"]["finish_reason"] == "length"
    assert (ev["llm"]["input_tokens"], ev["llm"]["output_tokens"]) == (5, 2)


def test_error_status_becomes_the_error() -> None:
    [ev] = mapped(request_of(("chat", GENAI_CHAT), error="rate limited"))
    assert ev is not None and ev["error"] == "rate limited" and "outputs" not in ev
    PredictionV1.model_validate(ev)


def test_spans_that_are_no_model_call_are_ignored() -> None:
    req = request_of(("GET /", {"http.method": "GET"}),
                     ("embeddings", {"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "e5"}),
                     ("tool", {"gen_ai.operation.name": "execute_tool"}),
                     ("retriever", {"openinference.span.kind": "RETRIEVER"}))
    assert mapped(req) == [None, None, None, None]


def test_redaction_hashes_llm_text_with_the_sdk_rules() -> None:
    red = Redaction.of(llm_text="hash", salt=SALT)
    [ev] = mapped(request_of(("chat", GENAI_CHAT)), SpanMapper(OtlpMapping(), red))
    assert ev is not None
    llm = ev["llm"]
    assert "prompt" not in llm and "completion" not in llm
    assert llm["prompt_hash"] == red._digest("what is 2+2?") and llm["completion_chars"] == 1
    PredictionV1.model_validate(ev)


def test_segment_mapping_config(tmp_path: Any) -> None:
    p = tmp_path / "otlp.yaml"
    p.write_text("segment:\n  tenant: [app.tenant]\n  service: [service.name]\ndefault_version: v0\n"
                 "capture_text: false\n")
    m = load_mapping(p)
    [ev] = mapped(request_of(("chat", {**OPENINFERENCE_LLM, "app.tenant": "acme"})), SpanMapper(m, None))
    assert ev is not None
    assert ev["segment"] == {"tenant": "acme", "service": "chatbot"} and ev["model_version"] == "v0"
    assert "prompt" not in ev["llm"] and "completion" not in ev["llm"]


@pytest.mark.parametrize("text, where", [
    ("segment:\n  'bad key': [a]\n", "segment"),
    ("unknown_option: 1\n", "unknown_option"),
    ("- a list\n", "mapping of options"),
    ("default_version: 'has space'\n", "default_version"),
])
def test_bad_mapping_config_names_the_key(tmp_path: Any, text: str, where: str) -> None:
    p = tmp_path / "otlp.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=where):
        load_mapping(p)


def test_names_outside_the_alphabet_are_made_names() -> None:
    [ev] = mapped(request_of(("chat", {**GENAI_CHAT, "gen_ai.request.model": "my model (beta)"})))
    assert ev is not None and ev["model"] == "my_model__beta_"


@pytest.mark.parametrize("attrs, path", [
    ({"inferwatch.model": "x" * 200}, "model"),
    ({"gen_ai.operation.name": "chat"}, "model"),  # a model call without any model name
    ({**GENAI_CHAT, "gen_ai.usage.input_tokens": -3}, "llm.input_tokens"),
    ({**GENAI_CHAT, "gen_ai.usage.output_tokens": 2**40}, "llm.output_tokens"),
    ({**GENAI_CHAT, "inferwatch.llm.token_logprobs": [0.5]}, "llm.token_logprobs"),
    ({**GENAI_CHAT, "inferwatch.llm.token_logprobs": ["x"]}, "llm.token_logprobs"),
    ({**GENAI_CHAT, "inferwatch.llm.token_logprobs": [float("nan")]}, "llm.token_logprobs"),
    ({**GENAI_CHAT, "inferwatch.prediction_id": "p" * 500}, "prediction_id"),
])
def test_unmappable_model_calls_say_why(attrs: dict[str, Any], path: str) -> None:
    with pytest.raises(Unmappable) as err:
        mapped(request_of(("chat", attrs)))
    assert err.value.path is not None and err.value.path.startswith(path), (err.value.path, err.value.reason)
    assert err.value.reason


def test_long_texts_are_cut_and_the_length_kept() -> None:
    m = SpanMapper(OtlpMapping(max_text_chars=10), None)
    attrs = {**OPENINFERENCE_LLM, "llm.output_messages.0.message.content": "y" * 50}
    [ev] = mapped(request_of(("llm", attrs)), m)
    assert ev is not None and ev["llm"]["completion"] == "y" * 10 and ev["llm"]["completion_chars"] == 50


def test_span_without_times_or_ids_is_unmappable() -> None:
    req = request_of(("chat", GENAI_CHAT))
    span = req.resource_spans[0].scope_spans[0].spans[0]
    span.start_time_unix_nano = span.end_time_unix_nano = 0
    with pytest.raises(Unmappable, match="start nor an end"):
        mapped(req)
    span.span_id = b""
    with pytest.raises(Unmappable, match="span id"):
        mapped(req)
