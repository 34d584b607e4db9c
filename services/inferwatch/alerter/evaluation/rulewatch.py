"""Hot reload of rule files and of the routing configuration: poll modification times; a bad
reload keeps the old rules (or configuration) and reports why.

What a configuration reload changes: receivers (URL, format, secret, signing, headers, timeouts),
the routing tree and inhibition rules. A receiver dropped from the file stays known until a
restart, so groups already routed to it still deliver; ``http``, ``delivery``,
``resolved_retention_s`` and ``start_from`` take a restart. A configuration that would not start
the alerter (a receiver's ``secret_env`` unset or empty, a bad matcher, an unknown receiver) is
rejected on reload the same way, and the running configuration stays.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from inferwatch.alerter.errors import ConfigError
from inferwatch.alerter.evaluation.rules import Rule, RuleErrors, load_rules, rule_files

if TYPE_CHECKING:
    from inferwatch.alerter.route.dispatch import Dispatcher
    from inferwatch.alerter.route.routing import AlerterConfig

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


def _file_stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


@dataclass
class ConfigWatcher:
    """Holds the alerter's current configuration of ``path`` and reloads it when the file changes."""

    path: Path
    config: AlerterConfig
    poll_interval_s: float = 1.0
    last_error: str | None = None
    reloads: int = 0
    _stamp: tuple[int, int] | None = None
    _next_poll: float = 0.0

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self._stamp = _file_stamp(self.path)

    def poll(self, now: float | None = None) -> AlerterConfig | None:
        """The new configuration if the file changed and is valid, else ``None``.

        A failing reload keeps the previous configuration, logs the error (which names the
        receiver and the variable for a missing secret) and keeps it in ``last_error``.
        """
        from inferwatch.alerter.route.routing import load_config

        now = time.monotonic() if now is None else now
        if now < self._next_poll:
            return None
        self._next_poll = now + self.poll_interval_s
        stamp = _file_stamp(self.path)
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        try:
            new = load_config(self.path)
        except ConfigError as exc:
            self.last_error = str(exc)
            log.error("configuration reload rejected, keeping the running configuration: %s", exc)
            return None
        self.config = new
        self.last_error = None
        self.reloads += 1
        log.info("reloaded the configuration from %s (%d receivers)", self.path, len(new.receivers))
        return new


def apply_config(dispatcher: Dispatcher, new: AlerterConfig) -> None:
    """Put a reloaded configuration's receivers, routing tree and inhibition rules in force.

    The receivers dict is updated in place: the dispatcher and the delivery manager share it, and
    receivers no longer in the file stay so that groups routed to them before still deliver.
    """
    from inferwatch.alerter.route.inhibit import InhibitRule
    from inferwatch.alerter.route.routing import compile_route

    route = compile_route(new.route)
    inhibit = [InhibitRule.from_config(c) for c in new.inhibit_rules]
    dispatcher.receivers.update({r.name: r for r in new.receivers})
    dispatcher.route = route
    dispatcher.inhibit_rules = inhibit
