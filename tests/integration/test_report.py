"""``inferwatch report`` on a real-shaped history (demo fleet through the processor core, the alerter
engine and the sink's row builders) in a real embedded store: one offline file, the expected
sections, the named segment, escaped user strings, the same query path as ``inferwatch sql``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from xml.etree import ElementTree

import pytest

from inferwatch.cli.cmd_report import query_runner
from inferwatch.config import Settings
from inferwatch.infra.kafka_native import free_port
from inferwatch.report import QUERIES, build_report
from inferwatch.report.svg import OKABE_ITO
from inferwatch.testing.history import HOSTILE_SEGMENT
from tests.support.history import END, START, history_dir, opened  # noqa: F401 - fixture

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
SECTIONS = ("s-summary", "s-incidents", "s-traffic", "s-drift", "s-perf", "s-llm")
EXTERNAL = re.compile(r"""(?:src|href|xlink:href|action|data)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:|//)""", re.I)


def _offline(page: str) -> None:
    assert not EXTERNAL.search(page), EXTERNAL.search(page)
    lowered = page.lower()
    for bad in ("@import", "url(", "<script", "<iframe", "<link", "<img", "<object", "<embed", "http://", "https://"):
        assert bad not in lowered, bad
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def _report(data_dir: Path, model: str, version: str | None = None) -> str:
    s = Settings(data_dir=data_dir, api_port=free_port())  # nothing answers there: the store directly
    with query_runner(s, 30.0) as run:
        return build_report(run, model, version, START, END)


def test_camera_report_is_one_offline_page_naming_the_new_device(history_dir: Path) -> None:  # noqa: F811
    page = _report(history_dir, "photo-verifier")
    _offline(page)
    for sid in SECTIONS:
        assert f'id="{sid}"' in page, sid
    # The incident: drift on image_width, named at the new device; alerts listed.
    assert "nova-x" in page and "image_width" in page and "input_drift" in page
    summary = page[page.index('id="s-summary"'):page.index('id="s-incidents"')]
    assert re.search(r"input\.image_width\.psi</th><td>drift</td><td>\d+</td>.*?<td>device=nova-x</td>", summary)
    incidents = page[page.index('id="s-incidents"'):page.index('id="s-traffic"')]
    assert "metric=input.image_width.psi" in incidents and "mostly in segment device=nova-x" in incidents
    drift = page[page.index('id="s-drift"'):page.index('id="s-perf"')]
    assert "device=nova-x" in drift and "▲" in drift
    perf = page[page.index('id="s-perf"'):page.index('id="s-llm"')]
    assert "perf.accuracy" in perf and "device=nova-x" in perf
    assert "no LLM signals" in page[page.index('id="s-llm"'):]
    # Accessibility: each chart is an image with a title and a description, and a data table.
    charts = re.findall(r"<svg [^>]*>", page)
    assert charts and all('role="img"' in c and "aria-labelledby" in c for c in charts)
    assert page.count("<title id=") == len(charts) and page.count("<desc id=") == len(charts)
    assert page.count("Data table:") >= 4
    assert OKABE_ITO[0] in page and OKABE_ITO[1] in page
    for svg in re.findall(r"<svg .*?</svg>", page, re.S):  # each chart is well-formed markup
        ElementTree.fromstring(svg)


def test_hostile_segment_value_is_escaped(history_dir: Path) -> None:  # noqa: F811
    with opened(history_dir) as store:  # the hostile value really is in the history
        assert store.scalar("SELECT count() FROM metrics WHERE segment_value = {v:String}", {"v": HOSTILE_SEGMENT}) > 0
    page = _report(history_dir, "photo-verifier")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert HOSTILE_SEGMENT not in page and "<script" not in page.lower()


def test_llm_and_bad_deploy_reports(history_dir: Path) -> None:  # noqa: F811
    llm = _report(history_dir, "essay-grader")
    _offline(llm)
    section = llm[llm.index('id="s-llm"'):]
    assert "llm.refusal_rate" in section and "llm.logprob_mean" in section and "<svg" in section
    assert "llm_refusal_rate" in llm  # its alert
    deploy = _report(history_dir, "checkout-ranker")
    assert "2.0" in deploy and "2.1" in deploy and "error_rate_high" in deploy
    only = _report(history_dir, "checkout-ranker", "2.0")
    assert "versions: 2.0 " in only and "error_rate_high" not in only  # the alert is on 2.1


def test_unknown_model_gives_an_empty_but_valid_page(history_dir: Path) -> None:  # noqa: F811
    page = _report(history_dir, "no-such-model")
    _offline(page)
    assert "none in range" in page and "No alert notifications" in page and "no data in this range" in page


def test_report_goes_through_the_sink_api_when_it_owns_the_store(history_dir: Path) -> None:  # noqa: F811
    import uvicorn

    from inferwatch.api.app import create_app
    from inferwatch.store.remote import api_answers

    with opened(history_dir) as store:
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(store), host="127.0.0.1", port=port, log_level="warning"))
        t = threading.Thread(target=server.run, daemon=True)
        t.start()
        try:
            # Warm: the runner's probe of /healthz has a short timeout (as for `inferwatch sql`), and
            # a slow first answer on a loaded machine would send it to the store directly.
            deadline = time.monotonic() + 30
            while not api_answers(f"http://127.0.0.1:{port}", timeout_s=2) and time.monotonic() < deadline:
                time.sleep(0.1)
            seen: list[str] = []
            s = Settings(data_dir=history_dir / "elsewhere", api_host="127.0.0.1", api_port=port)
            with query_runner(s, 30.0) as run:
                def spy(sql, params):  # type: ignore[no-untyped-def]
                    seen.append(sql)
                    return run(sql, params)
                page = build_report(spy, "photo-verifier", None, START, END)
        finally:
            server.should_exit = True
            t.join(10)
    assert len(seen) == len(QUERIES)
    assert not (history_dir / "elsewhere" / "chdb").exists()  # never opened a store of its own
    assert "device=nova-x" in page and "&lt;script&gt;" in page


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INFERWATCH_DATA_DIR": str(data_dir), "INFERWATCH_API_PORT": str(free_port()),
           "PYTHONPATH": os.pathsep.join([str(REPO / "services"), str(REPO)])}
    return subprocess.run([sys.executable, "-m", "inferwatch.cli.main", "report", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_cli_writes_the_report_and_reads_times(history_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "r.html"
    r = _cli(history_dir, "--model", "photo-verifier", "--from", "2026-12-01T00:00:00Z", "--to", "2026-12-01 01:00",
             "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout
    page = out.read_text()
    _offline(page)
    assert "device=nova-x" in page and "2026-12-01 00:00:00Z" in page
    bad = _cli(history_dir, "--model", "photo-verifier", "--from", "last tuesday", "-o", str(tmp_path / "x.html"))
    assert bad.returncode == 1 and "--from: cannot read 'last tuesday'" in bad.stderr and "24h" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "x.html").exists()
    empty = _cli(history_dir, "--model", "photo-verifier", "--from", "2026-12-02", "--to", "2026-12-01",
                 "-o", str(tmp_path / "y.html"))
    assert empty.returncode == 1 and "must be before --to" in empty.stderr
