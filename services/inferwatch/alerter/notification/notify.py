"""Sending one notification to one webhook over HTTP, with retries (asyncio, :mod:`.httpclient`).

Retry policy: network errors, timeouts, 5xx and 429 are retried with exponential backoff and full
jitter (``initial * 2**n``, capped), honouring ``Retry-After`` (seconds or an HTTP date) when the
receiver sends one; any other 4xx is final (the receiver rejected the request; repeating it will
not help). Every attempt is reported to ``on_attempt`` so it can be recorded on the alerts topic.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from inferwatch.alerter.notification.httpclient import HttpError, HttpPool
from inferwatch.alerter.notification.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign
from inferwatch.alerter.route.routing import DeliveryConfig, ReceiverConfig
from inferwatch.contract.events import Delivery

USER_AGENT = "inferwatch-alerter/1"


@dataclass(frozen=True)
class AttemptResult:
    """The outcome of one HTTP attempt."""

    ok: bool
    retryable: bool
    status: int | None
    error: str | None
    retry_after_s: float | None
    duration_ms: float


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        dt = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, dt.timestamp() - (time.time() if now is None else now))


def classify(status: int) -> tuple[bool, bool]:
    """(delivered, retryable) for an HTTP status."""
    if 200 <= status < 300:
        return True, False
    return False, status == 429 or status >= 500 or status == 408


def backoff_s(attempt: int, policy: DeliveryConfig, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff before attempt ``attempt + 1`` (attempt counts from 1)."""
    cap = min(policy.backoff_max_s, policy.backoff_initial_s * (2 ** (attempt - 1)))
    r = rng.random() if rng is not None else random.random()
    # never less than half the step: full jitter may pick ~0 and hammer a struggling receiver
    return cap * (0.5 + 0.5 * r)


async def attempt_once(
    client: HttpPool, rcv: ReceiverConfig, body: bytes, key: str, timeout_s: float
) -> AttemptResult:
    """One signed POST."""
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, IDEMPOTENCY_HEADER: key}
    headers.update(rcv.headers)
    secret = rcv.secret_value()
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, body)
    t0 = time.perf_counter()
    try:
        resp = await client.post(rcv.url, body, headers, timeout_s)
    except HttpError as exc:
        return AttemptResult(False, True, None, f"{type(exc).__name__}: {exc}"[:4000], None,
                             (time.perf_counter() - t0) * 1000)
    ok, retry = classify(resp.status)
    err = None if ok else f"HTTP {resp.status}: {resp.text[:500]}"
    return AttemptResult(ok, retry, resp.status, err, parse_retry_after(resp.headers.get("retry-after")),
                         (time.perf_counter() - t0) * 1000)


OnAttempt = Callable[[Delivery], Awaitable[None]]


async def deliver(
    client: HttpPool,
    rcv: ReceiverConfig,
    body: bytes,
    key: str,
    policy: DeliveryConfig,
    on_attempt: OnAttempt,
    first_attempt: int = 1,
    deadline: float | None = None,
    stop: asyncio.Event | None = None,
    guard: asyncio.Semaphore | None = None,
) -> bool:
    """Send until delivered, a final failure, the deadline (monotonic) or ``stop``. Returns delivered."""
    attempt = first_attempt
    deadline = time.monotonic() + policy.give_up_after_s if deadline is None else deadline
    timeout = rcv.timeout_s or policy.timeout_s
    while True:
        if guard is not None:
            # the overall bound holds only while a request is in flight, not during backoff, so a
            # receiver that is down cannot use up the slots of the others
            async with guard:
                res = await attempt_once(client, rcv, body, key, timeout)
        else:
            res = await attempt_once(client, rcv, body, key, timeout)
        if res.ok:
            await on_attempt(Delivery(attempt=attempt, outcome="delivered", http_status=res.status,
                                      duration_ms=res.duration_ms))
            return True
        wait = backoff_s(attempt, policy)
        if res.retry_after_s is not None:
            wait = max(wait, min(res.retry_after_s, policy.retry_after_max_s))
        final = not res.retryable or time.monotonic() + wait > deadline
        await on_attempt(Delivery(attempt=attempt, outcome="failed" if final else "retrying",
                                  http_status=res.status, error=res.error, duration_ms=res.duration_ms))
        if final:
            return False
        if stop is not None:
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait)
                return False
            except TimeoutError:
                pass
        else:
            await asyncio.sleep(wait)
        attempt += 1
