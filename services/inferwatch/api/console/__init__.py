"""The web console: pages under ``/console/``, their JSON under ``/v1/console/`` (see ``routes``)."""

from __future__ import annotations

from inferwatch.api.console.routes import console_router, vendor_missing

__all__ = ["console_router", "vendor_missing"]
