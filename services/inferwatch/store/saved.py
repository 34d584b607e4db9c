"""Saved investigation queries: ``schemas/clickhouse/queries/<name>.sql`` with named parameters.

A query declares its parameters in header comments, ``-- @param <name> <Type> [= default]  text``,
and uses them as ClickHouse ``{name:Type}`` placeholders. A parameter without ``=`` is required;
a default in quotes may be empty (``= ''``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from inferwatch.paths import schemas_dir
from inferwatch.store.errors import StoreError

_PARAM = re.compile(r"^--\s*@param\s+(\w+)\s+(\w+)(?:\s*=\s*('[^']*'|\S+))?\s*(.*)$")


class SavedQueryError(StoreError):
    """An unknown saved query, or a missing/unknown parameter."""


@dataclass(frozen=True)
class Param:
    """One declared parameter."""

    name: str
    type: str
    default: str | None
    help: str


@dataclass(frozen=True)
class SavedQuery:
    """A saved query file."""

    name: str
    description: str
    params: tuple[Param, ...]
    sql: str

    def bind(self, given: dict[str, str]) -> dict[str, str]:
        """The parameter values: ``given`` over the defaults; raises on unknown or missing ones."""
        known = {p.name for p in self.params}
        unknown = set(given) - known
        if unknown:
            raise SavedQueryError(f"{self.name}: unknown parameter(s) {sorted(unknown)}; known: {sorted(known)}")
        out: dict[str, str] = {}
        for p in self.params:
            if p.name in given:
                out[p.name] = given[p.name]
            elif p.default is not None:
                out[p.name] = p.default
            else:
                raise SavedQueryError(f"{self.name}: missing required parameter {p.name} ({p.type}): --param {p.name}=...")
        return out


def queries_dir() -> Path:
    """``schemas/clickhouse/queries``."""
    return schemas_dir() / "clickhouse" / "queries"


def parse(name: str, text: str) -> SavedQuery:
    """A :class:`SavedQuery` from the file's text."""
    desc: list[str] = []
    params: list[Param] = []
    for line in text.splitlines():
        s = line.strip()
        if not s.startswith("--"):
            break
        m = _PARAM.match(s)
        if m:
            default = m.group(3)
            if default is not None and default.startswith("'"):
                default = default[1:-1]
            params.append(Param(m.group(1), m.group(2), default, m.group(4).strip()))
        else:
            desc.append(s.lstrip("- ").strip())
    return SavedQuery(name, " ".join(d for d in desc if d), tuple(params), text.strip().rstrip(";"))


def load(name: str, directory: Path | None = None) -> SavedQuery:
    """The saved query ``name``."""
    directory = directory or queries_dir()
    path = directory / f"{name}.sql"
    if not re.fullmatch(r"[a-z0-9_]+", name) or not path.is_file():
        raise SavedQueryError(f"no saved query {name!r}; known: {', '.join(q.name for q in list_saved(directory))}")
    return parse(name, path.read_text())


def list_saved(directory: Path | None = None) -> list[SavedQuery]:
    """Every saved query, by name."""
    directory = directory or queries_dir()
    return [parse(p.stem, p.read_text()) for p in sorted(directory.glob("*.sql"))]
