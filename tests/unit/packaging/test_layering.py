"""The layout's rules that code review alone would let slip: product packages never import the demo
or the test-traffic generators, and the contract imports no hop."""

from __future__ import annotations

import re
from pathlib import Path

PKG = Path(__file__).resolve().parents[3] / "services" / "inferwatch"
IMPORT = re.compile(r"^\s*(?:from|import)\s+(inferwatch(?:\.\w+)*)", re.MULTILINE)


def _imports(folder: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in (PKG / folder).rglob("*.py"):
        out[str(f.relative_to(PKG))] = set(IMPORT.findall(f.read_text()))
    return out


def test_services_import_neither_the_demo_nor_the_test_traffic() -> None:
    for folder in ("sdk", "processor", "sink", "alerter", "store", "api", "otlp", "kafka", "contract", "native"):
        for name, mods in _imports(folder).items():
            bad = {m for m in mods if m.startswith(("inferwatch.demo", "inferwatch.testing"))}
            if folder == "native" and bad <= {"inferwatch.testing.scenarios"}:
                continue  # native/prediction_columns.py's micro-benchmark (``python -m``) reads test traffic
            assert not bad, (name, bad)


def test_the_contract_imports_no_hop() -> None:
    for name, mods in _imports("contract").items():
        assert all(m.startswith(("inferwatch.contract", "inferwatch.paths")) or m == "inferwatch" for m in mods), (
            name, mods)
