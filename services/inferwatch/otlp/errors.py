"""Errors of the OTLP receiver."""

from __future__ import annotations


class OtlpError(Exception):
    """Base of the receiver's errors."""


class BadRequest(OtlpError):
    """A request the receiver refuses as a whole: ``status`` is the HTTP answer (400, 413, 415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Unmappable(OtlpError):
    """A model-call span that cannot become a ``prediction.v1`` event (it goes to the dead letters)."""

    def __init__(self, reason: str, path: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = path


class ConfigError(OtlpError, ValueError):
    """A mapping configuration that cannot be used (named field, clear message)."""
