"""The composed API without a broker: auth, alerts and silences over the alerter's SQLite state,
the OpenAPI spec, and the Prometheus exposition of /metrics."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from inferwatch.api.app import create_app
from inferwatch.api.metrics import Exposition
from inferwatch.config import Settings


def _client(tmp_path: Path, token: str | None = None) -> TestClient:
    # a closed port: Kafka lookups fail fast and /metrics reports kafka_up 0
    s = Settings(kafka_bootstrap="127.0.0.1:1", data_dir=tmp_path, api_token=token)
    return TestClient(create_app(None, settings=s))


def test_creating_the_app_writes_nothing(tmp_path: Path) -> None:
    _client(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_bearer_token_everywhere_but_healthz(tmp_path: Path) -> None:
    c = _client(tmp_path, token="s3cret")
    assert c.get("/healthz").status_code == 200
    assert c.get("/v1/alerts").status_code == 401
    assert c.get("/v1/alerts", headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = c.get("/v1/alerts", headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200 and r.json() == {"alerts": []}


def test_silences_round_trip(tmp_path: Path) -> None:
    c = _client(tmp_path)
    r = c.post("/v1/silences", json={"matchers": ['model="photo-verifier"'], "duration": "1h", "created_by": "me"})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert [s["id"] for s in c.get("/v1/silences").json()["silences"]] == [sid]
    assert c.delete(f"/v1/silences/{sid}").status_code == 200
    assert c.get("/v1/silences").json()["silences"] == []
    assert c.delete("/v1/silences/nope").status_code == 404


def test_openapi_lists_the_routes(tmp_path: Path) -> None:
    paths = _client(tmp_path).get("/openapi.json").json()["paths"]
    assert {"/healthz", "/metrics", "/v1/alerts", "/v1/silences"} <= set(paths)


def test_metrics_exposition_without_kafka(tmp_path: Path) -> None:
    (tmp_path / "spool" / "m").mkdir(parents=True)
    (tmp_path / "spool" / "m" / "seg-1").write_bytes(b"x" * 1234)
    r = _client(tmp_path).get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "inferwatch_kafka_up 0" in r.text
    assert "inferwatch_spool_bytes 1234" in r.text
    assert "# TYPE inferwatch_alerts gauge" in r.text


def test_exposition_format() -> None:
    e = Exposition()
    e.add("x_total", 3, {"b": 'q"uote', "a": "1"}, "counter", "help text")
    e.add("x_total", 4, {"a": "2"}, "counter")
    e.add("y", None)
    e.add("z", 0.5)
    assert e.text() == (
        "# HELP inferwatch_x_total help text\n# TYPE inferwatch_x_total counter\n"
        'inferwatch_x_total{a="1",b="q\\"uote"} 3\ninferwatch_x_total{a="2"} 4\n'
        "# HELP inferwatch_y y\n# TYPE inferwatch_y gauge\n"
        "# HELP inferwatch_z z\n# TYPE inferwatch_z gauge\ninferwatch_z 0.5\n"
    )
