"""``create_app``: the FastAPI application, composed of routers and health checks, behind one door.

Routes: ``GET /healthz`` (open; details only to callers with the token), ``POST /v1/query`` and the
web console (``/console/``, its JSON under ``/v1/console/``: :mod:`inferwatch.api.console`) when a
store is given, ``GET /v1/alerts`` and ``GET/POST/DELETE /v1/silences`` (the alerter's SQLite state
under ``data_dir``), ``GET /metrics`` (Prometheus text), the OpenAPI spec at ``/openapi.json`` and
its pages at ``/docs``. Other packages add routers with ``extra_routers`` and their health with
``health_checks`` (name -> callable returning a JSON-able dict with an ``ok`` bool); a check named
``sink`` also feeds the sink series of ``/metrics``. Every route but ``/healthz`` requires
``Authorization: Bearer <api_token>`` when a token is configured, and every request body has a
size limit: both are enforced by :class:`inferwatch.api.door.Door` in front of the router, so a
route added later is covered too. Servers bind ``api_host``, 127.0.0.1 by default, and refuse
any other address without a token (:func:`inferwatch.config.check_bind`).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from inferwatch.api.door import Door, install_limit_errors, is_authenticated, secure_openapi
from inferwatch.config import Settings
from inferwatch.store.base import Store

HealthCheck = Callable[[], Mapping[str, Any]]


def create_app(
    store: Store | None = None,
    *,
    extra_routers: Iterable[APIRouter] = (),
    health_checks: Mapping[str, HealthCheck] | None = None,
    api_token: str | None = None,
    title: str = "Inferwatch",
    settings: Settings | None = None,
    alerts: bool = True,
    metrics: bool = True,
) -> FastAPI:
    """The API: ``/healthz``, ``/v1/query`` when a ``store`` is given, ``/v1/alerts``, ``/v1/silences``
    and ``/metrics`` (unless turned off), plus ``extra_routers``. ``settings`` defaults to the
    process's ``INFERWATCH_*`` environment; ``api_token`` falls back to ``settings.api_token``."""
    from inferwatch.api.alerts import alerts_router
    from inferwatch.api.metrics import CONTENT_TYPE, MetricsCollector

    s = settings if settings is not None else Settings()
    if api_token is None:
        api_token = s.api_token
    app = FastAPI(
        title=title,
        description="Inferwatch HTTP API: SQL over the history, alerts and silences, health and metrics.",
    )
    # console=True: the web console's session cookie counts as the token (reads; changes with CSRF)
    app.add_middleware(Door, token=api_token, console=store is not None)
    install_limit_errors(app)
    secure_openapi(app)
    checks = dict(health_checks or {})
    alert_store = None
    if alerts:
        router, alert_store = alerts_router(s.data_dir)
        app.include_router(router)
    if metrics:
        collector = MetricsCollector(s, alert_store, checks.get("sink"))

        @app.get("/metrics", response_class=PlainTextResponse, tags=["ops"])
        def prometheus_metrics() -> PlainTextResponse:
            """The platform's health in Prometheus text format: events in, lag, sink rate, alerts, spool."""
            return PlainTextResponse(collector.render(), media_type=CONTENT_TYPE)

    if store is not None:
        from inferwatch.api.query import query_router

        app.include_router(query_router(lambda: store))
        checks.setdefault("store", lambda: _store_health(store))
        from inferwatch.api.console import console_router

        app.include_router(console_router(lambda: store, alert_store, api_token))
    for r in extra_routers:
        app.include_router(r)

    @app.get("/healthz", tags=["ops"])
    def healthz(request: Request) -> JSONResponse:
        """Every health check's result; 503 when one of them is not ok.

        Open to liveness probes, which carry no token; a caller without the token sees only the
        ``ok`` flags (no error texts, paths, counters or lag), a caller with it sees everything."""
        out: dict[str, Any] = {}
        ok = True
        for name, fn in checks.items():
            try:
                res = dict(fn())
            except Exception as exc:  # a broken check is a failing check, not a 500
                res = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            ok = ok and bool(res.get("ok", True))
            out[name] = res
        if not is_authenticated(request.state):
            out = {name: {"ok": bool(res.get("ok", True))} for name, res in out.items()}
        return JSONResponse({"ok": ok, "checks": out}, status_code=200 if ok else 503)

    return app


def _store_health(store: Store) -> dict[str, Any]:
    try:
        store.query("SELECT 1", max_rows=1, timeout_s=5)
        return {"ok": True, "kind": store.kind}
    except Exception as exc:
        return {"ok": False, "kind": store.kind, "error": str(exc)[:300]}
