"""OTLP in, end to end: the official OpenTelemetry SDK and its OTLP/HTTP exporter send real spans to
the receiver (uvicorn on 127.0.0.1, behind the token), which publishes to the real broker; the test
reads the predictions and dead-letter topics, stores them with the real sink into chDB, and runs
the processor's core over the very bytes on the topic for its LLM signals."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import uvicorn
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

from inferwatch.config import Settings
from inferwatch.contract.events import DeadletterV1, PredictionV1
from inferwatch.infra.kafka_native import free_port
from inferwatch.otlp.http import create_otlp_app
from inferwatch.otlp.receiver import OtlpReceiver
from inferwatch.processor import ProcessorSettings
from inferwatch.processor.core.raw_events import Raw
from inferwatch.processor.core.state_machine import ProcessorCore
from tests.support.kafka import consume_all
from tests.support.sink import running_sink
from tests.support.store import migrated, wait_for_count

pytestmark = pytest.mark.integration

TOKEN = "otlp-integration-token"


class Served:
    """A uvicorn server in a thread of this process, on a free 127.0.0.1 port."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.server.started
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def otlp(settings: Settings, tmp_path: Any) -> Iterator[tuple[OtlpReceiver, str]]:
    s = settings.model_copy(update={"api_token": TOKEN})
    rec = OtlpReceiver(s, spool_dir=tmp_path / "otlp-spool")
    try:
        with Served(create_otlp_app(s, rec)) as srv:
            yield rec, f"http://127.0.0.1:{srv.port}/v1/traces"
    finally:
        rec.close()


def _provider(endpoint: str, token: str = TOKEN) -> TracerProvider:
    tp = TracerProvider(resource=Resource.create({"service.name": "support-bot",
                                                  "deployment.environment.name": "prod"}))
    exporter = OTLPSpanExporter(endpoint=endpoint, headers={"Authorization": f"Bearer {token}"},
                                compression=Compression.Gzip, timeout=10)
    tp.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=64, schedule_delay_millis=50))
    return tp


def _chat(i: int) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.input_tokens": 10 + i, "gen_ai.usage.output_tokens": 20,
        "gen_ai.response.finish_reasons": ["length" if i % 4 == 0 else "stop"],
        "gen_ai.prompt.0.content": f"question {i % 5}", "gen_ai.completion.0.content": f"answer {i}",
        "inferwatch.llm.token_logprobs": [-0.5, -1.5],
    }


