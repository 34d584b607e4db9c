"""Label matchers as in Alertmanager: ``name="value"``, ``name!="value"``, ``name=~"re"``, ``name!~"re"``.

Regular expressions are fully anchored (``=~"crit.*"`` matches ``critical``, not ``subcritical``),
like Alertmanager's. A missing label matches as the empty string.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from inferwatch.alerter.errors import MatcherError

Op = Literal["=", "!=", "=~", "!~"]
_SYNTAX = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|\'([^\']*)\'|(\S*))\s*$')


@dataclass(frozen=True)
class Matcher:
    """One label matcher."""

    name: str
    op: Op
    value: str
    _re: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @staticmethod
    def make(name: str, op: str, value: str) -> Matcher:
        """Build and check a matcher (compiles regexes once)."""
        if op not in ("=", "!=", "=~", "!~"):
            raise MatcherError(f"unknown matcher operator {op!r}")
        rx = None
        if op in ("=~", "!~"):
            try:
                rx = re.compile(f"^(?:{value})$")
            except re.error as exc:
                raise MatcherError(f"bad regex in {name}{op}{value!r}: {exc}") from None
        return Matcher(name, op, value, rx)  # type: ignore[arg-type]

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfies this matcher."""
        v = labels.get(self.name, "")
        if self.op == "=":
            return v == self.value
        if self.op == "!=":
            return v != self.value
        assert self._re is not None
        hit = self._re.match(v) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'

    def as_dict(self) -> dict[str, str]:
        """JSON form: ``{"name", "op", "value"}``."""
        return {"name": self.name, "op": self.op, "value": self.value}


def parse_matcher(text: str) -> Matcher:
    """Parse ``name="value"`` (quotes optional for simple values)."""
    m = _SYNTAX.match(text)
    if not m:
        raise MatcherError(f'bad matcher {text!r}; use name="value", !=, =~ or !~')
    value = m.group(3)
    if value is not None:
        value = re.sub(r"\\(.)", r"\1", value)
    else:
        value = m.group(4) if m.group(4) is not None else (m.group(5) or "")
    return Matcher.make(m.group(1), m.group(2), value)


def parse_matchers(items: Iterable[Any] | Mapping[str, str] | None) -> tuple[Matcher, ...]:
    """Matchers from a list of strings / ``{name, op, value}`` dicts, or a ``{name: value}`` map (equality)."""
    if items is None:
        return ()
    if isinstance(items, Mapping):
        return tuple(Matcher.make(str(k), "=", str(v)) for k, v in items.items())
    out: list[Matcher] = []
    for it in items:
        if isinstance(it, Matcher):
            out.append(it)
        elif isinstance(it, str):
            out.append(parse_matcher(it))
        elif isinstance(it, Mapping) and "name" in it:
            out.append(Matcher.make(str(it["name"]), str(it.get("op", "=")), str(it.get("value", ""))))
        else:
            raise MatcherError(f"bad matcher {it!r}")
    return tuple(out)


def all_match(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """Whether every matcher matches (an empty list matches everything)."""
    return all(m.matches(labels) for m in matchers)
