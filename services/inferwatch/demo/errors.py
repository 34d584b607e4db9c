"""Errors of the demo and of the service supervisor."""

from __future__ import annotations

from pathlib import Path


class DemoError(RuntimeError):
    """The demo could not go on; the message says why and where the logs are."""


class ServiceFailed(DemoError):
    """A service process exited while it should be running."""

    def __init__(self, name: str, code: int, log_path: Path, tail: str) -> None:
        super().__init__(f"service {name} exited with code {code}; log {log_path}:\n{tail}")
        self.name = name
        self.code = code
        self.log_path = log_path
