"""``create_app``: the FastAPI application, composed of routers and health checks.

Other packages add their routers with ``extra_routers`` and their health with ``health_checks``
(name -> callable returning a JSON-able dict with an ``ok`` bool). ``GET /healthz`` is open;
every other route requires ``Authorization: Bearer <api_token>`` when a token is configured.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from inferwatch.store.base import Store

HealthCheck = Callable[[], Mapping[str, Any]]


def _auth(token: str | None) -> Callable[[Request], None]:
    def check(request: Request) -> None:
        if token is None:
            return
        got = request.headers.get("authorization", "")
        if not hmac.compare_digest(got.encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    return check


def create_app(
    store: Store | None = None,
    *,
    extra_routers: Iterable[APIRouter] = (),
    health_checks: Mapping[str, HealthCheck] | None = None,
    api_token: str | None = None,
    title: str = "Inferwatch",
) -> FastAPI:
    """The API: ``/healthz``, ``/v1/query`` when a ``store`` is given, plus ``extra_routers``."""
    app = FastAPI(title=title)
    deps = [Depends(_auth(api_token))]
    checks = dict(health_checks or {})
    if store is not None:
        from inferwatch.api.query import query_router

        app.include_router(query_router(lambda: store), dependencies=deps)
        checks.setdefault("store", lambda: _store_health(store))
    for r in extra_routers:
        app.include_router(r, dependencies=deps)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        """Every health check's result; 503 when one of them is not ok."""
        out: dict[str, Any] = {}
        ok = True
        for name, fn in checks.items():
            try:
                res = dict(fn())
            except Exception as exc:  # a broken check is a failing check, not a 500
                res = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            ok = ok and bool(res.get("ok", True))
            out[name] = res
        return JSONResponse({"ok": ok, "checks": out}, status_code=200 if ok else 503)

    return app


def _store_health(store: Store) -> dict[str, Any]:
    try:
        store.query("SELECT 1", max_rows=1, timeout_s=5)
        return {"ok": True, "kind": store.kind}
    except Exception as exc:
        return {"ok": False, "kind": store.kind, "error": str(exc)[:300]}
