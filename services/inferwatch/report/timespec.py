"""``--from``/``--to`` of ``inferwatch report``: ISO 8601 times, ``now``, or durations before a point.

* ``2026-12-01T06:00:00Z``, ``2026-12-01 06:00``, ``2026-12-01`` (a time without a zone is UTC);
* ``now``;
* a duration ``24h``, ``90m``, ``7d``, ``1h30m``, ``2w`` (units s, m, h, d, w): for ``--to`` it is that
  long before now, for ``--from`` that long before ``--to``.

Defaults: ``--to`` now, ``--from`` 24 hours before ``--to``.
"""

from __future__ import annotations

import datetime as dt
import re

_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^-?((?:\d+(?:\.\d+)?[smhdw])+)$")
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
MAX_SPAN_S = 366 * 86400
"""The longest range a report covers (one year): a typo like ``240000h`` fails clearly."""
HELP = "an ISO 8601 time (2026-12-01T06:00Z, 2026-12-01), 'now', or a duration (24h, 90m, 7d, 1h30m)"


class TimeSpecError(ValueError):
    """A ``--from``/``--to`` value that cannot be read, or a range that is empty."""


def parse_duration(text: str) -> dt.timedelta | None:
    """``1h30m`` as a timedelta; None when ``text`` is not a duration."""
    m = _DURATION.match(text.strip().lower())
    if not m:
        return None
    return dt.timedelta(seconds=sum(float(n) * _UNIT_S[u] for n, u in _PART.findall(m.group(1))))


def parse_time(text: str, *, anchor: dt.datetime, option: str) -> dt.datetime:
    """One ``--from``/``--to`` value as an aware UTC datetime; durations count back from ``anchor``."""
    raw = (text or "").strip()
    if not raw:
        raise TimeSpecError(f"{option}: empty; give {HELP}")
    if raw.lower() == "now":
        return dt.datetime.now(dt.UTC)
    d = parse_duration(raw)
    if d is not None:
        if d.total_seconds() > MAX_SPAN_S:
            raise TimeSpecError(f"{option}: {raw!r} is longer than a year")
        return anchor - d
    try:
        t = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise TimeSpecError(f"{option}: cannot read {raw!r}; give {HELP}") from None
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def resolve_range(from_: str | None, to: str | None, now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """The report's ``[start, end)`` from the options (defaults: the 24 hours before now)."""
    now = now or dt.datetime.now(dt.UTC)
    end = parse_time(to, anchor=now, option="--to") if to else now
    start = parse_time(from_, anchor=end, option="--from") if from_ else end - dt.timedelta(hours=24)
    if start >= end:
        raise TimeSpecError(f"--from ({start.isoformat()}) must be before --to ({end.isoformat()})")
    if (end - start).total_seconds() > MAX_SPAN_S:
        raise TimeSpecError("the range is longer than a year; narrow --from/--to")
    return start, end
