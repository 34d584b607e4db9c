"""The web console in a real browser, while the demo's fleet runs on the whole platform.

Headless Chromium from the Debian packages (``make install`` brings it: infra/ensure-system-deps.sh),
driven by Playwright through its executable path; Playwright's own browser download is never used
(it reaches outside the package registries). A missing or broken browser FAILS the test: a skipped
browser test would pass without anyone having looked at a page.

What a person would do: open the console (sent to the login page), give a wrong token (refused),
the right one, and from the fleet page reach the new-camera incident in at most three clicks; the
incident names ``device=nova-x``; silence it with a duration and a comment; the silence is then in
the API's JSON (``/v1/silences``), muting that alert (``/v1/alerts``), and the page says so after a
reload. A screenshot of every page is written under the test's temporary folder (its path is
printed; keep it with ``--basetemp``).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Error, Page, expect, sync_playwright

from inferwatch.demo.fleet import NEW_DEVICE
from tests.e2e.conftest import FleetRun

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

CHROMIUM_ENV = "INFERWATCH_CHROMIUM"
"""Path of the Chromium binary to drive (default: ``chromium`` on the PATH, Debian's package)."""

# Chromium's own background traffic (component updates, sync, first-run pages, QUIC probes) reaches
# for Google's hosts; on a machine without that network it only adds refused connections and delay.
LAUNCH_ARGS = ["--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--no-first-run", "--disable-quic", "--disable-dev-shm-usage"]
SEGMENT = f"device={NEW_DEVICE}"
MAX_CLICKS = 3


def chromium_path() -> str:
    """The Chromium binary to drive; fails the test (never skips) when there is none."""
    path = os.environ.get(CHROMIUM_ENV) or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail(f"no Chromium: install Debian's package (`make system-deps`, or apt-get install chromium) "
                    f"or point {CHROMIUM_ENV} at a Chromium binary", pytrace=False)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium (the system's), through Playwright."""
    exe = chromium_path()
    with sync_playwright() as pw:
        try:
            b = pw.chromium.launch(executable_path=exe, headless=True, args=LAUNCH_ARGS, timeout=60_000)
        except Error as exc:
            pytest.fail(f"Chromium at {exe} did not start under Playwright: {exc}", pytrace=False)
        yield b
        b.close()


class Shots:
    """Full-page screenshots, numbered in the order the pages were seen."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.paths: list[Path] = []
        folder.mkdir(parents=True, exist_ok=True)
        print(f"console screenshots: {folder}")

    def take(self, page: Page, name: str) -> Path:
        path = self.folder / f"{len(self.paths) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        self.paths.append(path)
        return path


def test_console_finds_and_silences_the_new_camera(fleet_run: FleetRun, browser: Browser, tmp_path: Path) -> None:
    stack = fleet_run.stack
    shots = Shots(tmp_path / "console-screenshots")
    context = browser.new_context(base_url=stack.api_url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    js_errors: list[str] = []
    page.on("pageerror", lambda exc: js_errors.append(str(exc)))
    try:
        # without a session, the console sends the browser to its login page
        page.goto("/console/")
        expect(page).to_have_url(f"{stack.api_url}/console/login?next=/console/")
        page.get_by_test_id("token-input").fill("not-the-token")
        page.get_by_test_id("token-submit").click()
        expect(page.get_by_role("alert")).to_contain_text("wrong token")
        shots.take(page, "login-refused")
        page.get_by_test_id("token-input").fill(fleet_run.token)
        page.get_by_test_id("token-submit").click()

        # the fleet page: the model in trouble is there, and its firing incidents are linked
        expect(page).to_have_url(f"{stack.api_url}/console/")
        row = page.locator("[data-testid=fleet-row][data-model=photo-verifier]").first
        expect(row).to_be_visible()
        direct = page.get_by_test_id("incident-link").filter(has_text="photo-verifier").filter(has_text=SEGMENT)
        expect(direct.first).to_be_visible()  # one click away from the fleet page too
        page.wait_for_load_state("networkidle")
        shots.take(page, "fleet")

        # fleet -> model -> incident: two clicks
        clicks = 0
        row.get_by_test_id("model-link").click()
        clicks += 1
        expect(page).to_have_url(re.compile(r"/console/models/photo-verifier\?version=[^&]+$"))
        alert_row = page.locator("tr").filter(has=page.get_by_test_id("incident-link").filter(
            has_text="accuracy_drop")).filter(has_text=SEGMENT)
        expect(alert_row.first).to_be_visible()
        page.wait_for_load_state("networkidle")
        shots.take(page, "model")
        alert_row.first.get_by_test_id("incident-link").click()
        clicks += 1
        assert clicks <= MAX_CLICKS

        # the incident names the new camera's segment
        expect(page).to_have_url(re.compile(r"/console/incidents/[^/?]+$"))
        fingerprint = page.url.rsplit("/", 1)[-1]
        expect(page.get_by_test_id("incident-segment")).to_have_text(SEGMENT)
        page.wait_for_load_state("networkidle")
        shots.take(page, "incident")

        # silence it: duration and comment
        comment = f"e2e: the new camera ({NEW_DEVICE}), on it"
        # the form opens with its button (it was shown from the start while a style overrode `hidden`)
        expect(page.get_by_test_id("silence-comment")).to_be_hidden()
        page.get_by_test_id("silence-button").click()
        expect(page.get_by_test_id("silence-comment")).to_be_visible()
        page.get_by_test_id("silence-duration").select_option("8h")
        page.get_by_test_id("silence-comment").fill(comment)
        page.get_by_test_id("silence-submit").click()
        result = page.get_by_test_id("silence-result")
        expect(result).to_have_attribute("data-silence-id", re.compile(r".+"))
        expect(result).to_contain_text("Silenced")
        silence_id = result.get_attribute("data-silence-id")
        assert silence_id and silence_id in (result.text_content() or ""), result.text_content()
        shots.take(page, "incident-silenced")

        # the silence, through the API's JSON: stored with its comment and about 8 hours long, muting this alert
        headers = stack.auth_headers()
        silences = httpx.get(f"{stack.api_url}/v1/silences", headers=headers, timeout=10).json()["silences"]
        mine = [s for s in silences if s["id"] == silence_id]
        assert mine, silences
        assert mine[0]["comment"] == comment
        assert 7.9 * 3600_000 <= mine[0]["ends_at"] - mine[0]["starts_at"] <= 8.1 * 3600_000, mine[0]
        alerts = httpx.get(f"{stack.api_url}/v1/alerts", headers=headers, timeout=10).json()["alerts"]
        this = [a for a in alerts if a["fingerprint"] == fingerprint]
        assert this and silence_id in this[0]["silenced_by"], this
        # and the page says so once reloaded
        page.reload()
        expect(page.locator("body")).to_contain_text(silence_id)
        shots.take(page, "incident-after-reload")
    finally:
        context.close()
    assert not js_errors, js_errors
    assert all(p.stat().st_size > 10_000 for p in shots.paths), [(p.name, p.stat().st_size) for p in shots.paths]
