"""Errors of the demo (a service that dies is :class:`inferwatch.supervisor.ServiceFailed`)."""

from __future__ import annotations


class DemoError(RuntimeError):
    """The demo could not go on; the message says why and where the logs are."""
