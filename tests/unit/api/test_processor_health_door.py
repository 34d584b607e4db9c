"""The processor's health server keeps the same door as the API: the bearer token on every path
but /healthz (hashed, constant-time compare; any header without raising), /healthz details only
with the token, no 5xx for other methods. A real server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from inferwatch.processor.health import ProcessorHealth, serve_health

TOKEN = "proc-token"


@pytest.fixture
def base() -> Iterator[str]:
    h = ProcessorHealth()
    h.failed(RuntimeError("boom while decoding user@example.com"), 3)
    server = serve_health(h, "127.0.0.1", 0, TOKEN)
    assert server is not None
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_healthz_is_open_but_shows_details_only_with_the_token(base: str) -> None:
    r = httpx.get(f"{base}/healthz")
    assert r.status_code == 503 and r.json() == {"ok": False}  # before: the error text, to anyone
    full = httpx.get(f"{base}/healthz", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert "boom" in full["last_error"] and full["consecutive_failures"] == 3


def test_every_other_path_needs_the_token(base: str) -> None:
    for path in ("/metrics", "/nope"):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                        {"Authorization": "Bearer \u00e9t\u00e9".encode()}):  # before: a non-ASCII header raised
            assert httpx.get(f"{base}{path}", headers=headers).status_code == 401, (path, headers)
    ok = {"Authorization": f"bearer {TOKEN}"}
    assert "inferwatch_processor_batch_failures_total 1" in httpx.get(f"{base}/metrics", headers=ok).text
    assert httpx.get(f"{base}/nope", headers=ok).status_code == 404


def test_other_methods_are_not_server_errors(base: str) -> None:
    assert httpx.post(f"{base}/metrics", content=b"x").status_code == 401
    r = httpx.delete(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 405  # before: 501 from http.server


def test_no_token_no_public_bind() -> None:
    assert serve_health(ProcessorHealth(), "0.0.0.0", 0, None) is None
