"""OTLP in: spans per second from the official OpenTelemetry SDK's OTLP/HTTP exporter to Kafka.

``otlp.spans_per_s``: GenAI chat spans (made beforehand by the official SDK) exported in batches of
512 (the SDK's BatchSpanProcessor default) by ``OTLPSpanExporter`` (gzip) to the receiver (uvicorn
on 127.0.0.1, behind the door with a token), which maps them and hands them to the producer; the
clock stops when the producer has delivered every event to the real broker.

Baseline, the same run: the same exporter sending the same batches to a receiver that only parses
the request with the same protobuf classes and answers an empty ``ExportTraceServiceResponse`` (same
server, same door): the SDK exporter's own rate, the ceiling for any receiver on this machine.
Both servers run in this process (a thread), so the exporter and the server share the GIL, as they
would not in production; the ratio is what matters.

``otlp.receiver_us_per_span``: the receiver's own cost per span (decode + map + validate + produce),
called in-process on the serialised batches, no HTTP.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bench.context import BenchContext
from inferwatch.api.app import create_app
from inferwatch.config import Settings
from inferwatch.infra.kafka_native import free_port
from inferwatch.kafka.admin import apply_topics
from inferwatch.otlp.http import create_otlp_app
from inferwatch.otlp.receiver import OtlpReceiver
from inferwatch.otlp.request_body import PROTOBUF

TOKEN = "bench-token"
BATCH = 512


def _spans(n: int) -> list[ReadableSpan]:
    exp = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": "bench-bot", "deployment.environment.name": "prod"}))
    tp.add_span_processor(SimpleSpanProcessor(exp))
    tracer = tp.get_tracer("bench")
    for i in range(n):
        with tracer.start_as_current_span("chat gpt-4o") as s:
            s.set_attributes({
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.usage.input_tokens": 40 + i % 50, "gen_ai.usage.output_tokens": 80 + i % 30,
                "gen_ai.response.finish_reasons": ["stop"],
                "gen_ai.prompt.0.content": f"Summarise ticket {i % 997}: " + "the customer says the app crashes " * 4,
                "gen_ai.completion.0.content": "The app crashes on start; ask for logs. " * 3,
            })
    tp.shutdown()
    return list(exp.get_finished_spans())


class _Served:
    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> _Served:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self.server.started:
            raise RuntimeError("the benchmark's server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _null_app(s: Settings) -> Any:
    """The baseline receiver: parse with the official classes, answer an empty response."""
    router = APIRouter()
    empty = ExportTraceServiceResponse().SerializeToString()

    @router.post("/v1/traces")
    async def traces(request: Request) -> Response:
        import gzip

        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        ExportTraceServiceRequest.FromString(body)
        return Response(empty, media_type=PROTOBUF)

    return create_app(None, extra_routers=[router], settings=s, alerts=False, metrics=False)


def _export_all(port: int, spans: list[ReadableSpan]) -> float:
    """Seconds to export every span in batches, as the SDK's batch processor would."""
    exp = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces", headers={"Authorization": f"Bearer {TOKEN}"},
                           compression=Compression.Gzip, timeout=30)
    t0 = time.perf_counter()
    for i in range(0, len(spans), BATCH):
        if exp.export(spans[i:i + BATCH]) is not SpanExportResult.SUCCESS:
            raise RuntimeError("the exporter reported a failed export")
    dt = time.perf_counter() - t0
    exp.shutdown()
    return dt


def run(ctx: BenchContext) -> None:
    n = 4_000 if ctx.quick else 40_000
    spans = _spans(n)
    s = Settings(kafka_bootstrap=ctx.kafka_bootstrap, topic_prefix=f"bench-otlp-{int(time.time())}.",
                 data_dir=ctx.scratch / "otlp", api_token=TOKEN)
    apply_topics(s)

    # baseline: the SDK exporter against a parse-only receiver
    with _Served(_null_app(s)) as srv:
        _export_all(srv.port, spans[:BATCH])  # warm-up (connection, imports)
        base_s = _export_all(srv.port, spans)
    base_rate = n / base_s

    rec = OtlpReceiver(s, spool_dir=ctx.scratch / "otlp-spool")
    try:
        with _Served(create_otlp_app(s, rec)) as srv:
            _export_all(srv.port, spans[:BATCH])
            before = rec.c.snapshot()["predictions"]
            t0 = time.perf_counter()
            http_s = _export_all(srv.port, spans)
            if not rec.flush(120):
                raise RuntimeError("the receiver's events were not delivered within 120 s")
            total_s = time.perf_counter() - t0
        got = rec.c.snapshot()["predictions"] - before
        if got != n:
            raise RuntimeError(f"the receiver published {got} predictions of {n} spans")
        ctx.record("otlp.spans_per_s", n / total_s, "spans/s", baseline="otel-sdk-exporter-to-parse-only-receiver",
                   baseline_value=base_rate, spans=n, batch=BATCH, compression="gzip",
                   accepted_spans_per_s=round(n / http_s), delivered_to_kafka=True)

        # the receiver's own CPU per span, without HTTP
        bodies = [encode_spans(spans[i:i + BATCH]).SerializeToString() for i in range(0, len(spans), BATCH)]
        t0 = time.perf_counter()
        for b in bodies:
            rec.export(b, PROTOBUF, None)
        per_span_us = (time.perf_counter() - t0) / n * 1e6
        rec.flush(120)
        ctx.record("otlp.receiver_us_per_span", per_span_us, "us", spans=n, batch=BATCH,
                   what="decode + map + validate + produce, in-process")
    finally:
        rec.close()
