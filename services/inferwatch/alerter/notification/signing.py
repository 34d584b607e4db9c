"""Webhook request signing: HMAC-SHA256 over ``<timestamp>.<body>`` with the receiver's secret.

Header: ``X-Inferwatch-Signature: t=<unix seconds>,v1=<hex digest>``. A receiver recomputes the
digest over the timestamp, a dot and the raw body bytes, compares in constant time, and rejects
timestamps older than its tolerance (replay protection). The timestamp is fresh on every attempt;
the ``Idempotency-Key`` header stays the same across attempts.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Inferwatch-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}.".encode() + body``."""
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The value of the signature header for ``body``."""
    ts = int(time.time()) if timestamp is None else timestamp
    return f"t={ts},v1={signature(secret, ts, body)}"


def verify(secret: str, header: str, body: bytes, tolerance_s: float = 300.0, now: float | None = None) -> bool:
    """Whether ``header`` is a valid, fresh signature of ``body`` (what a receiver does)."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        ts = int(parts["t"])
        got = parts["v1"]
    except (ValueError, KeyError):
        return False
    now = time.time() if now is None else now
    if abs(now - ts) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, ts, body), got)
