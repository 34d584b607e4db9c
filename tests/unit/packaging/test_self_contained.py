"""The project is self-contained: no tracked file points into the folders beside the repository
(where the maintainers' own notes live, which users do not have); the project's docs are in docs/."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
#: A path that leaves the repository for the maintainers' sibling folder, or names a note kept there.
OUTSIDE = re.compile(r"\.\./shared\b|\bshared/[A-Z][A-Za-z_-]*\.md\b")


def test_no_file_points_outside_the_repository() -> None:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    offenders = []
    for name in files:
        try:
            text = (ROOT / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        offenders += [f"{name}: {m.group(0)}" for m in OUTSIDE.finditer(text)]
    assert not offenders, offenders


def test_markdown_links_stay_inside_the_repository() -> None:
    link = re.compile(r"\]\((?!https?:|#|mailto:)([^)\s]+)\)")
    for md in ROOT.rglob("*.md"):
        if any(part in {".venv", "node_modules", ".venv-evidently"} for part in md.parts):
            continue
        for target in link.findall(md.read_text(encoding="utf-8", errors="replace")):
            resolved = (md.parent / target.split("#", 1)[0]).resolve()
            assert resolved.is_relative_to(ROOT), f"{md.relative_to(ROOT)} links outside the repository: {target}"
