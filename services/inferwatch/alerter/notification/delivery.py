"""Delivery of outbox items: bounded concurrency, retries, and one ``alert.v1`` record per attempt.

Concurrency: each receiver has its own semaphore (``per_receiver_concurrency``, held for a whole
delivery including its backoff) and all receivers share ``max_concurrency`` slots held only while
a request is in flight, so a receiver that stays down never starves the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable

from inferwatch.alerter.lifecycle.state import AlertStore, OutboxItem
from inferwatch.alerter.notification.httpclient import HttpPool
from inferwatch.alerter.notification.notify import deliver
from inferwatch.alerter.notification.payloads import render_body
from inferwatch.alerter.route.routing import DeliveryConfig, ReceiverConfig
from inferwatch.clock import now_ms
from inferwatch.contract.events import AlertV1, Delivery

log = logging.getLogger(__name__)

Recorder = Callable[[AlertV1], None]
"""Receives every attempt record (``alert.v1`` with ``delivery``); the service produces it to Kafka."""


class DeliveryManager:
    """Runs one asyncio task per outbox item."""

    def __init__(
        self, store: AlertStore, receivers: dict[str, ReceiverConfig], policy: DeliveryConfig, record: Recorder
    ) -> None:
        self.store = store
        self.receivers = receivers
        self.policy = policy
        self.record = record
        self._client: HttpPool | None = None
        self._global = asyncio.Semaphore(policy.max_concurrency)
        self._per: dict[str, asyncio.Semaphore] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._parts: dict[str, int] = {}  # idempotency key -> input partition of the item being delivered
        self._stop = asyncio.Event()
        # progress marks wait here and are written in one transaction per loop turn (flush_marks):
        # a mark lost in a crash only means the item is sent again under the same idempotency key
        self._marks: dict[str, tuple[str, str, int, str | None]] = {}
        self.delivered = 0
        self.failed = 0

    def _sem(self, rcv: ReceiverConfig) -> asyncio.Semaphore:
        s = self._per.get(rcv.name)
        if s is None:
            s = self._per[rcv.name] = asyncio.Semaphore(rcv.max_concurrency or self.policy.per_receiver_concurrency)
        return s

    async def __aenter__(self) -> DeliveryManager:
        # connections stay open between notifications (keep-alive), as many per receiver as may be busy
        self._client = HttpPool(max_idle_per_origin=self.policy.max_concurrency)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self, grace_s: float = 2.0) -> None:
        """Stop retrying (pending items stay in the outbox for the next start) and close the client."""
        self._stop.set()
        tasks = list(self._tasks.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_s)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self.flush_marks()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def flush_marks(self) -> None:
        """Write the delivery progress recorded since the last call (one transaction)."""
        if self._marks:
            marks, self._marks = list(self._marks.values()), {}
            self.store.mark_outbox_many(marks)

    @property
    def in_flight(self) -> int:
        """Notifications being delivered right now."""
        return len(self._tasks)

    def submit(self, item: OutboxItem) -> None:
        """Start delivering ``item`` unless it is already on its way."""
        if item.idempotency_key in self._tasks or self._stop.is_set():
            return
        rcv = self.receivers.get(item.receiver)
        if rcv is None:
            log.error("outbox item %s names unknown receiver %s; marked failed", item.idempotency_key, item.receiver)
            self.store.mark_outbox(item.idempotency_key, "failed", item.attempts, "unknown receiver")
            return
        task = asyncio.get_running_loop().create_task(self._run(item, rcv))
        self._tasks[item.idempotency_key] = task
        self._parts[item.idempotency_key] = item.part
        key = item.idempotency_key

        def done(_t: asyncio.Task[None]) -> None:
            self._tasks.pop(key, None)
            self._parts.pop(key, None)

        task.add_done_callback(done)

    def cancel_partitions(self, parts: set[int]) -> int:
        """Stop delivering the items of input partitions ``parts`` (another alerter takes them over, with
        their outbox: it sends what is still pending there, under the same idempotency keys). Returns
        how many deliveries were stopped; their progress so far stays in the marks (:meth:`flush_marks`)."""
        stopped = 0
        for key, part in list(self._parts.items()):
            task = self._tasks.get(key)
            if part in parts and task is not None:
                task.cancel()
                self._tasks.pop(key, None)
                self._parts.pop(key, None)
                stopped += 1
        return stopped

    async def _run(self, item: OutboxItem, rcv: ReceiverConfig) -> None:
        assert self._client is not None
        notification = AlertV1.model_validate_json(item.body)
        body = render_body(rcv.format, notification)
        # the give-up deadline counts from when the notification was decided, across restarts
        age_s = max(0.0, (now_ms() - item.created_wall_ms) / 1000)
        deadline = time.monotonic() + max(0.0, self.policy.give_up_after_s - age_s)
        attempts = item.attempts

        async def on_attempt(d: Delivery) -> None:
            nonlocal attempts
            attempts = d.attempt
            status = {"delivered": "delivered", "failed": "failed"}.get(d.outcome, "pending")
            self._marks[item.idempotency_key] = (item.idempotency_key, status, d.attempt, d.error)
            try:
                self.record(notification.model_copy(update={
                    "event_id": uuid.uuid4().hex, "ts": now_ms(), "delivery": d}))
            except Exception:  # recording must never stop a delivery
                log.exception("could not record delivery attempt")

        async with self._sem(rcv):
            try:
                ok = await deliver(self._client, rcv, body, item.idempotency_key, self.policy, on_attempt,
                                   first_attempt=attempts + 1, deadline=deadline, stop=self._stop,
                                   guard=self._global)
            except Exception as exc:  # a bug here must not kill the loop; the item stays pending
                log.exception("delivery of %s crashed: %s", item.idempotency_key, exc)
                return
        if ok:
            self.delivered += 1
        elif not self._stop.is_set():
            self.failed += 1
            log.warning("gave up delivering %s to %s after %d attempts", item.idempotency_key, rcv.name, attempts)