def test_sdk_spans_become_predictions_in_kafka_the_store_and_the_processor(
        settings: Settings, otlp: tuple[OtlpReceiver, str]) -> None:
    rec, endpoint = otlp
    n_ok, n_err = 60, 6
    tp = _provider(endpoint)
    tracer = tp.get_tracer("app")
    for i in range(n_ok):
        with tracer.start_as_current_span("chat gpt-4o") as span:
            span.set_attributes(_chat(i))
            with tracer.start_as_current_span("db.query") as child:  # not a model call
                child.set_attribute("db.system", "postgresql")
    for i in range(n_err):
        with tracer.start_as_current_span("chat gpt-4o", record_exception=False,
                                          set_status_on_exception=False) as span:
            span.set_attributes({**_chat(i), "error.type": "RateLimitError"})
            span.set_status(Status(StatusCode.ERROR, "429 from the provider"))
    with tracer.start_as_current_span("chat gpt-4o") as bad:  # a model call that breaks the contract
        bad.set_attributes({**_chat(0), "gen_ai.usage.output_tokens": -7})
        bad_span_id = bad.get_span_context().span_id
    assert tp.force_flush(30_000)
    tp.shutdown()

    msgs = consume_all(settings.kafka_bootstrap, settings.predictions_topic, n_ok + n_err, timeout_s=60)
    evs = [orjson.loads(m.value()) for m in msgs]
    assert len(evs) == n_ok + n_err
    for ev in evs:
        PredictionV1.model_validate(ev)
    assert {m.key() for m in msgs} == {b"gpt-4o"}
    ok = [e for e in evs if "error" not in e]
    failed = [e for e in evs if "error" in e]
    assert len(ok) == n_ok and len(failed) == n_err
    assert {e["error"] for e in failed} == {"429 from the provider"}
    e0 = next(e for e in ok if e["llm"]["input_tokens"] == 10)
    assert e0["model"] == "gpt-4o" and e0["model_version"] == "gpt-4o-2024-08-06"
    assert e0["segment"] == {"service": "support-bot", "environment": "prod", "provider": "openai"}
    assert e0["llm"] | {} == {"input_tokens": 10, "output_tokens": 20, "finish_reason": "length",
                              "token_logprobs": [-0.5, -1.5], "prompt": "question 0", "completion": "answer 0"}
    assert e0["outputs"] == {"label": "length"} and e0["latency_ms"] >= 0
    assert len({e["event_id"] for e in evs}) == len(evs)

    dls = consume_all(settings.kafka_bootstrap, settings.deadletter_topic, 1, timeout_s=30)
    assert len(dls) == 1
    dl = DeadletterV1.model_validate(orjson.loads(dls[0].value()))
    assert dl.stage == "otlp" and dl.error_path == "llm.output_tokens" and "token count" in dl.reason
    again = ExportTraceServiceRequest.FromString(base64.b64decode(dl.payload_b64))
    assert again.resource_spans[0].scope_spans[0].spans[0].span_id == bad_span_id.to_bytes(8, "big")
    c = rec.c.snapshot()
    assert (c["predictions"], c["ignored"], c["deadlettered"]) == (n_ok + n_err, n_ok, 1)
    assert c["throttled"] == c["unavailable"] == c["bad_requests"] == 0

    # the processor's LLM signals, from the bytes on the topic
    core = ProcessorCore(ProcessorSettings(window_s=60, lateness_s=0, baseline_s=60))
    out = core.process_predictions([Raw(m.value(), m.topic(), m.partition(), m.offset(), m.key()) for m in msgs])
    snaps = out.snapshots + core.flush_all().snapshots
    whole = [s for s in snaps if s.segment_key is None and s.count]
    assert sum(s.count for s in whole) == n_ok + n_err
    m = whole[-1].metrics
    assert m["llm.logprob_mean"] == pytest.approx(-1.0) and m["llm.logprob_min"] == pytest.approx(-1.5)
    assert m["llm.output_tokens_mean"] == pytest.approx(20.0)
    assert any(s.segment_key == "service" and s.segment_value == "support-bot" for s in snaps)

    # and the sink stores them in chDB
    with migrated(settings) as store, running_sink(settings, store):
        wait_for_count(store, "SELECT count() FROM predictions", n_ok + n_err)
        row = store.query("SELECT count(), countIf(error IS NOT NULL), sum(llm_output_tokens), "
                          "countIf(llm_finish_reason = 'length') FROM predictions").rows[0]
        assert row == (n_ok + n_err, n_err, 20 * (n_ok + n_err), n_ok // 4 + (n_err + 3) // 4)
        wait_for_count(store, "SELECT count() FROM deadletter", 1)
        assert store.query("SELECT stage, error_path FROM deadletter").rows == [("otlp", "llm.output_tokens")]


def test_wrong_token_is_refused_and_nothing_is_published(settings: Settings, otlp: tuple[OtlpReceiver, str]) -> None:
    rec, endpoint = otlp
    tp = _provider(endpoint, token="wrong")
    with tp.get_tracer("app").start_as_current_span("chat") as span:
        span.set_attributes(_chat(1))
    tp.force_flush(10_000)
    tp.shutdown()
    assert rec.c.snapshot()["requests"] == 0  # the door answered 401 before the receiver
    assert consume_all(settings.kafka_bootstrap, settings.predictions_topic, 1, timeout_s=3) == []
