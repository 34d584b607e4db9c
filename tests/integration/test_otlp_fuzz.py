"""Fuzzing the OTLP receiver's HTTP surface (``inferwatch run otlp``'s app) with schemathesis, over
the session's real broker: no 5xx, no hang, 401 without the token (see test_http_fuzz.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from inferwatch.config import Settings
from inferwatch.otlp.http import create_otlp_app
from inferwatch.otlp.receiver import OtlpReceiver
from tests.integration.test_http_fuzz import TOKEN, fuzz, serving
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def otlp_api(settings: Settings, tmp_path: Path) -> Iterator[tuple[str, OtlpReceiver]]:
    import uvicorn

    s = settings.model_copy(update={"api_token": TOKEN})
    rec = OtlpReceiver(s, spool_dir=tmp_path / "otlp-spool")
    try:
        with serving(uvicorn.Server(uvicorn.Config(create_otlp_app(s, rec), host="127.0.0.1", port=free_port(),
                                                   log_level="warning", lifespan="off"))) as url:
            yield url, rec
    finally:
        rec.close()


@pytest.mark.timeout(180)
def test_fuzz_otlp_api(otlp_api: tuple[str, OtlpReceiver]) -> None:
    url, rec = otlp_api
    counts = fuzz(url)
    assert {"POST /v1/traces", "GET /healthz"} <= set(counts)
    assert counts["POST /v1/traces"] >= 10
    assert rec.c.snapshot()["requests"] > 0  # bodies got past the door to the receiver
