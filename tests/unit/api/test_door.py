"""The one door of every HTTP server: the token on every route but /healthz, constant-time token
checks, body limits (413), what /healthz shows without the token, and the alerter's own API
behind the same door. In-process ASGI apps (no broker; Kafka lookups point at a closed port)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Route

from inferwatch.alerter.http import MAX_MATCHERS, create_alerter_app
from inferwatch.alerter.lifecycle.state import AlertStore, state_path
from inferwatch.api.app import create_app
from inferwatch.api.door import DEFAULT_MAX_BODY_BYTES, body_limit, token_matches
from inferwatch.config import Settings

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _settings(tmp_path: Path, token: str | None = TOKEN) -> Settings:
    return Settings(kafka_bootstrap="127.0.0.1:1", data_dir=tmp_path, api_token=token)


def _main_app(tmp_path: Path, token: str | None = TOKEN, **kw: object) -> FastAPI:
    return create_app(None, settings=_settings(tmp_path, token), **kw)  # type: ignore[arg-type]


@pytest.fixture
def alert_store(tmp_path: Path) -> Iterator[AlertStore]:
    st = AlertStore(state_path(tmp_path))
    yield st
    st.close()


def _concrete(path: str) -> str:
    return path.replace("{silence_id}", "x")


def _every_route(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path): the operations of the spec, and the plain routes (spec, docs pages)."""
    out = []
    for path, ops in app.openapi()["paths"].items():
        out += [(m.upper(), _concrete(path)) for m in ops]
    for r in app.routes:
        if isinstance(r, Route) and not isinstance(r, APIRoute):
            out += [(m, r.path) for m in sorted(r.methods or ()) if m != "HEAD"]
    return out


def test_token_matching() -> None:
    assert token_matches(f"Bearer {TOKEN}", TOKEN)
    assert token_matches(f"bearer {TOKEN}", TOKEN)  # the scheme is case-insensitive
    assert not token_matches(f"Bearer {TOKEN}x", TOKEN)
    assert not token_matches(f"Bearer {TOKEN[:-1]}", TOKEN)
    assert not token_matches(f"Basic {TOKEN}", TOKEN)
    assert not token_matches(TOKEN, TOKEN)
    assert not token_matches("", TOKEN)
    assert not token_matches(None, TOKEN)
    assert not token_matches("Bearer \udcff", TOKEN)  # undecodable bytes do not raise


@pytest.mark.parametrize("which", ["main", "alerter"])
def test_every_route_but_healthz_needs_the_token(tmp_path: Path, alert_store: AlertStore, which: str) -> None:
    # before: /openapi.json and /docs answered anyone, and the alerter's own API had no token at all
    app = _main_app(tmp_path) if which == "main" else create_alerter_app(alert_store, TOKEN)
    routes = _every_route(app)
    assert ("GET", "/openapi.json") in routes and ("POST", "/v1/silences") in routes
    c = TestClient(app)
    for method, path in routes:
        if path == "/healthz":
            continue
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            r = c.request(method, path, headers=headers)
            assert r.status_code == 401, (method, path, headers, r.status_code)
            assert r.headers["www-authenticate"] == "Bearer"
        assert c.request(method, path, headers=AUTH).status_code != 401, (method, path)
    assert c.get("/healthz").status_code == 200
    # a path no route serves is refused the same way: nothing is learned without the token
    assert c.get("/v1/nope").status_code == 401
    assert c.get("/v1/nope", headers=AUTH).status_code == 404


def test_no_token_configured_lets_everyone_in(tmp_path: Path) -> None:
    c = TestClient(_main_app(tmp_path, token=None))
    assert c.get("/v1/alerts").status_code == 200
    assert c.get("/openapi.json").status_code == 200


def test_healthz_without_the_token_shows_only_ok_flags(tmp_path: Path) -> None:
    def sink() -> dict[str, object]:
        return {"ok": False, "store": {"error": "cannot open /srv/secret/chdb: disk full"}, "lag": 12}

    c = TestClient(_main_app(tmp_path, health_checks={"sink": sink}))
    r = c.get("/healthz")
    assert r.status_code == 503
    assert r.json() == {"ok": False, "checks": {"sink": {"ok": False}}}
    assert "secret" not in r.text and "lag" not in r.text
    full = c.get("/healthz", headers=AUTH).json()
    assert full["checks"]["sink"]["store"]["error"].startswith("cannot open")
    assert full["checks"]["sink"]["lag"] == 12


def test_openapi_declares_the_bearer_scheme(tmp_path: Path) -> None:
    spec = TestClient(_main_app(tmp_path)).get("/openapi.json", headers=AUTH).json()
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "INFERWATCH_API_TOKEN"}
    assert spec["paths"]["/healthz"]["get"]["security"] == []
    assert spec["paths"]["/v1/silences"]["post"]["security"] == [{"bearer": []}]
    assert "413" in spec["paths"]["/v1/silences"]["post"]["responses"]


