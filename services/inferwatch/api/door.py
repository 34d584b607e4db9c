"""The one door of every Inferwatch HTTP server: bearer token and request-body limits.

An ASGI middleware (:class:`Door`) wrapped around the main API and the alerter's own API, so a
route cannot be added without it: it sits in front of the router, not in each route's
dependencies. Per HTTP request, in this order:

1. a declared ``Content-Length`` over the route's limit is answered ``413``;
2. unless the path is open (``/healthz``), ``Authorization: Bearer <token>`` must carry the
   configured token, compared in constant time; otherwise ``401`` with ``WWW-Authenticate: Bearer``
   (nothing of the body is read for a caller without the token);
3. the body is read (buffered) up to the limit; one byte more (chunked bodies declare no length)
   is answered ``413`` without calling the app;
4. the app runs with ``request.state.authenticated`` telling open routes whether the caller
   showed the token (``/healthz`` only shows details to callers that did).

With ``console=True`` (the main API) a browser may show the console's session cookie instead of the
header (:mod:`inferwatch.api.console.auth`: reads need the cookie, anything else also its CSRF
header and our own ``Origin``); the console's login and logout pages and its static files (script,
style, chart library: no data) are open, and a console page
asked for without a session is redirected to the login page instead of answered ``401``.

With no token configured every caller counts as authenticated; servers refuse to listen on a
non-loopback address in that case (:func:`inferwatch.config.check_bind`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response

from inferwatch.bearer import token_matches

__all__ = ["BODY_LIMITS", "CONSOLE_OPEN_PATHS", "DEFAULT_MAX_BODY_BYTES", "OPEN_PATHS", "Door", "body_limit", "install_limit_errors",
           "is_authenticated", "secure_openapi", "token_matches"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Paths that answer without the token (liveness probes cannot carry secrets).
OPEN_PATHS: frozenset[str] = frozenset({"/healthz"})

#: The console's login and logout pages (open: the login form is how a browser shows the token).
CONSOLE_OPEN_PATHS: frozenset[str] = frozenset({"/console/login", "/console/logout"})
#: The console's script, style and chart library: the same for everyone, no data; open so the login
#: page is styled.
CONSOLE_STATIC = "/console/static/"

#: Body limit of every route without its own, in bytes (silences, and anything added later).
DEFAULT_MAX_BODY_BYTES = 64 * 1024

#: Body limits by path prefix, in bytes. ``/v1/query``: SQL (at most 100 000 characters, up to
#: 4 bytes each in UTF-8) plus parameters. ``/v1/traces``: an OTLP export batch as sent (compressed
#: or not); the receiver bounds it again once decompressed (``inferwatch.otlp.request_body``).
BODY_LIMITS: Mapping[str, int] = {"/v1/query": 512 * 1024, "/v1/traces": 8 * 1024 * 1024}


def body_limit(path: str, limits: Mapping[str, int] = BODY_LIMITS, default: int = DEFAULT_MAX_BODY_BYTES) -> int:
    """The body limit in bytes of a request to ``path``: the longest matching prefix wins."""
    best, best_len = default, -1
    for prefix, n in limits.items():
        if (path == prefix or path.startswith(prefix.rstrip("/") + "/")) and len(prefix) > best_len:
            best, best_len = n, len(prefix)
    return best


async def _answer(send: Send, status: int, detail: str, headers: Mapping[str, str] | None = None) -> None:
    body = orjson.dumps({"detail": detail})
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if status == 413:
        # the rest of the body is not read: the client must not reuse the connection
        raw.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, location: str) -> None:
    raw = [(b"location", location.encode("latin-1", "replace")), (b"content-length", b"0"),
           (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": 303, "headers": raw})
    await send({"type": "http.response.body", "body": b""})


class _TooLarge(Exception):
    pass


class Door:
    """ASGI middleware: body limits and the bearer token in front of ``app`` (see the module doc)."""

    def __init__(
        self,
        app: ASGIApp,
        token: str | None,
        open_paths: frozenset[str] = OPEN_PATHS,
        limits: Mapping[str, int] = BODY_LIMITS,
        default_limit: int = DEFAULT_MAX_BODY_BYTES,
        console: bool = False,
    ) -> None:
        self.app = app
        self.token = token
        self.console = console
        self.open_paths = open_paths | CONSOLE_OPEN_PATHS if console else open_paths
        self.limits = dict(limits)
        self.default_limit = default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            # no websocket routes exist; refuse rather than let a future one bypass the door
            await send({"type": "websocket.close", "code": 1008})
            return
        path: str = scope.get("path", "")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        limit = body_limit(path, self.limits, self.default_limit)
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await _answer(send, 400, "bad Content-Length")
                return
            if int(declared) > limit:
                await _answer(send, 413, f"request body over {limit} bytes")
                return
        authenticated = self.token is None or token_matches(headers.get("authorization"), self.token)
        why = ""
        if not authenticated and self.console and self.token is not None:
            from inferwatch.api.console.auth import cookie_authenticates

            authenticated, why = cookie_authenticates(headers, scope.get("method", "GET"), scope.get("scheme", "http"),
                                                      self.token)
        if not authenticated and path not in self.open_paths and not (self.console and path.startswith(CONSOLE_STATIC)):
            if self.console and scope.get("method") in ("GET", "HEAD") and path.startswith("/console"):
                # a browser navigating to a page: send it to the login form, and back afterwards
                await _redirect(send, "/console/login?next=" + quote(path, safe="/"))
            elif why:  # a session cookie, but expired, or a change without the CSRF header
                await _answer(send, 401 if "expired" in why else 403, why)
            else:
                await _answer(send, 401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
            return
        try:
            body = await self._read_body(receive, limit)
        except _TooLarge:
            await _answer(send, 413, f"request body over {limit} bytes")
            return
        scope.setdefault("state", {})["authenticated"] = authenticated
        await self.app(scope, _replay(body, receive), send)

    @staticmethod
    async def _read_body(receive: Receive, limit: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":  # disconnected: the app sees an empty body, then the disconnect
                break
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            chunks.append(chunk)
            if not msg.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the buffered body over once, then waits on the real one (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


#: pydantic's error types for a value over a length limit (strings; lists and maps)
_TOO_LONG = frozenset({"string_too_long", "too_long"})


def install_limit_errors(app: FastAPI) -> None:
    """Answer ``413`` (not ``422``) when a request field is over its length limit (the SQL text,
    a list or map over its size): over a limit is "too large", whichever layer counted."""

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        too_long = [e for e in errors if e.get("type") in _TOO_LONG]
        if too_long:
            where = ", ".join(".".join(str(x) for x in e.get("loc", ())) for e in too_long)
            return JSONResponse({"detail": f"over the size limit: {where}"}, status_code=413)
        return await request_validation_exception_handler(request, exc)

    app.add_exception_handler(RequestValidationError, handler)


def secure_openapi(app: FastAPI, open_paths: frozenset[str] = OPEN_PATHS) -> None:
    """Make ``app``'s OpenAPI spec say what the door does: bearer auth on every operation but
    ``open_paths``, and the door's 401 and 413 answers."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        spec.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "INFERWATCH_API_TOKEN"}
        }
        for path, ops in spec.get("paths", {}).items():
            for op in ops.values():
                responses = op.setdefault("responses", {})
                responses.setdefault("413", {"description": "Request body over the route's limit"})
                if path in open_paths:
                    op["security"] = []
                else:
                    op["security"] = [{"bearer": []}]
                    responses.setdefault("401", {"description": "Missing or wrong bearer token"})
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the spec


def is_authenticated(state: Any) -> bool:
    """Whether the door let the request in with the token (or no token is configured)."""
    return bool(getattr(state, "authenticated", False))
