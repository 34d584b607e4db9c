"""The read-only guard: which statements a user may run through ``inferwatch sql`` and ``/v1/query``."""

from __future__ import annotations

import re

from inferwatch.store.errors import ReadOnlyViolation

READ_KEYWORDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"})

# Comments and leading parentheses are skipped so that "(SELECT ...)" and "-- note\nSELECT" are allowed.
_LEADING = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*", re.DOTALL)
_WORD = re.compile(r"[A-Za-z]+")


def first_keyword(sql: str) -> str:
    """The first SQL keyword of ``sql``, upper-cased ('' when there is none)."""
    rest = _LEADING.sub("", sql, count=1)
    m = _WORD.match(rest)
    return m.group(0).upper() if m else ""


def check_read_only(sql: str) -> None:
    """Raise :class:`ReadOnlyViolation` unless ``sql`` is a single read statement."""
    kw = first_keyword(sql)
    if kw not in READ_KEYWORDS:
        raise ReadOnlyViolation(
            f"read-only: {kw or 'this'} statements are refused; only "
            + "/".join(sorted(READ_KEYWORDS - {"DESC"}))
            + " may run here (writes belong to the sink and `inferwatch migrate`)"
        )
    body = sql.strip().rstrip(";")
    if ";" in _strip_literals(body):
        raise ReadOnlyViolation("read-only: one statement at a time (found ';' between statements)")


def _strip_literals(sql: str) -> str:
    """``sql`` without quoted strings and comments, so a ';' inside them does not count."""
    sql = re.sub(r"'(?:[^'\\]|\\.|'')*'", "''", sql)
    sql = re.sub(r"--[^\n]*", "", sql)
    return re.sub(r"/\*.*?\*/", "", sql, flags=re.DOTALL)
