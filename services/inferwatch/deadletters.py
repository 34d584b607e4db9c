"""What every service puts in a dead letter's payload: the original bytes, cut when they would not fit.

A dead letter carries its message's bytes in base64 (4/3 of the size) plus the reason and the
coordinates. A message close to Kafka's 1 MB limit would make a dead letter over it, which no
producer can send: the service would then retry it forever (nothing may be committed before its
dead letter is written) or lose it. So payloads over :data:`MAX_PAYLOAD_BYTES` keep their first
:data:`MAX_PAYLOAD_BYTES` bytes and the reason says so, with the original size.
"""

from __future__ import annotations

import base64

from inferwatch.contract.limits import REASON_MAX as _REASON_MAX  # DeadletterV1.reason's max_length

MAX_PAYLOAD_BYTES = 512 * 1024
"""Largest payload kept whole: its base64 (~700 kB) and the rest of the dead letter stay well under
the producer's default ``message.max.bytes`` (1,000,000) and the broker's default record limit."""


def payload_fields(value: bytes | None, reason: str) -> tuple[str, str]:
    """``(payload_b64, reason)`` for a dead letter of ``value``: cut to :data:`MAX_PAYLOAD_BYTES`
    with a note at the end of the reason when it is longer (the reason stays within its 4096 chars)."""
    raw = value or b""
    if len(raw) <= MAX_PAYLOAD_BYTES:
        return base64.b64encode(raw).decode(), reason[:_REASON_MAX]
    note = f" [payload truncated: first {MAX_PAYLOAD_BYTES} of {len(raw)} bytes kept]"
    return base64.b64encode(raw[:MAX_PAYLOAD_BYTES]).decode(), reason[:_REASON_MAX - len(note)] + note
