"""The HTTP face of the OTLP receiver: ``POST /v1/traces`` (OTLP/HTTP, protobuf or JSON, gzip).

:func:`otlp_router` is an ``APIRouter`` any Inferwatch API can mount (``create_app(extra_routers=...)``);
:func:`create_otlp_app` is the API of ``inferwatch run otlp``: that route, ``/healthz`` (with the
receiver's counters for callers with the token) and the OpenAPI pages, behind the same door as
every Inferwatch server (bearer token, body limit: :data:`inferwatch.api.door.BODY_LIMITS`).
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from inferwatch.config import Settings
from inferwatch.otlp.receiver import OtlpReceiver
from inferwatch.otlp.request_body import JSON, PROTOBUF

_BODY = {"content": {PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
                     JSON: {"schema": {"type": "object"}}}, "required": True}


def otlp_router(receiver: OtlpReceiver) -> APIRouter:
    """A router with ``POST /v1/traces`` served by ``receiver``."""
    router = APIRouter(tags=["otlp"])

    @router.post(
        "/v1/traces",
        response_class=Response,
        openapi_extra={"requestBody": _BODY},
        responses={
            200: {"description": "ExportTraceServiceResponse (partial_success counts dead-lettered spans)"},
            400: {"description": "Malformed body"},
            415: {"description": "Unsupported Content-Type or Content-Encoding"},
            429: {"description": "The producer queue is full; retry after Retry-After seconds"},
            503: {"description": "Kafka is unreachable and the spool is full; retry after Retry-After seconds"},
        },
    )
    async def export_traces(request: Request) -> Response:
        """OTLP/HTTP trace export: model-call spans become ``prediction.v1`` events, others are ignored."""
        body = await request.body()
        # mapping a batch is CPU work: off the event loop, so /healthz stays responsive
        reply = await run_in_threadpool(receiver.export, body, request.headers.get("content-type"),
                                        request.headers.get("content-encoding"))
        return Response(reply.body, status_code=reply.status, media_type=reply.media_type, headers=reply.headers)

    return router


def create_otlp_app(settings: Settings, receiver: OtlpReceiver) -> FastAPI:
    """The API of ``inferwatch run otlp``: ``POST /v1/traces`` and ``/healthz``."""
    from inferwatch.api.app import create_app

    return create_app(None, extra_routers=[otlp_router(receiver)], health_checks={"otlp": receiver.health},
                      settings=settings, title="Inferwatch OTLP receiver", alerts=False, metrics=False)
