"""Silences: matchers plus a time range; a matching alert is not notified while the silence is active.

Times are wall-clock milliseconds (a silence is a person's decision in real time).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from inferwatch.alerter.errors import MatcherError
from inferwatch.alerter.route.matchers import Matcher, all_match, parse_matchers
from inferwatch.clock import now_ms


@dataclass(frozen=True)
class Silence:
    """One silence."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at_ms: int
    ends_at_ms: int
    created_by: str
    comment: str
    created_at_ms: int

    def status(self, now: int | None = None) -> Literal["pending", "active", "expired"]:
        """Alertmanager's silence states."""
        now = now_ms() if now is None else now
        if now >= self.ends_at_ms:
            return "expired"
        return "active" if now >= self.starts_at_ms else "pending"

    def mutes(self, labels: Mapping[str, str], now: int | None = None) -> bool:
        """Whether this silence mutes an alert with ``labels`` at ``now``."""
        return self.status(now) == "active" and all_match(self.matchers, labels)

    def as_dict(self, now: int | None = None) -> dict[str, Any]:
        """JSON form (used by the HTTP API and the CLI)."""
        return {
            "id": self.id, "matchers": [m.as_dict() for m in self.matchers],
            "matchers_text": [str(m) for m in self.matchers],
            "starts_at": self.starts_at_ms, "ends_at": self.ends_at_ms, "created_by": self.created_by,
            "comment": self.comment, "created_at": self.created_at_ms, "status": self.status(now),
        }


def new_silence(
    matchers: Iterable[Any] | Mapping[str, str],
    ends_at_ms: int,
    created_by: str,
    comment: str = "",
    starts_at_ms: int | None = None,
) -> Silence:
    """Validate and build a silence; at least one matcher, and it must end after it starts."""
    ms = parse_matchers(matchers)
    if not ms:
        raise MatcherError("a silence needs at least one matcher")
    if all(m.op in ("=~", "!~") and m.matches({}) for m in ms) and all(m.op != "=" for m in ms):
        # Alertmanager refuses silences that match everything; so do we.
        raise MatcherError("a silence must not match every alert")
    now = now_ms()
    start = now if starts_at_ms is None else starts_at_ms
    if ends_at_ms <= start:
        raise MatcherError("a silence must end after it starts")
    if not created_by.strip():
        raise MatcherError("created_by is required")
    return Silence(uuid.uuid4().hex, ms, start, ends_at_ms, created_by, comment, now)


def is_silenced(silences: Iterable[Silence], labels: Mapping[str, str], now: int | None = None) -> bool:
    """Whether any silence mutes ``labels``."""
    return any(s.mutes(labels, now) for s in silences)
