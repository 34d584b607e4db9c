"""The HTTP API (FastAPI): ``create_app`` composes the routers; ``/v1/query`` runs read-only SQL."""

from __future__ import annotations

from inferwatch.api.app import create_app

__all__ = ["create_app"]
