"""``inferwatch report``: one self-contained HTML page of a model's history over a time range.

>>> from inferwatch.report import build_report, resolve_range
>>> start, end = resolve_range("24h", None)
>>> html = build_report(lambda sql, p: store.query(sql, p), "photo-verifier", None, start, end)
"""

from __future__ import annotations

from inferwatch.report.build import QUERIES, build_report, fetch, render
from inferwatch.report.timespec import TimeSpecError, resolve_range

__all__ = ["QUERIES", "TimeSpecError", "build_report", "fetch", "render", "resolve_range"]
