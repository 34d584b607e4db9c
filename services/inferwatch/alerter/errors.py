"""Errors of the alerter."""

from __future__ import annotations


class AlerterError(Exception):
    """Base of every alerter error."""


class ExpressionError(AlerterError, ValueError):
    """A rule condition does not parse or cannot be evaluated."""


class RuleError(AlerterError, ValueError):
    """A rule file is invalid. The message names the file, the rule and the field."""

    def __init__(self, file: str, rule: str | None, field: str | None, message: str) -> None:
        self.file = file
        self.rule = rule
        self.field = field
        self.message = message
        where = file + (f": rule {rule!r}" if rule else "") + (f": field {field}" if field else "")
        super().__init__(f"{where}: {message}")


class ConfigError(AlerterError, ValueError):
    """The routing/receiver configuration is invalid."""


class MatcherError(AlerterError, ValueError):
    """A label matcher does not parse (``name="v"``, ``!=``, ``=~``, ``!~``)."""


class SilenceNotFound(AlerterError, KeyError):
    """No silence with that id."""
