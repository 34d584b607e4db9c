"""The console's front end ships inside the package and loads nothing from elsewhere.

The chart library (uPlot, from the npm registry at build time: ``console/package.json``) is copied
by ``make install`` into ``static/vendor/``, which git ignores; these tests fail when it is missing
or when a build of the package would leave it (or the templates, script and style) out.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from inferwatch.api.console.routes import STATIC, VENDOR_FILES, vendor_missing

ROOT = Path(__file__).resolve().parents[3]
CONSOLE = ROOT / "services" / "inferwatch" / "api" / "console"


def test_the_vendored_chart_library_is_installed() -> None:
    assert not vendor_missing(), f"missing in {STATIC / 'vendor'}: {vendor_missing()}; run `make install`"
    esm = (STATIC / "vendor" / "uPlot.esm.js").read_text()
    assert "export { uPlot as default }" in esm


def test_the_version_is_pinned_by_the_lock_file_and_vendor_is_ignored() -> None:
    lock = (ROOT / "console" / "package-lock.json").read_text()
    assert '"node_modules/uplot"' in lock and '"integrity"' in lock
    ignored = subprocess.run(["git", "check-ignore", "-q", str(STATIC / "vendor" / VENDOR_FILES[0])], cwd=ROOT)
    assert ignored.returncode == 0, "static/vendor/ must be git-ignored (fetched at build time, never committed)"


def test_a_built_package_carries_templates_script_style_and_vendor(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "setup.py", "-q", "build_py", "-d", str(tmp_path)], cwd=ROOT, check=True,
                   capture_output=True, timeout=180)
    built = tmp_path / "inferwatch" / "api" / "console"
    for rel in ["templates/base.html", "templates/incident.html", "static/console.js", "static/console.css",
                *(f"static/vendor/{f}" for f in VENDOR_FILES)]:
        assert (built / rel).is_file(), rel


def test_no_reference_outside_the_origin_and_no_html_from_data() -> None:
    js = (CONSOLE / "static" / "console.js").read_text()
    # every value from the server goes in with textContent: user strings never become markup
    assert not re.search(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write", js)
    for f in [*(CONSOLE / "templates").glob("*.html"), CONSOLE / "static" / "console.css", CONSOLE / "static" / "console.js"]:
        text = f.read_text()
        assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", text), f.name
        assert "@import" not in text and "| safe" not in text and "|safe" not in text, f.name
