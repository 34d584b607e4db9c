"""How a browser shows the bearer token: a login form that sets an HttpOnly session cookie, and a
CSRF token for every request that changes something.

A browser cannot attach ``Authorization: Bearer`` to a page it navigates to, and a token kept in
``sessionStorage`` is readable by any script that ever runs on the page. So the console's login
page posts the token once (``POST /console/login``); the API answers with a cookie that

* is not the token: ``v1.<issued_ms>.<HMAC-SHA256(token, "console-session|v1|<issued_ms>")>``, so a
  leaked cookie is not the API token, expires after :data:`SESSION_MAX_AGE_S`, and every session
  ends when the token changes;
* is ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's page sends it),
  ``Path=/``, and ``Secure`` when the request came over HTTPS.

The door (:mod:`inferwatch.api.door`) accepts a valid cookie in place of the header. Reads
(``GET``/``HEAD``) need nothing more; every other method authenticated by the cookie must also carry
``X-Inferwatch-CSRF: <csrf token>`` — an HMAC of the session, given only inside the console's own
pages (a ``<meta>`` element), which another origin cannot read — and, when the browser sends an
``Origin``, it must be the API's own. A request with the bearer header is not a browser's ambient
credential and needs neither.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlsplit

COOKIE = "inferwatch_console"
"""Name of the session cookie."""
CSRF_HEADER = "x-inferwatch-csrf"
"""Header that carries the CSRF token on requests that change something (lower case, as ASGI gives it)."""
SESSION_MAX_AGE_S = 12 * 3600
"""A console session lasts 12 hours, then the login page asks for the token again."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_VERSION = "v1"


def _mac(token: str, what: str) -> str:
    return hmac.new(token.encode(), what.encode(), hashlib.sha256).hexdigest()


def new_session(token: str, now_ms: int | None = None) -> str:
    """A session cookie value for a caller who just showed ``token``."""
    issued = int(time.time() * 1000) if now_ms is None else now_ms
    return f"{_VERSION}.{issued}.{_mac(token, f'console-session|{_VERSION}|{issued}')}"


def session_valid(value: str | None, token: str, now_ms: int | None = None,
                  max_age_s: int = SESSION_MAX_AGE_S) -> bool:
    """Whether a cookie value is a session made with ``token``, not expired (nor from the future)."""
    if not value or len(value) > 200:
        return False
    parts = value.split(".")
    if len(parts) != 3 or parts[0] != _VERSION or not parts[1].isdigit() or len(parts[1]) > 15:
        return False
    issued = int(parts[1])
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if not (now - max_age_s * 1000 <= issued <= now + 60_000):  # a minute of clock skew
        return False
    want = _mac(token, f"console-session|{_VERSION}|{issued}")
    return hmac.compare_digest(want.encode(), parts[2].encode("utf-8", "surrogateescape"))


def csrf_token(token: str, session: str) -> str:
    """The CSRF token of one session (what the pages put in ``<meta name="inferwatch-csrf">``)."""
    return _mac(token, f"console-csrf|{session}")


def session_cookie(headers: Mapping[str, str]) -> str | None:
    """The session cookie's value from a request's (lower-cased) headers, if any."""
    raw = headers.get("cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else None


def same_origin(headers: Mapping[str, str], scheme: str) -> bool:
    """False when the browser says the request comes from another origin (``Origin`` header, or
    ``Referer`` when there is no ``Origin``); True when it names ours or says nothing."""
    host = headers.get("host", "")
    src = headers.get("origin") or headers.get("referer")
    if not src:
        return True
    if src == "null":
        return False
    try:
        parts = urlsplit(src)
    except ValueError:
        return False
    return parts.netloc.lower() == host.lower() and parts.scheme in (scheme, "http", "https")


def cookie_authenticates(headers: Mapping[str, str], method: str, scheme: str, token: str) -> tuple[bool, str]:
    """Whether the request's session cookie stands in for the bearer token, and why not.

    Returns ``(ok, reason)``; ``reason`` is empty when there is no cookie at all (the caller then
    answers as for a missing token)."""
    value = session_cookie(headers)
    if value is None:
        return False, ""
    if not session_valid(value, token):
        return False, "console session expired or invalid: log in again at /console/login"
    if method.upper() in SAFE_METHODS:
        return True, ""
    if not same_origin(headers, scheme):
        return False, "cross-origin request refused"
    got = headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(csrf_token(token, value).encode(), got.encode("utf-8", "surrogateescape")):
        return False, f"missing or wrong {CSRF_HEADER} header (the console's pages send it)"
    return True, ""


def set_cookie_header(value: str, secure: bool, max_age_s: int = SESSION_MAX_AGE_S) -> str:
    """The ``Set-Cookie`` header value of a new session (``value=""``, ``max_age_s=0``: log out)."""
    parts = [f"{COOKIE}={value}", "Path=/", f"Max-Age={max_age_s}", "HttpOnly", "SameSite=Strict"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)
