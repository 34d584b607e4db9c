"""The console's browser session: a cookie that is not the token, expires, and needs a CSRF header
and our own origin for anything but reads (:mod:`inferwatch.api.console.auth`)."""

from __future__ import annotations

import pytest

from inferwatch.api.console import auth

TOKEN = "s3cret-token"
NOW = 1_800_000_000_000


def _headers(session: str | None, **extra: str) -> dict[str, str]:
    h = {"host": "127.0.0.1:8787", **extra}
    if session is not None:
        h["cookie"] = f"other=1; {auth.COOKIE}={session}"
    return h


def test_a_session_is_valid_for_its_token_only_and_is_not_the_token() -> None:
    s = auth.new_session(TOKEN, NOW)
    assert TOKEN not in s
    assert auth.session_valid(s, TOKEN, NOW)
    assert not auth.session_valid(s, "another-token", NOW)  # a new token ends every session


def test_a_session_expires_and_cannot_come_from_the_future() -> None:
    s = auth.new_session(TOKEN, NOW)
    assert auth.session_valid(s, TOKEN, NOW + (auth.SESSION_MAX_AGE_S - 1) * 1000)
    assert not auth.session_valid(s, TOKEN, NOW + (auth.SESSION_MAX_AGE_S + 1) * 1000)
    assert not auth.session_valid(auth.new_session(TOKEN, NOW + 3_600_000), TOKEN, NOW)


@pytest.mark.parametrize("value", [
    "", "v1", "v1..", "v1.abc.def", "v2.1.2", "v1.1800000000000.", "v1.-5.00", "v1.1800000000000." + "0" * 64,
    "v1." + "9" * 400 + ".00", "<script>", "v1.1800000000000.ä" * 3, "\x00\xff",
])
def test_forged_or_garbage_sessions_are_refused(value: str) -> None:
    assert not auth.session_valid(value, TOKEN, NOW)


def test_tampering_with_the_time_breaks_the_mac() -> None:
    v, issued, mac = auth.new_session(TOKEN, NOW).split(".")
    assert not auth.session_valid(f"{v}.{int(issued) + 1}.{mac}", TOKEN, NOW)


def test_reads_need_the_cookie_only_changes_need_csrf_and_our_origin() -> None:
    s = auth.new_session(TOKEN)
    csrf = auth.csrf_token(TOKEN, s)
    assert auth.cookie_authenticates(_headers(s), "GET", "http", TOKEN) == (True, "")
    ok, why = auth.cookie_authenticates(_headers(s), "POST", "http", TOKEN)
    assert not ok and auth.CSRF_HEADER in why
    ok, why = auth.cookie_authenticates(_headers(s, **{auth.CSRF_HEADER: "0" * 64}), "POST", "http", TOKEN)
    assert not ok and auth.CSRF_HEADER in why
    good = {auth.CSRF_HEADER: csrf}
    assert auth.cookie_authenticates(_headers(s, **good), "POST", "http", TOKEN) == (True, "")
    assert auth.cookie_authenticates(_headers(s, **good, origin="http://127.0.0.1:8787"), "DELETE", "http", TOKEN)[0]
    for src in ("http://evil.example", "http://127.0.0.1:9999", "null"):
        ok, why = auth.cookie_authenticates(_headers(s, **good, origin=src), "POST", "http", TOKEN)
        assert not ok and "cross-origin" in why, src
    ok, _ = auth.cookie_authenticates(_headers(s, **good, referer="http://evil.example/page"), "POST", "http", TOKEN)
    assert not ok
    # another session's CSRF token does not fit this one
    other = auth.csrf_token(TOKEN, auth.new_session(TOKEN, NOW))
    assert not auth.cookie_authenticates(_headers(s, **{auth.CSRF_HEADER: other}), "POST", "http", TOKEN)[0]


def test_no_cookie_and_broken_cookie_headers() -> None:
    assert auth.cookie_authenticates({"host": "h"}, "GET", "http", TOKEN) == (False, "")
    assert auth.session_cookie({"cookie": 'a="unterminated; \x00'}) is None or True  # never raises
    ok, why = auth.cookie_authenticates(_headers("v1.1.00"), "GET", "http", TOKEN)
    assert not ok and "expired or invalid" in why


def test_the_cookie_is_httponly_strict_and_secure_over_https() -> None:
    c = auth.set_cookie_header("v", secure=False)
    assert c.startswith(f"{auth.COOKIE}=v;") and "HttpOnly" in c and "SameSite=Strict" in c and "Secure" not in c
    assert "Secure" in auth.set_cookie_header("v", secure=True)
    assert "Max-Age=0" in auth.set_cookie_header("", secure=False, max_age_s=0)
