"""POST /v1/traces behind the door: token, body limits, content types, partial success, and
back-pressure (429/503 with Retry-After). The broker is away (a closed port): these tests are about
what the receiver answers, never about delivery (tests/integration/test_otlp.py delivers)."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from inferwatch.api.door import body_limit
from inferwatch.config import Settings
from inferwatch.otlp.http import create_otlp_app
from inferwatch.otlp.receiver import OtlpReceiver
from inferwatch.otlp.request_body import PROTOBUF
from tests.unit.api.test_routes_documented import documented, served
from tests.unit.otlp.spans import GENAI_CHAT, request_of

TOKEN = "otlp-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PB = {**AUTH, "Content-Type": PROTOBUF}


def _settings(tmp_path: Path) -> Settings:
    return Settings(kafka_bootstrap="127.0.0.1:1", data_dir=tmp_path, api_token=TOKEN)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[OtlpReceiver]:
    r = OtlpReceiver(_settings(tmp_path), spool_dir=tmp_path / "spool", close_timeout_s=0.5)
    yield r
    r.close()


@pytest.fixture
def client(tmp_path: Path, receiver: OtlpReceiver) -> TestClient:
    return TestClient(create_otlp_app(_settings(tmp_path), receiver))


def test_token_is_required(client: TestClient) -> None:
    body = request_of(("chat", GENAI_CHAT)).SerializeToString()
    assert client.post("/v1/traces", content=body, headers={"Content-Type": PROTOBUF}).status_code == 401
    assert client.post("/v1/traces", content=body, headers={"Content-Type": PROTOBUF,
                                                               "Authorization": "Bearer nope"}).status_code == 401


def test_model_calls_accepted_others_ignored_unmappable_rejected(client: TestClient, receiver: OtlpReceiver) -> None:
    req = request_of(("chat", GENAI_CHAT), ("GET /", {"http.method": "GET"}),
                     ("chat", {**GENAI_CHAT, "gen_ai.usage.output_tokens": -1}))
    r = client.post("/v1/traces", content=req.SerializeToString(), headers=PB)
    assert r.status_code == 200 and r.headers["content-type"] == PROTOBUF
    resp = ExportTraceServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_spans == 1
    assert "llm.output_tokens" in resp.partial_success.error_message
    c = receiver.c.snapshot()
    assert (c["spans"], c["predictions"], c["ignored"], c["deadlettered"]) == (3, 1, 1, 1)


def test_all_good_spans_answer_an_empty_partial_success(client: TestClient) -> None:
    r = client.post("/v1/traces", content=gzip.compress(request_of(("chat", GENAI_CHAT)).SerializeToString()),
                    headers={**PB, "Content-Encoding": "gzip"})
    assert r.status_code == 200
    assert not ExportTraceServiceResponse.FromString(r.content).HasField("partial_success")


def test_json_in_json_out(client: TestClient) -> None:
    r = client.post("/v1/traces", content=b'{"resourceSpans": []}', headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json" and r.json() == {}


@pytest.mark.parametrize("body, headers, status", [
    (b"\xff\xff", PB, 400),
    (b"{}", {**AUTH, "Content-Type": "text/plain"}, 415),
    (gzip.compress(b"\0" * (40 * 1024 * 1024)), {**PB, "Content-Encoding": "gzip"}, 413),  # bomb
    (b"x" * (body_limit("/v1/traces") + 1), PB, 413),  # over the door's limit before decompression
])
def test_hostile_requests(client: TestClient, receiver: OtlpReceiver, body: bytes, headers: dict[str, str],
                          status: int) -> None:
    r = client.post("/v1/traces", content=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["detail"]


def test_full_producer_queue_answers_429_with_retry_after(tmp_path: Path) -> None:
    # a queue of 100 and no broker: 80 events fill it past the high-water mark (75). (librdkafka's
    # count also holds a few of its own requests while the broker is away, hence the margin.)
    rec = OtlpReceiver(_settings(tmp_path), spool_dir=tmp_path / "spool",
                       producer_config={"queue.buffering.max.messages": 100}, close_timeout_s=0.5)
    try:
        client = TestClient(create_otlp_app(_settings(tmp_path), rec))
        body = request_of(*[("chat", GENAI_CHAT)] * 80).SerializeToString()
        assert client.post("/v1/traces", content=body, headers=PB).status_code == 200
        r = client.post("/v1/traces", content=body, headers=PB)
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert rec.c.snapshot()["throttled"] == 1 and rec.c.snapshot()["predictions"] == 80
        assert client.get("/healthz", headers=AUTH).json()["checks"]["otlp"]["refusing"].startswith("the producer")
    finally:
        rec.close()


def test_kafka_down_without_a_spool_answers_503(tmp_path: Path) -> None:
    rec = OtlpReceiver(_settings(tmp_path), spool_dir=None, close_timeout_s=0.5)
    try:
        client = TestClient(create_otlp_app(_settings(tmp_path), rec))
        body = request_of(("chat", GENAI_CHAT)).SerializeToString()
        deadline = time.monotonic() + 20
        while not rec.transport.health.down and time.monotonic() < deadline:
            time.sleep(0.1)  # librdkafka's connection error, then the transport's probe
        assert rec.transport.health.down
        r = client.post("/v1/traces", content=body, headers=PB)
        assert r.status_code == 503 and int(r.headers["retry-after"]) > 0
        assert client.get("/healthz").status_code == 503
    finally:
        rec.close()


def test_every_route_is_documented(client: TestClient) -> None:
    routes = served(client.app)  # type: ignore[arg-type]
    assert "POST /v1/traces" in routes
    assert routes == documented("OTLP"), routes ^ documented("OTLP")


def test_an_unforeseen_mapping_error_is_a_dead_letter_not_a_500(client: TestClient, receiver: OtlpReceiver,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(span: object, resource: object) -> None:
        raise KeyError("surprise")

    monkeypatch.setattr(receiver.mapper, "map", broken)  # a fault injected into the mapper, not a stand-in
    r = client.post("/v1/traces", content=request_of(("chat", GENAI_CHAT)).SerializeToString(), headers=PB)
    assert r.status_code == 200
    resp = ExportTraceServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_spans == 1 and "KeyError" in resp.partial_success.error_message
    assert receiver.c.snapshot()["deadlettered"] == 1


def test_kafka_down_with_room_in_the_spool_accepts_at_once_and_spools(tmp_path: Path) -> None:
    rec = OtlpReceiver(_settings(tmp_path), spool_dir=tmp_path / "spool", close_timeout_s=0.5,
                       producer_config={"message.timeout.ms": 1000})
    try:
        client = TestClient(create_otlp_app(_settings(tmp_path), rec))
        deadline = time.monotonic() + 20
        while not rec.transport.health.down and time.monotonic() < deadline:
            time.sleep(0.1)
        assert rec.transport.health.down
        body = request_of(*[("chat", GENAI_CHAT)] * 20).SerializeToString()
        t0 = time.monotonic()
        r = client.post("/v1/traces", content=body, headers=PB)
        assert r.status_code == 200 and time.monotonic() - t0 < 2.0  # never waits for Kafka
        while rec.transport.stats()["transport_spooled"] < 20 and time.monotonic() < deadline + 10:
            time.sleep(0.1)  # the delivery times out after 1 s: the events go to the spool, not lost
        assert rec.transport.stats()["transport_spooled"] == 20
        assert client.get("/healthz").status_code == 200  # still taking batches
    finally:
        rec.close()
