"""The wall clock, in the unit every event and state record uses (milliseconds since the epoch)."""

from __future__ import annotations

import time


def now_ms() -> int:
    """Wall-clock milliseconds since the epoch."""
    return int(time.time() * 1000)
