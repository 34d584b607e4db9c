"""HTTP API of the alerter (a FastAPI ``APIRouter``), served by the alerter and mountable in the main API.

- ``GET /v1/alerts?state=firing&model=...`` → ``{"alerts": [...]}`` (each with ``silenced_by``)
- ``GET /v1/silences?include_expired=false`` → ``{"silences": [...]}``
- ``POST /v1/silences`` ``{"matchers": ["model=\\"m\\""], "ends_at": ms | "duration": "2h",
  "created_by", "comment", "starts_at"?}`` → the silence (201)
- ``DELETE /v1/silences/{id}`` → the expired silence

The state is the alerter's SQLite database; the running alerter sees new silences within a tick.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from inferwatch.alerter.durations import parse_duration_s
from inferwatch.alerter.errors import MatcherError, SilenceNotFound
from inferwatch.alerter.silences import new_silence, now_ms
from inferwatch.alerter.state import AlertStore, state_path


class SilenceIn(BaseModel):
    """Body of ``POST /v1/silences``."""

    matchers: list[Any] | dict[str, str] = Field(description='e.g. ["model=\\"m\\"", "severity=~\\"warn.*\\""]')
    ends_at: int | None = Field(None, description="ms since epoch")
    duration: str | None = Field(None, description="instead of ends_at: e.g. 2h")
    starts_at: int | None = None
    created_by: str
    comment: str = ""


def alerts_view(store: AlertStore, states: Sequence[str] = ("pending", "firing")) -> list[dict[str, Any]]:
    """Stored alerts as JSON-ready dicts with the ids of the silences muting them."""
    now = now_ms()
    silences = store.silences()
    out = []
    for rec in store.list_alerts(states):
        d = asdict(rec)
        d["silenced_by"] = [s.id for s in silences if s.mutes(rec.labels, now)]
        out.append(d)
    return out


def make_router(
    store: AlertStore,
    on_silence_change: Callable[[], None] | None = None,
    dependencies: Sequence[Any] | None = None,
) -> APIRouter:
    """The router over ``store``; ``on_silence_change`` lets a running alerter refresh its cache."""
    router = APIRouter(prefix="/v1", tags=["alerts"], dependencies=list(dependencies or []))

    def changed() -> None:
        if on_silence_change is not None:
            on_silence_change()

    @router.get("/alerts")
    def list_alerts(
        state: list[str] = Query(default=["pending", "firing"]),  # noqa: B008
        model: str | None = None,
        severity: str | None = None,
    ) -> dict[str, Any]:
        alerts = alerts_view(store, state)
        if model:
            alerts = [a for a in alerts if a["model"] == model]
        if severity:
            alerts = [a for a in alerts if a["severity"] == severity]
        return {"alerts": alerts}

    @router.get("/silences")
    def list_silences(include_expired: bool = False) -> dict[str, Any]:
        return {"silences": [s.as_dict() for s in store.silences(include_expired=include_expired)]}

    @router.post("/silences", status_code=201)
    def add_silence(body: SilenceIn) -> dict[str, Any]:
        try:
            start = body.starts_at if body.starts_at is not None else now_ms()
            if body.ends_at is not None:
                end = body.ends_at
            elif body.duration is not None:
                end = start + int(parse_duration_s(body.duration) * 1000)
            else:
                raise MatcherError("give ends_at or duration")
            s = new_silence(body.matchers, end, body.created_by, body.comment, body.starts_at)
        except (MatcherError, ValueError) as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        store.add_silence(s)
        changed()
        return s.as_dict()

    @router.delete("/silences/{silence_id}")
    def expire_silence(silence_id: str) -> dict[str, Any]:
        try:
            s = store.expire_silence(silence_id)
        except SilenceNotFound:
            raise HTTPException(status_code=404, detail=f"no silence {silence_id}") from None
        changed()
        return s.as_dict()

    return router


def router_for_data_dir(data_dir: Any, dependencies: Sequence[Any] | None = None) -> APIRouter:
    """The router over a deployment's alerter state (what the main API mounts)."""
    return make_router(AlertStore(state_path(data_dir)), dependencies=dependencies)
