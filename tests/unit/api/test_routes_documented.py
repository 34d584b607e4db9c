"""docs/operations.md lists every route of every HTTP server, and each server's OpenAPI spec lists
every operation it serves (the spec is what the fuzzer walks)."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Route

from inferwatch.alerter.http import create_alerter_app
from inferwatch.alerter.lifecycle.state import AlertStore, state_path
from inferwatch.api.app import create_app
from inferwatch.config import Settings

DOC = Path(__file__).parents[3] / "docs" / "operations.md"
ROUTE = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`?\s]*)")


def documented(server: str) -> set[str]:
    """``"METHOD /path"`` of the rows of the routes table whose first cell is ``server``."""
    out: set[str] = set()
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 3 and cells[1] == server:
            out |= {f"{m} {p}" for m, p in ROUTE.findall(cells[2])}
    return out


def served(app: FastAPI) -> set[str]:
    """Every ``"METHOD /path"`` the app answers: the spec's operations and the plain routes."""
    out = {f"{m.upper()} {p}" for p, ops in app.openapi()["paths"].items() for m in ops}
    for r in app.routes:
        if isinstance(r, Route) and not isinstance(r, APIRoute):
            out |= {f"{m} {r.path}" for m in r.methods or () if m != "HEAD"}
        elif isinstance(r, APIRoute):  # every API route is in the spec
            assert {f"{m} {r.path}" for m in r.methods} <= out, r.path
    return out


class _NoStore:
    """Only so that create_app mounts /v1/query; the test never queries."""

    kind = "none"


def test_every_api_route_is_documented(tmp_path: Path) -> None:
    s = Settings(kafka_bootstrap="127.0.0.1:1", data_dir=tmp_path, api_token="t")
    app = create_app(_NoStore(), settings=s)  # type: ignore[arg-type]  # a route table, not a store
    routes = served(app)
    assert "POST /v1/query" in routes and "GET /openapi.json" in routes
    assert routes == documented("API"), (routes ^ documented("API"))


def test_every_alerter_route_is_documented(tmp_path: Path) -> None:
    store = AlertStore(state_path(tmp_path))
    try:
        # with everything the running service plugs in (health, metrics)
        routes = served(create_alerter_app(store, "t", health=lambda: {"ok": True}, metrics=lambda: ""))
    finally:
        store.close()
    assert "POST /v1/silences" in routes and "GET /metrics" in routes
    assert routes == documented("alerter"), routes ^ documented("alerter")
