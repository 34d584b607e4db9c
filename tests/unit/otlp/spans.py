"""Real spans for the OTLP tests: made by the official OpenTelemetry SDK, encoded by its OTLP encoder."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode, Tracer

RESOURCE = {"service.name": "chatbot", "deployment.environment.name": "prod"}

GENAI_CHAT: dict[str, Any] = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.usage.input_tokens": 12,
    "gen_ai.usage.output_tokens": 30,
    "gen_ai.response.finish_reasons": ["stop"],
    "gen_ai.input.messages": '[{"role": "user", "parts": [{"type": "text", "content": "what is 2+2?"}]}]',
    "gen_ai.output.messages": '[{"role": "assistant", "parts": [{"type": "text", "content": "4"}], '
                              '"finish_reason": "stop"}]',
}

OPENINFERENCE_LLM: dict[str, Any] = {
    "openinference.span.kind": "LLM",
    "llm.model_name": "claude-3-5-sonnet",
    "llm.provider": "anthropic",
    "llm.token_count.prompt": 7,
    "llm.token_count.completion": 3,
    "llm.input_messages.0.message.role": "user",
    "llm.input_messages.0.message.content": "hello",
    "llm.output_messages.0.message.role": "assistant",
    "llm.output_messages.0.message.content": "hi there",
}


@contextmanager
def tracer(resource: Mapping[str, Any] = RESOURCE) -> Iterator[tuple[Tracer, Callable[[], ExportTraceServiceRequest]]]:
    """A tracer of a fresh provider with an in-memory exporter, and a function that returns the
    finished spans as the ``ExportTraceServiceRequest`` the OTLP exporter would send."""
    exp = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create(dict(resource)))
    tp.add_span_processor(SimpleSpanProcessor(exp))
    try:
        yield tp.get_tracer("tests"), lambda: encode_spans(exp.get_finished_spans())
    finally:
        tp.shutdown()


def request_of(*spans: tuple[str, Mapping[str, Any]], error: str | None = None,
               resource: Mapping[str, Any] = RESOURCE) -> ExportTraceServiceRequest:
    """One request holding one span per ``(name, attributes)``; ``error`` sets an ERROR status on each."""
    with tracer(resource) as (t, export):
        for name, attrs in spans:
            with t.start_as_current_span(name, record_exception=False, set_status_on_exception=False) as s:
                s.set_attributes(dict(attrs))
                if error is not None:
                    s.set_status(Status(StatusCode.ERROR, error))
        return export()
