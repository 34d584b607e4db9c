"""Query a running sink's (or API's) ``POST /v1/query`` over HTTP — how the CLI reads an embedded
store that another process owns. Wire format: JSON, see :mod:`inferwatch.api.query`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from inferwatch.store.base import QueryResult
from inferwatch.store.errors import ReadOnlyViolation, StoreError, StoreUnavailableError


def api_answers(base_url: str, timeout_s: float = 0.5) -> bool:
    """Whether an Inferwatch API with a store answers at ``base_url``."""
    try:
        r = httpx.get(f"{base_url}/healthz", timeout=timeout_s)
    except httpx.HTTPError:
        return False
    return r.status_code in (200, 503) and "checks" in r.json()


def query_http(
    base_url: str,
    sql: str,
    params: Mapping[str, Any] | None = None,
    *,
    max_rows: int,
    timeout_s: float,
    token: str | None = None,
) -> QueryResult:
    """Run ``sql`` through ``POST {base_url}/v1/query``."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"sql": sql, "params": dict(params or {}), "max_rows": max_rows, "timeout_s": timeout_s}
    try:
        r = httpx.post(f"{base_url}/v1/query", json=body, headers=headers, timeout=timeout_s + 10)
    except httpx.HTTPError as exc:
        raise StoreUnavailableError(f"the API at {base_url} did not answer: {exc}") from None
    if r.status_code != 200:
        try:
            detail = r.json().get("detail", r.text)
        except ValueError:
            detail = r.text
        if r.status_code == 400:
            raise ReadOnlyViolation(str(detail))
        if r.status_code == 503:
            raise StoreUnavailableError(str(detail))
        raise StoreError(f"HTTP {r.status_code}: {detail}")
    d = r.json()
    return QueryResult(d["columns"], [tuple(x) for x in d["rows"]], d["truncated"], d["elapsed_s"], d["types"])
