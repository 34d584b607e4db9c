"""The project is self-contained: no tracked file refers to a design document outside the repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
FORBIDDEN = ("DESIGN.md", "../shared/", "shared/DESIGN")


def test_no_file_refers_to_documents_outside_the_repository() -> None:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    me = Path(__file__).resolve().relative_to(ROOT).as_posix()
    offenders = []
    for name in files:
        if name == me:
            continue
        try:
            text = (ROOT / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        offenders += [f"{name}: {word}" for word in FORBIDDEN if word in text]
    assert not offenders, offenders
