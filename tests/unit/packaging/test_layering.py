"""The layout's rules that code review alone would let slip: product packages never import the demo
or the test-traffic generators, the contract imports no hop, and a module's name says what it holds."""

from __future__ import annotations

import re
from collections import defaultdict
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


#: File names that several packages may each have one of, because the name says the module's role
#: in its package, and a reader who knows one knows where to look in the others: the package marker
#: (``__init__``), its exceptions (``errors``: every package keeps its own), the operator's knobs
#: (``settings``: the one word for settings classes; ``config``: a configuration *file* format, the
#: platform's shared settings at the top and the OTLP mapping YAML), the service's entry points
#: (``app``: the framework application object; ``runner``: what composes and runs the service;
#: ``http``: its HTTP routes), its ``health`` report and its ``topics``. Any other name says what
#: the module holds, and two modules that hold different things get different names
#: (``metrics.py`` was once both an API route and the window metrics computation).
ROLES = frozenset({"__init__", "errors", "settings", "config", "app", "runner", "http", "health", "topics"})


def test_no_two_modules_share_a_name_unless_the_name_is_a_role() -> None:
    by_name: dict[str, list[str]] = defaultdict(list)
    for f in PKG.rglob("*.py"):
        by_name[f.stem].append(str(f.relative_to(PKG)))
    shared = {name: sorted(paths) for name, paths in by_name.items() if len(paths) > 1 and name not in ROLES}
    assert not shared, f"modules with one name and different jobs (name each for what it holds): {shared}"
