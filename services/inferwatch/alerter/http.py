"""HTTP API of the alerter (a FastAPI ``APIRouter``), served by the alerter and mountable in the main API.

- ``GET /v1/alerts?state=firing&model=...`` → ``{"alerts": [...]}`` (each with ``silenced_by``)
- ``GET /v1/silences?include_expired=false`` → ``{"silences": [...]}``
- ``POST /v1/silences`` ``{"matchers": ["model=\\"m\\""], "ends_at": ms | "duration": "2h",
  "created_by", "comment", "starts_at"?}`` → the silence (201)
- ``DELETE /v1/silences/{id}`` → the expired silence
- ``GET /healthz`` → ``{"ok": true}`` (the alerter's own server only; open to liveness probes)

The state is the alerter's SQLite database; the running alerter sees new silences within a tick.
Served by a running alerter, a silence is also written to the silences topic (``publish``) before
the answer, so every alerter honours it; when Kafka does not take it the answer is ``503`` (the
silence is kept locally and published again by the alerter's periodic sync).
:func:`create_alerter_app` puts the router behind the same door as the main API (bearer token,
body limits: :mod:`inferwatch.api.door`). A silence is bounded: at most :data:`MAX_MATCHERS`
matchers of at most :data:`MAX_MATCHER_CHARS` characters, ``created_by`` and ``comment`` at most
:data:`MAX_CREATED_BY_CHARS` / :data:`MAX_COMMENT_CHARS`; over a limit is ``413``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field

from inferwatch.alerter.errors import MatcherError, SilenceNotFound
from inferwatch.alerter.evaluation.durations import parse_duration_s
from inferwatch.alerter.lifecycle.state import AlertStore, state_path
from inferwatch.alerter.silence.silences import Silence, new_silence
from inferwatch.clock import now_ms

MAX_MATCHERS = 64
MAX_MATCHER_CHARS = 1024
MAX_CREATED_BY_CHARS = 256
MAX_COMMENT_CHARS = 4096
#: 9999-12-31T23:59:59.999Z: later instants do not fit SQLite's integers once a duration is added
MAX_TIME_MS = 253_402_300_799_999


class SilenceIn(BaseModel):
    """Body of ``POST /v1/silences``."""

    matchers: list[Any] | dict[str, str] = Field(description='e.g. ["model=\\"m\\"", "severity=~\\"warn.*\\""]')
    ends_at: int | None = Field(None, ge=0, le=MAX_TIME_MS, description="ms since epoch")
    duration: str | None = Field(None, max_length=64, description="instead of ends_at: e.g. 2h")
    starts_at: int | None = Field(None, ge=0, le=MAX_TIME_MS, description="ms since epoch; default now")
    created_by: str = Field(max_length=MAX_CREATED_BY_CHARS)
    comment: str = Field("", max_length=MAX_COMMENT_CHARS)


def _check_sizes(body: SilenceIn) -> None:
    """413 for matchers over their limits (the other fields' lengths are checked by the model)."""
    items = list(body.matchers.items()) if isinstance(body.matchers, dict) else body.matchers
    if len(items) > MAX_MATCHERS:
        raise HTTPException(413, f"at most {MAX_MATCHERS} matchers, got {len(items)}")
    for it in items:
        size = len(it) if isinstance(it, str) else len(repr(it))
        if size > MAX_MATCHER_CHARS:
            raise HTTPException(413, f"a matcher is at most {MAX_MATCHER_CHARS} characters, got {size}")


def alerts_view(store: AlertStore, states: Sequence[str] = ("pending", "firing")) -> list[dict[str, Any]]:
    """Stored alerts as JSON-ready dicts with the ids of the silences muting them."""
    now = now_ms()
    silences = store.silences()
    out = []
    for rec in store.list_alerts(states):
        d = asdict(rec)
        d["silenced_by"] = [s.id for s in silences if s.mutes(rec.labels, now)]
        out.append(d)
    return out


Publish = Callable[[Silence], None]
"""Writes a silence to the silences topic, raising when Kafka does not take it."""


def make_router(
    store: AlertStore,
    on_silence_change: Callable[[], None] | None = None,
    dependencies: Sequence[Any] | None = None,
    publish: Publish | None = None,
) -> APIRouter:
    """The router over ``store``; ``on_silence_change`` lets a running alerter refresh its cache;
    ``publish`` shares a created or expired silence with every alerter (the silences topic)."""
    router = APIRouter(prefix="/v1", tags=["alerts"], dependencies=list(dependencies or []))

    def changed(s: Silence) -> None:
        if on_silence_change is not None:
            on_silence_change()
        if publish is not None:
            try:
                publish(s)
            except Exception as exc:  # kept locally; the alerter's sync publishes it again
                raise HTTPException(status_code=503, detail=(
                    f"silence {s.id} is stored by this alerter but not yet shared with the others: {exc}; "
                    "it is published again automatically")) from None

    @router.get("/alerts")
    def list_alerts(
        state: list[str] = Query(default=["pending", "firing"]),  # noqa: B008
        model: str | None = None,
        severity: str | None = None,
    ) -> dict[str, Any]:
        alerts = alerts_view(store, state)
        if model:
            alerts = [a for a in alerts if a["model"] == model]
        if severity:
            alerts = [a for a in alerts if a["severity"] == severity]
        return {"alerts": alerts}

    @router.get("/silences")
    def list_silences(include_expired: bool = False) -> dict[str, Any]:
        return {"silences": [s.as_dict() for s in store.silences(include_expired=include_expired)]}

    @router.post("/silences", status_code=201)
    def add_silence(body: SilenceIn) -> dict[str, Any]:
        _check_sizes(body)
        try:
            start = body.starts_at if body.starts_at is not None else now_ms()
            if body.ends_at is not None:
                end = body.ends_at
            elif body.duration is not None:
                dur_s = parse_duration_s(body.duration)
                # "1e300h" parses; an end past MAX_TIME_MS would overflow SQLite (a 500 before)
                if not dur_s * 1000 <= MAX_TIME_MS - start:
                    raise MatcherError(f"duration {body.duration!r} ends after the year 9999")
                end = start + int(dur_s * 1000)
            else:
                raise MatcherError("give ends_at or duration")
            s = new_silence(body.matchers, end, body.created_by, body.comment, body.starts_at)
        except (MatcherError, ValueError) as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        store.add_silence(s)
        changed(s)
        return s.as_dict()

    @router.delete("/silences/{silence_id}")
    def expire_silence(silence_id: str) -> dict[str, Any]:
        try:
            s = store.expire_silence(silence_id)
        except SilenceNotFound:
            raise HTTPException(status_code=404, detail=f"no silence {silence_id}") from None
        changed(s)
        return s.as_dict()

    return router


def router_for_data_dir(data_dir: Any, dependencies: Sequence[Any] | None = None) -> APIRouter:
    """The router over a deployment's alerter state (what the main API mounts)."""
    return make_router(AlertStore(state_path(data_dir)), dependencies=dependencies)


def create_alerter_app(
    store: AlertStore, token: str | None, on_silence_change: Callable[[], None] | None = None,
    health: Callable[[], dict[str, Any]] | None = None, metrics: Callable[[], str] | None = None,
    publish: Publish | None = None,
) -> FastAPI:
    """The alerter's own HTTP API: the router over ``store`` and ``/healthz``, behind the door
    (``token`` as in the main API: ``INFERWATCH_API_TOKEN``). ``health`` (the running alerter's state,
    503 when not ok) and ``metrics`` (Prometheus text at ``/metrics``) come from the service."""
    from inferwatch.api.door import Door, install_limit_errors, secure_openapi

    app = FastAPI(title="Inferwatch alerter", description="The alerter's alerts and silences.")
    app.add_middleware(Door, token=token)
    install_limit_errors(app)
    app.include_router(make_router(store, on_silence_change=on_silence_change, publish=publish))

    @app.get("/healthz", tags=["ops"])
    def healthz(request: Request) -> Any:
        """Liveness: the server answers; plus the service's counters when it gives them. Open (no
        token) for liveness probes: a caller without the token sees only ``{"ok": ...}``."""
        if health is None:
            return {"ok": True}
        from inferwatch.api.door import is_authenticated

        h = health()
        ok = bool(h.get("ok", True))
        return JSONResponse(h if is_authenticated(request.state) else {"ok": ok}, status_code=200 if ok else 503)

    if metrics is not None:
        # PlainTextResponse is imported at module level: with postponed annotations, FastAPI resolves
        # the return annotation in the module's globals (a local import made /openapi.json a 500)
        from inferwatch.api.metrics import CONTENT_TYPE

        @app.get("/metrics", response_class=PlainTextResponse, tags=["ops"])
        def prometheus_metrics() -> PlainTextResponse:
            """The alerter's series in Prometheus text format (behind the token)."""
            return PlainTextResponse(metrics(), media_type=CONTENT_TYPE)

    secure_openapi(app)
    return app


def alerter_server(
    store: AlertStore, host: str, port: int, token: str | None,
    on_silence_change: Callable[[], None] | None = None,
    health: Callable[[], dict[str, Any]] | None = None, metrics: Callable[[], str] | None = None,
    publish: Publish | None = None,
) -> Any:
    """A ``uvicorn.Server`` for :func:`create_alerter_app` on ``host:port`` (not started).

    Raises :class:`inferwatch.config.SettingsError` for a non-loopback ``host`` without a token.
    """
    import uvicorn

    from inferwatch.config import check_bind

    check_bind(host, token, "alerter http")
    app = create_alerter_app(store, token, on_silence_change, health, metrics, publish)
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))
