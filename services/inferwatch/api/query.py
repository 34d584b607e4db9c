"""``POST /v1/query``: read-only SQL over the history store, bounded in rows and time.

Wire format: request ``{"sql": str, "params": {name: value}, "max_rows": int, "timeout_s": float}``;
response ``{"columns": [..], "types": [..], "rows": [[..]], "truncated": bool, "elapsed_s": float}``.
Maps come back as JSON objects, timestamps as ISO-8601 strings. Errors: 400 for a statement the
query guard refuses (:mod:`inferwatch.store.sqlguard`: the message names the statement kind, table,
table function, function, clause or setting), 422 for SQL the engine cannot parse or run (limits
included), 503 when the store is unavailable. ``max_rows`` and ``timeout_s`` become engine-side
limits of the query (:func:`inferwatch.store.sqlguard.engine_limits`).
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, Field

from inferwatch.store.base import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT_S, Store
from inferwatch.store.errors import ReadOnlyViolation, StoreError, StoreUnavailableError
from inferwatch.store.sqlguard import MAX_ROWS_CAP, MAX_TIMEOUT_S


class QueryRequest(BaseModel):
    """One read-only SQL statement with ClickHouse ``{name:Type}`` parameters."""

    sql: str = Field(min_length=1, max_length=100_000)
    params: dict[str, Any] = Field(default_factory=dict)
    max_rows: int = Field(DEFAULT_MAX_ROWS, ge=1, le=MAX_ROWS_CAP)
    timeout_s: float = Field(DEFAULT_TIMEOUT_S, gt=0, le=MAX_TIMEOUT_S)


def _default(o: Any) -> Any:
    if isinstance(o, dt.datetime | dt.date):
        return o.isoformat()
    if isinstance(o, decimal.Decimal | uuid.UUID):
        return str(o)
    if isinstance(o, bytes):
        return o.decode("utf-8", "replace")
    raise TypeError(type(o).__name__)


def jsonable_rows(columns: list[str], types: list[str], rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows with Arrow maps (lists of pairs) turned into dicts, ready for JSON."""
    maps = [i for i, t in enumerate(types) if t.startswith("map<")]
    if not maps:
        return [list(r) for r in rows]
    out = []
    for r in rows:
        lr = list(r)
        for i in maps:
            if lr[i] is not None:
                lr[i] = dict(lr[i])
        out.append(lr)
    return out


def query_router(get_store: Callable[[], Store]) -> APIRouter:
    """A router serving ``POST /v1/query`` on the store returned by ``get_store``."""
    router = APIRouter(tags=["query"])

    @router.post("/v1/query")
    def run_query(req: QueryRequest) -> Response:
        """Run one read-only statement and return its rows."""
        store = get_store()
        try:
            res = store.query(req.sql, req.params or None, readonly=True, max_rows=req.max_rows,
                              timeout_s=req.timeout_s)
        except ReadOnlyViolation as exc:
            raise HTTPException(400, str(exc)) from None
        except StoreUnavailableError as exc:
            raise HTTPException(503, str(exc)) from None
        except StoreError as exc:
            raise HTTPException(422, str(exc)) from None
        body = {
            "columns": res.columns,
            "types": res.types,
            "rows": jsonable_rows(res.columns, res.types, res.rows),
            "truncated": res.truncated,
            "elapsed_s": res.elapsed_s,
            "store": store.kind,
        }
        return Response(orjson.dumps(body, default=_default, option=orjson.OPT_SERIALIZE_NUMPY),
                        media_type="application/json")

    return router
