"""Fuzzing the OpenAPI surface of every HTTP server with schemathesis: no 5xx, no hang.

The real servers (uvicorn on 127.0.0.1) over real components: the main API with an embedded
chDB store (migrated) and the session's Kafka broker, and a running alerter service's own API
(its SQLite state, its health and metrics). Every operation of each server's own ``/openapi.json`` gets valid and invalid inputs
(schemathesis' positive and negative modes), with the token, and a few without it. Bounded: a
fixed number of examples per operation, derandomized (a failure replays the same way), a
per-request timeout that turns a hang into a failure, and a timeout on the whole test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from inferwatch.api.app import create_app
from inferwatch.api.door import CONSOLE_OPEN_PATHS, CONSOLE_STATIC
from inferwatch.config import Settings
from inferwatch.store import open_store
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

TOKEN = "fuzz-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = 20  # per operation and generation mode
CONSOLE_EXAMPLES = 8  # per console operation and generation mode
REQUEST_TIMEOUT_S = 10.0  # a request slower than this is a hang


@contextmanager
def serving(server: Any) -> Iterator[str]:
    """Run a ``uvicorn.Server`` in a thread until the block ends; yields its base URL."""
    t = threading.Thread(target=server.run, name="fuzz-http", daemon=True)
    t.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert t.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://{server.config.host}:{server.config.port}"
    finally:
        server.should_exit = True
        t.join(15)


@pytest.fixture
def main_api(settings: Settings, tmp_path: Path) -> Iterator[str]:
    import uvicorn

    s = settings.model_copy(update={"api_token": TOKEN})
    store = open_store(s)
    store.migrate()
    app = create_app(store, settings=s)
    try:
        with serving(uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(),
                                                   log_level="warning", lifespan="off"))) as url:
            yield url
    finally:
        store.close()


@pytest.fixture
def alerter_api(settings: Settings, tmp_path: Path) -> Iterator[str]:
    """The real alerter service (Kafka consumer, dispatcher, its own HTTP server with health and metrics)."""
    from inferwatch.alerter.route.routing import parse_config
    from inferwatch.alerter.service import AlerterService
    from tests.support.alerter import RULES

    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    port = free_port()
    cfg = parse_config({"http": {"host": "127.0.0.1", "port": port}, "route": {"receiver": "hook"},
                        "receivers": [{"name": "hook", "url": "http://127.0.0.1:9/", "signing": "none"}]})
    svc = AlerterService(settings.model_copy(update={"api_token": TOKEN}), rules, cfg).start_in_thread()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:  # the HTTP server thread starts alongside the consumer
            try:
                requests.get(f"{url}/healthz", timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the alerter's HTTP server did not start"
                time.sleep(0.05)
        yield url
    finally:
        svc.join()


def fuzz_operation(base_url: str, op: Any, mode: GenerationMode, headers: dict[str, str], n: int) -> int:
    """``n`` generated requests to one operation; fails on a 5xx, a hang, or (without the token) a non-401."""
    sent = 0

    @settings(max_examples=n, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(generation_mode=mode))
    def one(case: Any) -> None:
        nonlocal sent
        try:
            resp = case.call(base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT_S)
        except requests.Timeout:
            pytest.fail(f"no answer in {REQUEST_TIMEOUT_S}s: {case.as_curl_command()}")
        sent += 1
        assert resp.status_code < 500, f"{resp.status_code} {resp.text[:500]}\n{case.as_curl_command()}"
        if not headers and op.path != "/healthz":
            if op.path.startswith("/console"):
                # the console's login, logout and static files are open; its pages send a browser to
                # the login form (a 303, or the form itself when the redirect was followed)
                if op.path not in CONSOLE_OPEN_PATHS and not op.path.startswith(CONSOLE_STATIC):
                    assert resp.status_code == 303 or 'data-testid="token-input"' in resp.text, case.as_curl_command()
            else:
                assert resp.status_code == 401, case.as_curl_command()

    try:
        one()
    except Unsatisfiable:
        if mode is not GenerationMode.NEGATIVE:
            raise
        # an operation without parameters or body has no invalid input to generate
    return sent


def fuzz(base_url: str) -> dict[str, int]:
    """Fuzz every operation of ``base_url``'s spec; returns how many requests each got."""
    spec = requests.get(f"{base_url}/openapi.json", headers=AUTH, timeout=REQUEST_TIMEOUT_S)
    assert spec.status_code == 200
    schema = schemathesis.openapi.from_dict(spec.json())
    counts: dict[str, int] = {}
    for result in schema.get_all_operations():
        op = result.ok()
        # the console's ~15 operations each run several store queries: fewer examples, each still fuzzed
        k = CONSOLE_EXAMPLES if "/console" in op.path else EXAMPLES
        for mode, headers, n in ((GenerationMode.POSITIVE, AUTH, k), (GenerationMode.NEGATIVE, AUTH, k),
                                 (GenerationMode.POSITIVE, {}, 5)):
            counts[op.label] = counts.get(op.label, 0) + fuzz_operation(base_url, op, mode, headers, n)
    return counts


@pytest.mark.timeout(420)
def test_fuzz_main_api(main_api: str) -> None:
    counts = fuzz(main_api)
    assert {"POST /v1/query", "POST /v1/silences", "DELETE /v1/silences/{silence_id}", "GET /metrics",
            "GET /healthz", "GET /v1/alerts"} <= set(counts)
    # every operation with inputs was exercised (one without any has a single possible request)
    assert min(n for label, n in counts.items() if label != "GET /healthz") >= 10


@pytest.mark.timeout(120)
def test_fuzz_alerter_api(alerter_api: str) -> None:
    counts = fuzz(alerter_api)
    assert {"POST /v1/silences", "GET /v1/silences", "GET /healthz", "GET /metrics"} <= set(counts)
    assert min(n for label, n in counts.items() if label != "GET /healthz") >= 10
