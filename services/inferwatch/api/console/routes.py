"""The console: HTML pages under ``/console/`` and their JSON under ``/v1/console/`` (one per page).

Pages are rendered on the server (Jinja2, autoescaped: model names, segment values and labels are
users' strings) with every number in a table, so a page reads without its script and every chart
has a text alternative; ``static/console.js`` (a plain ES module) draws the charts with uPlot from
the page's JSON, polls that JSON every few seconds and swaps in the new page when a window or an
alert changed, runs the SQL page and the Silence button. Nothing is loaded from another origin
(Content-Security-Policy ``default-src 'self'``); uPlot is fetched from the npm registry at build
time (``console/package.json``) and shipped in the package (``static/vendor/``).

Auth: the same door as the rest of the API (:mod:`inferwatch.api.door`); a browser logs in once at
``/console/login`` and then carries a session cookie with a CSRF token (:mod:`.auth`).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlencode

import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, Field

from inferwatch.api.console import auth
from inferwatch.api.console.page_data import (
    PSI_THRESHOLD,
    ConsoleData,
    NotFound,
    TimeRange,
    fmt_time_ms,
)
from inferwatch.api.query import _default, jsonable_rows
from inferwatch.bearer import token_matches
from inferwatch.contract import limits as L
from inferwatch.report.svg import OKABE_ITO, TEXT, fmt_num, shade
from inferwatch.store import saved as saved_queries
from inferwatch.store.errors import ReadOnlyViolation, StoreError, StoreUnavailableError

HERE = Path(__file__).parent
STATIC = HERE / "static"
VENDOR_FILES = ("uPlot.esm.js", "uPlot.min.css")
"""What ``make install`` copies from the uplot npm package into ``static/vendor/``."""

MAX_RANGE_S = 366 * 86400
DEFAULT_RANGE_S = 3600
MAX_SQL_ROWS = 5000
POLL_S = 5
_FINGERPRINT = rf"^[0-9A-Za-z_.:-]{{1,{L.FINGERPRINT_MAX}}}$"
_NEXT = re.compile(r"^/console(/[A-Za-z0-9_./%=&?~+-]*)?$")

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
"""Only our own files; ``style-src 'unsafe-inline'`` for the heat map's cell colours; no framing
(the Silence button must not be clickjacked)."""
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
           "Cache-Control": "no-store", "X-Frame-Options": "DENY"}

RangeS = Annotated[int, Query(ge=60, le=MAX_RANGE_S, description="seconds before end_ms")]
EndMs = Annotated[int | None, Query(ge=0, le=253_402_300_799_999, description="ms since epoch; default: the latest window")]
Name = Annotated[str, Query(max_length=L.NAME_MAX)]
Text = Annotated[str, Query(max_length=L.METRIC_NAME_MAX)]


def vendor_missing() -> list[str]:
    """The vendored files that are not in ``static/vendor/`` (run ``make install``)."""
    return [f for f in VENDOR_FILES if not (STATIC / "vendor" / f).is_file()]


class SqlIn(BaseModel):
    """Body of ``POST /v1/console/sql``: a saved query by name with its parameters, or SQL."""

    saved: str | None = Field(None, max_length=64, pattern=r"^[a-z0-9_]+$")
    sql: str | None = Field(None, min_length=1, max_length=100_000)
    params: dict[str, str | int | float] = Field(default_factory=dict, max_length=64)
    max_rows: int = Field(1000, ge=1, le=MAX_SQL_ROWS)


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = _num
    env.filters["pct"] = lambda v: "–" if v is None else f"{v:.2%}"
    env.filters["time"] = fmt_time_ms
    env.filters["shade"] = lambda v: shade(v, PSI_THRESHOLD)
    env.filters["q"] = lambda v: quote(str(v), safe="")
    env.globals.update(TEXT=TEXT, OKABE_ITO=OKABE_ITO, PSI=PSI_THRESHOLD)
    return env


def _num(v: Any) -> str:
    """A number for people (``–`` for missing); text (a category) as it is."""
    if v is None or isinstance(v, bool) or not isinstance(v, int | float):
        return "–" if v is None else str(v)
    return fmt_num(v)


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body, default=_default, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status,
                    media_type="application/json", headers={"Cache-Control": "no-store"})


def console_router(get_store: Any, alert_store: Any, token: str | None) -> APIRouter:
    """The console's pages and JSON over the store returned by ``get_store`` and the alerter's
    state ``alert_store`` (None: alerts from the history only); ``token`` as the door's."""
    router = APIRouter(tags=["console"])
    env = _env()

    def data() -> ConsoleData:
        return ConsoleData(get_store(), alert_store)

    def page(request: Request, name: str, **ctx: Any) -> HTMLResponse:
        session = auth.session_cookie({k.lower(): v for k, v in request.headers.items()})
        csrf = auth.csrf_token(token, session) if token and session else ""
        html = env.get_template(name).render(csrf=csrf, poll_s=POLL_S, vendor_missing=vendor_missing(),
                                             token_set=token is not None, **ctx)
        return HTMLResponse(html, headers=HEADERS)

    def guarded(fn: Any, *args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except StoreUnavailableError as exc:
            raise HTTPException(503, str(exc)) from None
        except StoreError as exc:
            raise HTTPException(422, str(exc)) from None

    # -- login ---------------------------------------------------------------------------------------

    @router.get("/console/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = "/console/", error: str = "") -> HTMLResponse:  # noqa: A002
        """The login form (open: the door lets it through)."""
        return page(request, "login.html", next=next if _NEXT.match(next) else "/console/", error=error[:200],
                    title="Log in")

    @router.post("/console/login")
    async def login(request: Request) -> Response:
        """Check the token of the form; on success set the session cookie and go to ``next``."""
        hdrs = {k.lower(): v for k, v in request.headers.items()}
        if not auth.same_origin(hdrs, request.url.scheme):
            return HTMLResponse("cross-origin login refused", status_code=403, headers=HEADERS)
        form = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=4)
        given = (form.get("token") or [""])[0]
        nxt = (form.get("next") or ["/console/"])[0]
        nxt = nxt if _NEXT.match(nxt) else "/console/"
        if token is not None and not token_matches(f"Bearer {given}", token):
            return RedirectResponse(f"/console/login?error=wrong+token&next={quote(nxt, safe='')}", status_code=303)
        resp = RedirectResponse(nxt, status_code=303)
        if token is not None:
            resp.headers["Set-Cookie"] = auth.set_cookie_header(auth.new_session(token),
                                                                secure=request.url.scheme == "https")
        return resp

    @router.get("/console/logout")
    def logout(request: Request) -> Response:
        """Forget the session cookie (open, like the login page)."""
        resp = RedirectResponse("/console/login", status_code=303)
        resp.headers["Set-Cookie"] = auth.set_cookie_header("", secure=request.url.scheme == "https", max_age_s=0)
        return resp

    @router.get("/console/static/{name:path}")
    def static(name: str) -> Response:
        """The console's script, style and the vendored chart library."""
        path = (STATIC / name).resolve()
        if not path.is_relative_to(STATIC.resolve()) or not path.is_file():
            raise HTTPException(404, "no such file")
        return FileResponse(path, headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})

    # -- pages -----------------------------------------------------------------------------------------

    @router.get("/console")
    def console_root() -> Response:
        return RedirectResponse("/console/", status_code=307)

    @router.get("/console/", response_class=HTMLResponse)
    def fleet_page(request: Request, range_s: RangeS = DEFAULT_RANGE_S, end_ms: EndMs = None) -> HTMLResponse:
        """Fleet: every model and version, the one in trouble on top, the firing incidents."""
        d = data()
        body = guarded(lambda: d.fleet(d.time_range(range_s, end_ms)))
        return page(request, "fleet.html", d=body, title="Fleet", json_url=_json_url(request, "/v1/console/fleet"),
                    ranges=_range_links(request, range_s))

    @router.get("/console/models/{model}", response_class=HTMLResponse)
    def model_page(request: Request, model: Annotated[str, PathParam(max_length=L.NAME_MAX)], version: Name = "",
                   metric: Text = "", segment_key: Name = "", heat_segment: Annotated[str, Query(max_length=400)] = "",
                   range_s: RangeS = DEFAULT_RANGE_S, end_ms: EndMs = None) -> HTMLResponse:
        """Model: a metric per window (whole, per segment value, reference band), drift heat map, signals."""
        d = data()
        body = guarded(lambda: d.model(d.time_range(range_s, end_ms), model, version, metric, segment_key,
                                       heat_segment))
        return page(request, "model.html", d=body, title=model, ranges=_range_links(request, range_s),
                    json_url=_json_url(request, f"/v1/console/models/{quote(model, safe='')}"))

    @router.get("/console/incidents/{fingerprint}", response_class=HTMLResponse)
    def incident_page(request: Request,
                      fingerprint: Annotated[str, PathParam(pattern=_FINGERPRINT)]) -> HTMLResponse:
        """Incident: what fired, the segment, what is behind it, notifications, Silence."""
        body = guarded(data().incident, fingerprint)
        saved = saved_queries.load("accuracy_by_segment")
        return page(request, "incident.html", d=body, title=f"Incident {body['rule']}", accuracy_sql=saved.sql,
                    json_url=_json_url(request, f"/v1/console/incidents/{fingerprint}"),
                    silence_matchers=orjson.dumps(body["labels"]).decode())

    @router.get("/console/sql", response_class=HTMLResponse)
    def sql_page(request: Request, saved: Annotated[str, Query(max_length=64)] = "") -> HTMLResponse:
        """SQL: the read-only query page with the saved queries."""
        queries = saved_queries.list_saved()
        params = {k: v for k, v in request.query_params.items() if k != "saved"}
        chosen = next((q for q in queries if q.name == saved), None)
        return page(request, "sql.html", queries=queries, chosen=chosen, params=params, title="SQL")

    # -- JSON --------------------------------------------------------------------------------------------

    @router.get("/v1/console/fleet")
    def fleet_json(range_s: RangeS = DEFAULT_RANGE_S, end_ms: EndMs = None) -> Response:
        """The fleet page's data: models with traffic, error rate, p95 latency, label coverage,
        firing alerts and a traffic sparkline, sorted with the one in trouble first; firing incidents."""
        d = data()
        return _json(guarded(lambda: d.fleet(d.time_range(range_s, end_ms))))

    @router.get("/v1/console/models/{model}")
    def model_json(model: Annotated[str, PathParam(max_length=L.NAME_MAX)], version: Name = "", metric: Text = "",
                   segment_key: Name = "", heat_segment: Annotated[str, Query(max_length=400)] = "",
                   range_s: RangeS = DEFAULT_RANGE_S, end_ms: EndMs = None) -> Response:
        """The model page's data: the metric's series (whole, segment values, reference band), the
        drift heat map (features x windows, PSI), embedding and LLM signals, the model's alerts."""
        d = data()
        return _json(guarded(lambda: d.model(d.time_range(range_s, end_ms), model, version, metric, segment_key,
                                             heat_segment)))

    @router.get("/v1/console/incidents/{fingerprint}")
    def incident_json(fingerprint: Annotated[str, PathParam(pattern=_FINGERPRINT)]) -> Response:
        """The incident page's data: the alert, its segment, ranked segments, drifted inputs with
        before/after histograms, the metric by segment, the notification log, silences."""
        return _json(guarded(data().incident, fingerprint))

    @router.get("/v1/console/sql")
    def saved_json() -> Response:
        """The saved investigation queries: name, description, parameters and SQL."""
        return _json({"saved": [{"name": q.name, "description": q.description, "sql": q.sql,
                                 "params": [{"name": p.name, "type": p.type, "default": p.default, "help": p.help}
                                            for p in q.params]} for q in saved_queries.list_saved()]})

    @router.post("/v1/console/sql")
    def run_sql(body: SqlIn) -> Response:
        """Run a saved query (by name, with its parameters) or one read-only statement."""
        params = {k: str(v) for k, v in body.params.items()}
        try:
            if body.saved:
                q = saved_queries.load(body.saved)
                sql, bound = (body.sql or q.sql), q.bind(params)
            elif body.sql:
                sql, bound = body.sql, params
            else:
                raise HTTPException(422, "give saved (a saved query's name) or sql")
            t0 = time.perf_counter()
            res = get_store().query(sql, bound or None, readonly=True, max_rows=body.max_rows, timeout_s=30.0)
        except saved_queries.SavedQueryError as exc:
            raise HTTPException(422, str(exc)) from None
        except ReadOnlyViolation as exc:
            raise HTTPException(400, str(exc)) from None
        except StoreUnavailableError as exc:
            raise HTTPException(503, str(exc)) from None
        except StoreError as exc:
            raise HTTPException(422, str(exc)) from None
        return _json({"columns": res.columns, "types": res.types, "rows": jsonable_rows(res.columns, res.types, res.rows),
                      "truncated": res.truncated, "elapsed_s": time.perf_counter() - t0, "sql": sql, "params": bound})

    return router


RANGES = (("15 min", 900), ("1 h", 3600), ("6 h", 6 * 3600), ("24 h", 86400), ("7 d", 7 * 86400))
"""The time ranges the fleet and model pages offer as links (any ``range_s`` works in the URL)."""


def _range_links(request: Request, current: int) -> list[tuple[str, str, bool]]:
    """``(label, url, is_current)`` per range of :data:`RANGES`, the page's other parameters kept."""
    others = [(k, v) for k, v in request.query_params.multi_items() if k not in ("range_s", "end_ms")]
    return [(label, f"{request.url.path}?{urlencode([*others, ('range_s', str(n))])}", n == current)
            for label, n in RANGES]


def _json_url(request: Request, path: str) -> str:
    q = request.url.query
    return f"{path}?{q}" if q else path


__all__ = ["CSP", "SqlIn", "TimeRange", "console_router", "vendor_missing"]
