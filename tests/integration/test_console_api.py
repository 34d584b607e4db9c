"""The web console over a real-shaped history (the demo fleet's incidents, in a real embedded store):
every page and JSON endpoint answers, behind the token or the console's session; user strings are
escaped; hostile parameters are refused cleanly; the camera incident names ``device=nova-x``; the
Silence button's request creates a silence through the API."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from inferwatch.api.app import create_app
from inferwatch.api.console import auth
from inferwatch.config import Settings
from inferwatch.testing.history import HOSTILE_SEGMENT
from tests.support.history import history_dir, opened  # noqa: F401 - fixture

pytestmark = pytest.mark.integration
TOKEN = "console-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CAMERA = "photo-verifier"
HOSTILE_MODELS = ['<svg onload=alert("x")>', "\"'><img src=x onerror=alert(1)>", "модель-ü-\u202e"]
PAGES = ["/console/", f"/console/models/{CAMERA}", "/console/sql", "/console/sql?saved=accuracy_by_segment"]
JSON = ["/v1/console/fleet", f"/v1/console/models/{CAMERA}", "/v1/console/sql"]


@pytest.fixture(scope="module")
def client(history_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:  # noqa: F811
    # the alerter's state (silences) lives in its own data dir; the history's store is opened here
    s = Settings(data_dir=tmp_path_factory.mktemp("console-api"), api_token=TOKEN, kafka_bootstrap="127.0.0.1:1")
    with opened(history_dir) as store:
        yield TestClient(create_app(store, settings=s, metrics=False), base_url="http://127.0.0.1:8787")


@pytest.fixture(scope="module")
def camera_incident(client: TestClient) -> str:
    """The whole-version drift alert of the new camera (input.image_width.psi on photo-verifier)."""
    fleet = client.get("/v1/console/fleet", headers=AUTH).json()
    hits = [a for a in fleet["incidents"] if a["model"] == CAMERA and a["labels"].get("metric") == "input.image_width.psi"
            and not a["segment"]]
    assert hits, [(a["rule"], a["model"], a["segment"]) for a in fleet["incidents"]]
    return str(hits[0]["fingerprint"])


def test_every_endpoint_answers(client: TestClient, camera_incident: str) -> None:
    for url in [*JSON, f"/v1/console/incidents/{camera_incident}", *PAGES, f"/console/incidents/{camera_incident}",
                "/console/static/console.js", "/console/static/vendor/uPlot.esm.js"]:
        r = client.get(url, headers=AUTH)  # how fast: the benchmark console.model_page_p50_s, not a test
        assert r.status_code == 200, (url, r.status_code, r.text[:300])
    page = client.get("/console/", headers=AUTH)
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_fleet_puts_the_model_in_trouble_first_with_its_numbers(client: TestClient) -> None:
    d = client.get("/v1/console/fleet", headers=AUTH).json()
    models = d["models"]
    assert {m["model"] for m in models} >= {CAMERA, "checkout-ranker", "fraud-scorer", "essay-grader"}
    firing = [m["firing"] for m in models]
    assert firing == sorted(firing, reverse=True) and firing[0] > 0
    control = next(m for m in models if m["model"] == "fraud-scorer")
    assert control["firing"] == 0 and control["predictions"] > 0 and control["latency_p95_ms"] > 0
    bad = next(m for m in models if m["model"] == "checkout-ranker" and m["model_version"] == "2.1")
    assert bad["error_rate"] > 0.05 and bad["firing"] >= 1  # the bad deploy
    camera = next(m for m in models if m["model"] == CAMERA)
    assert 0 < camera["label_coverage"] <= 1 and len(camera["spark"]) == len(camera["spark_t"]) >= 2
    html = client.get("/console/", headers=AUTH).text
    rows = re.findall(r'<tr data-testid="fleet-row" data-model="([^"]*)" data-version="([^"]*)"', html)
    assert rows[0][0] == models[0]["model"] and len(rows) == len(models)
    assert html.count('data-testid="model-link"') == len(models)
    assert f'href="/console/incidents/{d["incidents"][0]["fingerprint"]}" data-testid="incident-link"' in html
    assert 'href="/console/?range_s=86400"' in html and 'aria-current="true">1 h<' in html  # range links
    short = client.get("/v1/console/fleet", headers=AUTH, params={"range_s": 300}).json()
    assert short["range"]["to_ms"] - short["range"]["from_ms"] == 300_000
    assert sum(m["predictions"] for m in short["models"]) < sum(m["predictions"] for m in models)


def test_model_page_series_reference_band_heatmap_and_signals(client: TestClient) -> None:
    d = client.get(f"/v1/console/models/{CAMERA}", headers=AUTH, params={"metric": "input.image_width.psi",
                                                                         "segment_key": "device"}).json()
    s = d["series"]
    assert d["metric"] == "input.image_width.psi" and len(s["t"]) >= 2 and len(s["whole"]) == len(s["t"])
    assert "nova-x" in [x["value"] for x in s["segments"]]
    mean = client.get(f"/v1/console/models/{CAMERA}", headers=AUTH, params={"metric": "input.image_width.mean"}).json()
    lo, hi = mean["series"]["reference_lo"], mean["series"]["reference_hi"]
    assert any(v is not None for v in lo) and all(a <= b for a, b in zip(lo, hi, strict=True) if a is not None)
    heat = d["heatmap"]
    assert "image_width" in heat["features"] and max(max(v or 0 for v in row) for row in heat["psi"]) >= 0.2
    seg = client.get(f"/v1/console/models/{CAMERA}", headers=AUTH, params={"heat_segment": "device=nova-x"}).json()
    assert seg["heatmap"]["segment"] == "device=nova-x" and seg["heatmap"]["features"]
    assert any(a["state"] == "firing" for a in d["incidents"])
    html = client.get(f"/console/models/{CAMERA}", headers=AUTH).text
    assert 'data-testid="incident-link"' in html and "▲" in html
    llm = client.get("/v1/console/models/essay-grader", headers=AUTH).json()
    assert "llm.refusal_rate" in llm["signals"]["metrics"]
    rec = client.get("/v1/console/models/home-recommender", headers=AUTH).json()
    assert "embedding.drift" in rec["signals"]["metrics"] and "lineage.self_share" in rec["signals"]["metrics"]


def test_the_camera_incident_names_the_segment_and_what_drifted_there(client: TestClient, camera_incident: str) -> None:
    d = client.get(f"/v1/console/incidents/{camera_incident}", headers=AUTH).json()
    assert d["state"] == "firing" and d["since_ms"] and d["metric"] == "input.image_width.psi"
    assert d["segment"] == "device=nova-x" and d["ranked_segments"][0]["label"] == "device=nova-x"
    drifted = {x["feature"]: x for x in d["drifted_inputs"]}
    assert "image_width" in drifted
    h = drifted["image_width"]["histogram"]
    assert h["kind"] == "numeric" and sum(h["before"]) > 0 and sum(h["after"]) > 0
    assert d["notifications"] and d["notifications"][0]["outcome"] == "delivered"
    assert d["accuracy_query"]["saved"] == "accuracy_by_segment" and d["accuracy_query"]["params"]["segment_key"] == "device"
    html = client.get(f"/console/incidents/{camera_incident}", headers=AUTH).text
    assert re.search(r'data-testid="incident-segment">device=nova-x<', html)
    for hook in ("silence-button", "silence-duration", "silence-comment", "silence-submit", "silence-result"):
        assert f'data-testid="{hook}"' in html, hook
    assert "FROM predictions" in html and "accuracy_by_segment" in html  # the saved query's SQL, shown
    # ... and runnable as the page runs it
    r = client.post("/v1/console/sql", headers=AUTH, json={"saved": "accuracy_by_segment", "params": d["accuracy_query"]["params"]})
    assert r.status_code == 200, r.text
    res = r.json()
    nova = [row for row in res["rows"] if row[res["columns"].index("segment_value")] == "nova-x"]
    assert nova and any(row[res["columns"].index("labeled_count")] > 0 for row in nova)


def test_unknown_incident_is_404(client: TestClient) -> None:
    assert client.get("/v1/console/incidents/0000000000000000", headers=AUTH).status_code == 404
    assert client.get("/console/incidents/0000000000000000", headers=AUTH).status_code == 404


def test_user_strings_are_escaped_everywhere(client: TestClient, camera_incident: str) -> None:
    pages = [client.get(u, headers=AUTH).text for u in
             ["/console/", f"/console/models/{CAMERA}?segment_key=device", f"/console/incidents/{camera_incident}",
              f"/console/models/{CAMERA}?heat_segment={quote('device=' + HOSTILE_SEGMENT)}"]]
    assert any("&lt;script&gt;alert(1)&lt;/script&gt;" in p for p in pages)  # the hostile value is shown...
    for p in pages:
        assert HOSTILE_SEGMENT not in p  # ...never as markup
        assert len(re.findall(r"<script\b", p)) == 1  # only our module
    for name in HOSTILE_MODELS:
        r = client.get(f"/console/models/{quote(name, safe='')}", headers=AUTH, params={"version": name, "metric": name})
        assert r.status_code == 200, r.text[:200]
        assert name not in r.text or name == HOSTILE_MODELS[2]  # the unicode one has nothing to escape
        assert len(re.findall(r"<script\b", r.text)) == 1 and "<img" not in r.text and "<svg" not in r.text
        assert client.get(f"/v1/console/models/{quote(name, safe='')}", headers=AUTH).status_code == 200


@pytest.mark.parametrize("query", [
    "range_s=-1", "range_s=0", "range_s=99999999999999999999999", "range_s=abc", "end_ms=-5",
    "end_ms=1e400", "end_ms=99999999999999999999", "metric=" + "x" * 5000, "version=" + "v" * 1000,
    "segment_key=" + "k" * 1000, "heat_segment=" + "s" * 5000,
])
def test_hostile_query_params_are_refused_cleanly(client: TestClient, query: str) -> None:
    for path in ("/v1/console/fleet", f"/v1/console/models/{CAMERA}"):
        r = client.get(f"{path}?{query}", headers=AUTH)
        if path.endswith("fleet") and query.split("=")[0] not in ("range_s", "end_ms"):
            assert r.status_code == 200  # not a parameter of this page: ignored
        else:
            assert r.status_code in (413, 422), (path, query, r.status_code)  # over a length limit is 413
            assert "detail" in r.json()


def test_sql_ish_params_are_values_not_sql(client: TestClient) -> None:
    evil = "x' OR 1=1; DROP TABLE predictions; --"
    for params in ({"metric": evil}, {"version": evil}, {"segment_key": evil}, {"heat_segment": f"{evil}={evil}"}):
        r = client.get(f"/v1/console/models/{CAMERA}", headers=AUTH, params=params)
        assert r.status_code == 200, (params, r.text[:300])
    assert client.get(f"/v1/console/models/{quote(evil, safe='')}", headers=AUTH).json()["versions"] == []
    for bad in ("..%2F..%2Fetc", "x'--", "a" * 65, "%3Cscript%3E"):
        assert client.get(f"/v1/console/incidents/{bad}", headers=AUTH).status_code in (404, 422), bad
    r = client.post("/v1/console/sql", headers=AUTH, json={"sql": "DROP TABLE predictions"})
    assert r.status_code == 400 and "refused" in r.json()["detail"]
    assert client.post("/v1/console/sql", headers=AUTH, json={"saved": "nope"}).status_code == 422
    assert client.post("/v1/console/sql", headers=AUTH, json={"saved": "../x"}).status_code == 422
    assert client.post("/v1/console/sql", headers=AUTH, json={}).status_code == 422
    assert client.post("/v1/console/sql", headers=AUTH, json={"saved": "accuracy_by_segment", "params": {"zzz": "1"}}).status_code == 422
    assert client.post("/v1/console/sql", headers=AUTH, json={"sql": "SELECT 1", "max_rows": 10**9}).status_code == 422
    assert client.get("/v1/console/sql", headers=AUTH).json()["saved"]
    ok = client.post("/v1/console/sql", headers=AUTH, json={"sql": "SELECT count() AS n FROM predictions"}).json()
    assert ok["rows"][0][0] > 0  # and the table is still there


def test_the_token_is_required_everywhere(client: TestClient, camera_incident: str) -> None:
    paths = [*PAGES, *JSON, f"/console/incidents/{camera_incident}", f"/v1/console/incidents/{camera_incident}", "/console"]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Cookie": f"{auth.COOKIE}=v1.1.00"},
                    {"Cookie": f"{auth.COOKIE}={auth.new_session('another-token')}"}):
        for p in paths:
            r = client.get(p, headers=headers, follow_redirects=False)
            if p.startswith("/console"):  # a browser is sent to the login page, and back afterwards
                assert r.status_code == 303 and r.headers["location"].startswith("/console/login?next="), (p, r.status_code)
            else:
                assert r.status_code in (401, 403), (p, headers, r.status_code)
            assert "photo-verifier" not in r.text
        for p, body in (("/v1/console/sql", {"sql": "SELECT 1"}), ("/v1/silences", {"matchers": {"a": "b"}, "duration": "1h", "created_by": "x"})):
            assert client.post(p, headers=headers, json=body).status_code in (401, 403), p
    # the login page is open, with its script and style (the same for everyone, no data)
    for p in ("/console/static/console.js", "/console/static/console.css", "/console/static/vendor/uPlot.esm.js"):
        assert client.get(p).status_code == 200, p
    login = client.get("/console/login").text
    assert 'data-testid="token-input"' in login and 'data-testid="token-submit"' in login


def test_login_sets_a_strict_session_and_changes_need_csrf(client: TestClient, camera_incident: str) -> None:
    browser = TestClient(client.app, base_url="http://127.0.0.1:8787")
    r = browser.post("/console/login", content="token=wrong&next=/console/", follow_redirects=False,
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 303 and "error=" in r.headers["location"] and "set-cookie" not in r.headers
    r = browser.post("/console/login", content="token=" + quote(TOKEN) + "&next=https://evil.example/",
                     follow_redirects=False, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 303 and r.headers["location"] == "/console/"  # no open redirect
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    r = browser.post("/console/login", content="token=" + quote(TOKEN), follow_redirects=False,
                     headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example"})
    assert r.status_code == 403
    page = browser.get(f"/console/incidents/{camera_incident}")
    assert page.status_code == 200 and 'data-testid="silence-button"' in page.text
    csrf = re.search(r'<meta name="inferwatch-csrf" content="([0-9a-f]{64})">', page.text).group(1)
    assert browser.get("/v1/console/fleet").status_code == 200
    # a change without the CSRF header, or from another origin, is refused
    body = {"matchers": page_matchers(page.text), "duration": "2h", "created_by": "console", "comment": "on it"}
    assert browser.post("/v1/silences", json=body).status_code == 403
    assert browser.post("/v1/silences", json=body, headers={auth.CSRF_HEADER: csrf, "Origin": "http://evil.example"}).status_code == 403
    # what the Silence button sends
    r = browser.post("/v1/silences", json=body, headers={auth.CSRF_HEADER: csrf, "Origin": "http://127.0.0.1:8787"})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    silences = client.get("/v1/silences", headers=AUTH).json()["silences"]
    assert any(s["id"] == sid and s["comment"] == "on it" for s in silences)
    assert sid in client.get(f"/v1/console/incidents/{camera_incident}", headers=AUTH).json()["silenced_by"]
    r = browser.post("/v1/console/sql", json={"sql": "SELECT 1 AS one"}, headers={auth.CSRF_HEADER: csrf})
    assert r.status_code == 200 and r.json()["rows"] == [[1]]
    out = browser.get("/console/logout", follow_redirects=False)
    assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]
    assert browser.get("/v1/console/fleet").status_code == 401


def page_matchers(html: str) -> dict[str, str]:
    """The alert's labels the page gives the Silence button (``data-matchers``, HTML-escaped JSON)."""
    import html as h
    import json

    raw = re.search(r'data-matchers="([^"]*)"', html).group(1)
    return dict(json.loads(h.unescape(raw)))


def test_static_files_cannot_leave_their_folder(client: TestClient) -> None:
    for p in ("/console/static/../routes.py", "/console/static/%2e%2e/routes.py", "/console/static/..%2Fauth.py",
              "/console/static/nope.js", "/console/static/vendor/../../routes.py"):
        assert client.get(p, headers=AUTH).status_code == 404, p

