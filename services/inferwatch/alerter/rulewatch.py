"""Hot reload of rule files: poll modification times; a bad reload keeps the old rules and reports."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from inferwatch.alerter.rules import Rule, RuleErrors, load_rules, rule_files

log = logging.getLogger(__name__)


@dataclass
class RuleWatcher:
    """Holds the current rules of ``path`` and reloads them when a file changes (see :meth:`poll`)."""

    path: Path
    poll_interval_s: float = 1.0
    rules: list[Rule] = field(default_factory=list)
    last_error: str | None = None
    reloads: int = 0
    _stamp: tuple[tuple[str, int, int], ...] = ()
    _next_poll: float = 0.0

    def _current_stamp(self) -> tuple[tuple[str, int, int], ...]:
        out = []
        for f in rule_files(self.path) if self.path.exists() else []:
            try:
                st = f.stat()
                out.append((str(f), st.st_mtime_ns, st.st_size))
            except OSError:
                continue
        return tuple(out)

    def load(self) -> list[Rule]:
        """Load now; raises :class:`RuleErrors` (used at start-up, where bad rules must stop the start)."""
        self._stamp = self._current_stamp()
        self.rules = load_rules(self.path)
        self.last_error = None
        return self.rules

    def poll(self, now: float | None = None) -> bool:
        """Reload if a file changed since the last load. Returns whether the rules changed.

        A failing reload keeps the previous rules, logs the errors and keeps them in ``last_error``.
        """
        now = time.monotonic() if now is None else now
        if now < self._next_poll:
            return False
        self._next_poll = now + self.poll_interval_s
        stamp = self._current_stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            new = load_rules(self.path)
        except RuleErrors as exc:
            self.last_error = str(exc)
            log.error("rule reload failed, keeping %d previous rules: %s", len(self.rules), exc)
            return False
        self.rules = new
        self.last_error = None
        self.reloads += 1
        log.info("reloaded %d rules from %s", len(new), self.path)
        return True
