"""The OTLP/HTTP traces receiver: ``POST /v1/traces`` → ``prediction.v1`` events on Kafka.

Per request: back-pressure check, decode (:mod:`inferwatch.otlp.request_body`), map every span
(:mod:`inferwatch.otlp.mapping`), publish. Events go through the SDK's shared transport (one
librdkafka producer, its delivery thread, spool and replayer, see :mod:`inferwatch.sdk.transport`):
wire format as the SDK's, value = the event's UTF-8 JSON, key = the model name, topic
``inferwatch.predictions``. Spans that cannot be mapped go to ``inferwatch.deadletter``
(``deadletter.v1``, stage ``otlp``, payload = an OTLP ``ExportTraceServiceRequest`` holding just
that span, its scope and its resource, so it can be sent again once fixed).

Answers (OTLP/HTTP semantics):

* ``200`` with an ``ExportTraceServiceResponse`` in the request's media type; its
  ``partial_success`` counts the spans that were dead-lettered (``rejected_spans``) with the first
  reasons. Spans that are no model call are accepted and ignored (counted, not rejected).
* ``429`` + ``Retry-After`` when the producer's queue is above its high-water mark (Kafka is
  slower than the callers); ``503`` + ``Retry-After`` when Kafka is down and the spool cannot take
  more (or there is none). Nothing is decoded then; the exporter retries the same batch later.
* ``400`` malformed body, ``413`` over the limit once decompressed, ``415`` wrong Content-Type or
  Content-Encoding: not retryable, as OTLP says.

Never waits on Kafka: ``produce()`` only enqueues; when the queue is full anyway (between the check
and the call) the event goes to the spool like an SDK event.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import KafkaError, KafkaException
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from inferwatch.config import Settings
from inferwatch.contract import limits as L
from inferwatch.deadletters import payload_fields
from inferwatch.otlp.config import OtlpMapping
from inferwatch.otlp.errors import BadRequest, Unmappable
from inferwatch.otlp.mapping import SpanMapper, attributes, hex_id
from inferwatch.otlp.request_body import DEFAULT_MAX_DECODED_BYTES, JSON, decode_request, encode_response
from inferwatch.sdk import shared
from inferwatch.sdk.ids import IdGenerator
from inferwatch.sdk.producer_config import producer_config as build_producer_config
from inferwatch.sdk.redaction import as_redaction
from inferwatch.sdk.spool import DEFAULT_MAX_BYTES
from inferwatch.sdk.transport import KIND_PREDICTION

log = logging.getLogger("inferwatch.otlp")

CLIENT_ID = "inferwatch-otlp"
#: Fraction of the producer's queue (``queue.buffering.max.messages``) above which requests get 429.
HIGH_WATER = 0.75
#: Fraction of the spool above which, with Kafka down, requests get 503.
SPOOL_HIGH_WATER = 0.9
RETRY_AFTER_BUSY_S = 1
RETRY_AFTER_DOWN_S = 5
_MAX_REASONS = 3


@dataclass
class Reply:
    """One HTTP answer: status, body, media type and extra headers."""

    status: int
    body: bytes
    media_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


class OtlpCounters:
    """The receiver's counters since start (thread-safe)."""

    NAMES = ("requests", "spans", "predictions", "ignored", "deadlettered", "deadletter_failures", "bad_requests",
             "throttled", "unavailable")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values = dict.fromkeys(self.NAMES, 0)

    def add(self, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name``."""
        with self.lock:
            self.values[name] += n

    def snapshot(self) -> dict[str, int]:
        """A copy of every counter."""
        with self.lock:
            return dict(self.values)


class OtlpReceiver:
    """Decodes OTLP trace exports, maps model-call spans and publishes them (see the module doc).

    ``spool_dir`` defaults to ``<data_dir>/otlp-spool`` (not the SDK's ``spool``: a spool belongs
    to one process, and a model server on the same machine may own that one); ``None`` disables it.
    """

    def __init__(
        self,
        settings: Settings,
        mapping: OtlpMapping | None = None,
        *,
        spool_dir: str | Path | None = "default",
        spool_max_bytes: int = DEFAULT_MAX_BYTES,
        producer_config: dict[str, Any] | None = None,
        max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
        close_timeout_s: float = 5.0,
    ) -> None:
        self.settings = settings
        self.mapping = mapping or OtlpMapping()
        self.mapper = SpanMapper(self.mapping, as_redaction(self.mapping.redact, settings))
        self.max_decoded_bytes = max_decoded_bytes
        self.c = OtlpCounters()
        self.topic = settings.predictions_topic
        self.deadletter_topic = settings.deadletter_topic
        root: Path | None = None
        if spool_dir == "default":
            spool_dir = Path(settings.data_dir) / "otlp-spool"
        if spool_dir is not None:
            root = Path(os.path.abspath(spool_dir))
        conf = build_producer_config(settings.kafka_bootstrap, dict(settings.kafka_security), producer_config, CLIENT_ID)
        self._queue_max = int(conf.get("queue.buffering.max.messages", 100_000))
        # The SDK's transport: the same spool, replay and delivery code as a model server's logger.
        self._lane = shared.attach_transport(conf, (settings.predictions_topic, settings.feedback_topic), root,
                                             spool_max_bytes, False, None, IdGenerator().prefix, close_timeout_s)
        self._close_timeout_s = close_timeout_s
        self.transport = self._lane.t
        self._produce = self.transport.produce
        self._closed = False

    # -- the request ---------------------------------------------------------------------------
    def export(self, body: bytes, content_type: str | None, content_encoding: str | None) -> Reply:
        """Handle one ``POST /v1/traces`` body; never raises, never waits on Kafka."""
        self.c.add("requests")
        busy = self.pressure()
        if busy is not None:
            status, retry_s, why = busy
            self.c.add("throttled" if status == 429 else "unavailable")
            return Reply(status, orjson.dumps({"detail": why}), headers={"Retry-After": str(retry_s)})
        try:
            req, mt = decode_request(body, content_type, content_encoding, self.max_decoded_bytes)
        except BadRequest as exc:
            self.c.add("bad_requests")
            return Reply(exc.status, orjson.dumps({"detail": exc.message}))
        rejected, reasons = self.publish(req)
        resp = ExportTraceServiceResponse()
        if rejected:
            resp.partial_success.rejected_spans = rejected
            resp.partial_success.error_message = "; ".join(reasons)[: L.ERROR_MAX] + (
                " (every rejected span is in the dead-letter topic)")
        return Reply(200, encode_response(resp, mt), mt)

    def pressure(self) -> tuple[int, int, str] | None:
        """``(status, retry_after_s, reason)`` when the receiver cannot take a batch now, else None.

        Queue above :data:`HIGH_WATER`: 429 (Kafka takes events slower than they come). Kafka down
        and no room in the spool (or no spool): 503. Kafka down with room in the spool: accepted,
        the spool holds the events until it is back (as for the SDK). The queue's length is
        librdkafka's (``len(producer)``): messages plus a few of its own requests while the broker
        is away, which is why the mark sits well below the queue's capacity.
        """
        t = self.transport
        if self._closed or t.closed:
            return 503, RETRY_AFTER_DOWN_S, "the receiver is shutting down"
        n = t.in_queue()
        if n >= self._queue_max * HIGH_WATER:
            return 429, RETRY_AFTER_BUSY_S, f"the producer queue is full ({n} events waiting for Kafka)"
        if t.health.down:
            sp = t.spool
            if sp is None:
                return 503, RETRY_AFTER_DOWN_S, "Kafka is unreachable and no spool is configured"
            if sp.disk_bytes >= sp.max_bytes * SPOOL_HIGH_WATER:
                return 503, RETRY_AFTER_DOWN_S, f"Kafka is unreachable and the spool is full ({sp.disk_bytes} bytes)"
        return None

    def publish(self, req: ExportTraceServiceRequest) -> tuple[int, list[str]]:
        """Map and send every span of ``req``; ``(rejected spans, first reasons)``."""
        rejected = 0
        reasons: list[str] = []
        spans = ignored = sent = 0
        produce, topic = self._produce, self.topic
        for rs in req.resource_spans:
            resource = attributes(rs.resource.attributes)
            for ss in rs.scope_spans:
                for span in ss.spans:
                    spans += 1
                    try:
                        ev = self.mapper.map(span, resource)
                    except Exception as exc:  # noqa: BLE001 - bad input never crashes the receiver
                        if not isinstance(exc, Unmappable):
                            # a span this mapping did not foresee: dead-lettered like any unmappable one
                            log.warning("inferwatch otlp: unexpected error mapping a span: %r", exc)
                            exc = Unmappable(f"cannot map the span: {type(exc).__name__}: {exc}"[:1000])
                        rejected += 1
                        if len(reasons) < _MAX_REASONS:
                            reasons.append(f"span {hex_id(span.span_id) or '?'}: {exc.reason}"[:500])
                        self._dead_letter(rs, ss, span, exc)
                        continue
                    if ev is None:
                        ignored += 1
                        continue
                    payload = orjson.dumps(ev)
                    key = ev["model"].encode()
                    try:
                        produce(topic, payload, key)
                    except BufferError:
                        self._lane.overflow(KIND_PREDICTION, key, payload)
                    except KafkaException as exc:
                        self._lane.produce_error(exc, payload)
                    sent += 1
        self.transport.serve_if_hot()
        self.c.add("spans", spans)
        self.c.add("ignored", ignored)
        self.c.add("predictions", sent)
        self.c.add("deadlettered", rejected)
        return rejected, reasons

    def _dead_letter(self, rs: ResourceSpans, ss: ScopeSpans, span: Span, exc: Unmappable) -> None:
        one = ExportTraceServiceRequest()
        r = one.resource_spans.add()
        r.resource.CopyFrom(rs.resource)
        r.schema_url = rs.schema_url
        s = r.scope_spans.add()
        s.scope.CopyFrom(ss.scope)
        s.schema_url = ss.schema_url
        s.spans.add().CopyFrom(span)
        payload_b64, reason = payload_fields(one.SerializeToString(), exc.reason or "unmappable span")
        ids = f"{hex_id(span.trace_id)}{hex_id(span.span_id)}"
        dl = {
            "schema_version": "deadletter.v1",
            # stable per span (a retried batch writes the same dead letter), within EVENT_ID_MAX
            "event_id": f"dl:otlp:{ids}"[: L.EVENT_ID_MAX] if ids else f"dl:otlp:{IdGenerator().next_id()}",
            "ts": time.time_ns() // 1_000_000,
            "stage": "otlp",
            "reason": reason,
            "error_path": (exc.path or None) and exc.path[: L.ERROR_PATH_MAX],
            "expected_schema": "prediction.v1",
            "payload_b64": payload_b64,
        }
        try:
            # Its own delivery callback: a dead letter is not a prediction, so it must not be
            # spooled (the spool replays to the predictions topic); failures are counted.
            self._produce(self.deadletter_topic, orjson.dumps(dl), b"otlp", on_delivery=self._dl_delivered)
        except (BufferError, KafkaException) as e:
            self.c.add("deadletter_failures")
            log.warning("inferwatch otlp: dead letter not sent: %s", e)

    def _dl_delivered(self, err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            self.c.add("deadletter_failures")

    # -- health, life cycle --------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """``ok`` (Kafka reachable or the spool has room) and the counters, for ``/healthz``."""
        busy = self.pressure()
        out: dict[str, Any] = {"ok": busy is None or busy[0] == 429, **self.c.snapshot()}
        out["in_queue"] = self.transport.in_queue()
        out["kafka_down"] = bool(self.transport.health.down)
        if busy is not None:
            out["refusing"] = busy[2]
        return out

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until queued events are delivered (tests and shutdown)."""
        return self.transport.flush(timeout_s)

    def close(self) -> None:
        """Stop taking requests; deliver what can be, spool the rest."""
        if self._closed:
            return
        self._closed = True
        shared.release(self._lane, self._close_timeout_s)
