"""Durations as written in rule and routing files: ``90s``, ``5m``, ``1h30m``, ``2d``, or a number of seconds."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration_s(text: str | int | float) -> float:
    """Seconds in a duration such as ``"1h30m"``; plain numbers are seconds. Raises ``ValueError``."""
    if isinstance(text, bool):
        raise ValueError(f"not a duration: {text!r}")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"negative duration: {text!r}")
        return float(text)
    s = text.strip()
    if not s:
        raise ValueError("empty duration")
    try:
        v = float(s)
    except ValueError:
        pass
    else:
        if v < 0:
            raise ValueError(f"negative duration: {text!r}")
        return v
    pos, total = 0, 0.0
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s):
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 5m, 1h30m)")
    return total


def format_duration(seconds: float) -> str:
    """A short human form: ``90`` → ``1m30s``."""
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    out, rest = "", int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out or "0s"