def test_body_limits_by_route() -> None:
    assert body_limit("/v1/silences") == DEFAULT_MAX_BODY_BYTES
    assert body_limit("/v1/query") == 512 * 1024
    assert body_limit("/v1/query/x") == 512 * 1024
    assert body_limit("/v1/queryx") == DEFAULT_MAX_BODY_BYTES


@pytest.mark.parametrize("which", ["main", "alerter"])
def test_oversized_bodies_are_413(tmp_path: Path, alert_store: AlertStore, which: str) -> None:
    app = _main_app(tmp_path) if which == "main" else create_alerter_app(alert_store, TOKEN)
    c = TestClient(app)
    big = b'{"matchers": ["model=\\"' + b"m" * DEFAULT_MAX_BODY_BYTES + b'\\""], "duration": "1h", "created_by": "x"}'
    r = c.post("/v1/silences", content=big, headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 413, r.text
    # chunked: no Content-Length, the door counts the bytes as they come
    chunks = (b" " * 8192 for _ in range(DEFAULT_MAX_BODY_BYTES // 8192 + 2))
    r = c.post("/v1/silences", content=chunks, headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 413, r.text
    # the door's limit is checked before the token only for a declared length: without the token, 401
    r = c.post("/v1/silences", content=b"{}", headers={"content-type": "application/json"})
    assert r.status_code == 401
    assert c.post("/v1/silences", content=b"{}", headers={**AUTH, "content-length": "12x"}).status_code == 400


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"matchers": [f'model="m{i}"' for i in range(MAX_MATCHERS + 1)]}, 413),
        ({"matchers": {f"k{i}": "v" for i in range(MAX_MATCHERS + 1)}}, 413),
        ({"matchers": ['model="' + "m" * 2000 + '"']}, 413),
        ({"matchers": [{"name": "model", "value": "m" * 2000}]}, 413),
        ({"matchers": ['model="m"'], "comment": "c" * 5000}, 413),
        ({"matchers": ['model="m"'], "created_by": "u" * 300}, 413),
        ({"matchers": ['model="m"'], "duration": "1" * 100}, 413),
        # were 500s: OverflowError on SQLite's integers, int(inf)
        ({"matchers": ['model="m"'], "ends_at": 10**30}, 422),
        ({"matchers": ['model="m"'], "duration": "1e300h"}, 422),
        ({"matchers": ['model="m"'], "duration": "inf"}, 422),
        ({"matchers": ['model="m"'], "starts_at": -1, "ends_at": 5}, 422),
        ({"matchers": [[1, 2]]}, 422),
        ({"matchers": [f'model="m{i}"' for i in range(MAX_MATCHERS)]}, 201),
    ],
)
def test_silence_limits(tmp_path: Path, body: dict[str, object], status: int) -> None:
    c = TestClient(_main_app(tmp_path))
    body = {"duration": "1h", "created_by": "me", **body}
    r = c.post("/v1/silences", json=body, headers=AUTH)
    assert r.status_code == status, r.text


def test_alerter_healthz_is_open_and_says_nothing_else(alert_store: AlertStore) -> None:
    c = TestClient(create_alerter_app(alert_store, TOKEN))
    r = c.get("/healthz")
    assert r.status_code == 200 and r.json() == {"ok": True}


def test_alerter_healthz_details_only_with_the_token(alert_store: AlertStore) -> None:
    def health() -> dict[str, object]:
        return {"ok": False, "deadletters": {"ok": False, "pending": 3}, "snapshots": 120}

    c = TestClient(create_alerter_app(alert_store, TOKEN, health=health, metrics=lambda: "x 1\n"))
    r = c.get("/healthz")
    assert r.status_code == 503 and r.json() == {"ok": False}
    assert c.get("/healthz", headers=AUTH).json()["deadletters"]["pending"] == 3
    assert c.get("/metrics").status_code == 401
    assert c.get("/metrics", headers=AUTH).text == "x 1\n"


class _UnreachableStore:
    """/v1/query is mounted over it; a request refused at the door never gets here."""

    kind = "unreachable"

    def query(self, *a: object, **k: object) -> None:
        raise AssertionError("the store was reached")


def test_query_limits_are_413_before_the_store(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    c = TestClient(create_app(_UnreachableStore(), settings=s))  # type: ignore[arg-type]
    # the SQL text over its 100 000 characters (was 422)
    r = c.post("/v1/query", json={"sql": "SELECT 1 -- " + "x" * 100_000}, headers=AUTH)
    assert r.status_code == 413 and "sql" in r.json()["detail"]
    # the whole body over 512 KiB (params are only bounded by it)
    params = {f"p{i}": "v" * 1000 for i in range(600)}
    r = c.post("/v1/query", json={"sql": "SELECT 1", "params": params}, headers=AUTH)
    assert r.status_code == 413
    # other validation errors stay 422
    assert c.post("/v1/query", json={"sql": "SELECT 1", "max_rows": 0}, headers=AUTH).status_code == 422
