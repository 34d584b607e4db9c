"""The bearer-token check shared by every Inferwatch HTTP server (the API's and the alerter's door,
the processor's health server): one definition of what a valid ``Authorization`` header is.

Kept free of web-framework imports so a process without FastAPI (the processor) can use it.
"""

from __future__ import annotations

import hashlib
import hmac


def token_matches(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header value carries ``token`` as a bearer token.

    Constant-time: both sides are hashed first, so the comparison neither stops at the first
    differing byte nor at a length difference, and any header (non-ASCII included) is compared
    without raising. The scheme is case-insensitive (RFC 7235).
    """
    if not header:
        return False
    scheme, _, got = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    want = hashlib.sha256(token.encode()).digest()
    have = hashlib.sha256(got.strip().encode("utf-8", "surrogateescape")).digest()
    return hmac.compare_digest(want, have)
