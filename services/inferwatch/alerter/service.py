"""The alerter process: consume ``metric_snapshot.v1`` from the metrics topic, evaluate, notify.

Commit order (per consumed batch), enforced in :meth:`AlerterService._handle_batch`:

1. decode and validate each snapshot; invalid ones are produced to the dead-letter topic
   (stage ``alerter``) and the producer is flushed;
2. evaluate rules and persist the alert states in SQLite (one transaction);
3. only then commit the batch's Kafka offsets (asynchronously: the commit is issued after the
   state is durable, so losing it only re-delivers snapshots that are skipped as already seen).

Notifications are decided by the dispatcher (wall-clock timers) into the SQLite outbox and sent by
the delivery manager; each attempt is produced to the alerts topic. Outbox items left pending by a
previous run are re-sent at start with their original idempotency keys.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer

from inferwatch.alerter.delivery import DeliveryManager
from inferwatch.alerter.dispatch import Dispatcher
from inferwatch.alerter.engine import Engine
from inferwatch.alerter.inhibit import InhibitRule
from inferwatch.alerter.routing import AlerterConfig, compile_route
from inferwatch.alerter.rulewatch import ConfigWatcher, RuleWatcher, apply_config
from inferwatch.alerter.silences import now_ms
from inferwatch.alerter.state import AlertStore, state_path
from inferwatch.config import Settings
from inferwatch.contract.errors import ContractError
from inferwatch.contract.events import AlertV1, DeadletterV1, MetricSnapshotV1
from inferwatch.contract.validate import validate
from inferwatch.kafka.clientconf import base_config

log = logging.getLogger(__name__)

CONSUMER_GROUP = "inferwatch-alerter"


@dataclass
class Stats:
    """Counters of one run (exposed for tests, the bench and logs)."""

    snapshots: int = 0
    deadlettered: int = 0
    notifications: int = 0
    attempts: int = 0
    batches: int = 0
    started: threading.Event = field(default_factory=threading.Event)


def _fetch(consumer: Consumer, wait_s: float) -> list[Message]:
    """Up to 500 messages: wait (at most ``wait_s``) for the first, then take what is already fetched.

    ``consume(500, t)`` alone returns only when 500 messages came or ``t`` passed, so every batch
    would wait out the timeout; this returns as soon as the first message is there.
    """
    first = consumer.consume(1, wait_s)
    if not first:
        return first
    return first + consumer.consume(499, 0)


class AlerterService:
    """One alerter process. ``run_forever`` blocks; ``start_in_thread`` is for tests and the bench."""

    def __init__(
        self,
        settings: Settings,
        rules_path: Path | str,
        config: AlerterConfig,
        group_id: str | None = None,
        serve_http: bool = True,
        config_path: Path | str | None = None,
    ) -> None:
        self.settings = settings
        self.config = config
        self.group_id = group_id or settings.topic_prefix + CONSUMER_GROUP  # a prefix isolates deployments
        self.serve_http = serve_http and config.http.port != 0
        self.watcher = RuleWatcher(Path(rules_path))
        self.watcher.load()  # bad rules at start-up stop the start, with the file/rule/field errors
        # hot reload of the routing configuration (receivers, routes, inhibition) when its file is known
        self.config_watcher = ConfigWatcher(Path(config_path), config) if config_path is not None else None
        self.store = AlertStore(state_path(settings.data_dir))
        self.engine = Engine(self.store, self.watcher.rules)
        self.receivers = {r.name: r for r in config.receivers}
        self.dispatcher = Dispatcher(
            compile_route(config.route), self.receivers,
            [InhibitRule.from_config(c) for c in config.inhibit_rules], self.store,
        )
        self.stats = Stats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._http_server: Any = None
        self._producer = Producer({**base_config(settings), "linger.ms": 5, "enable.idempotence": True})

    # --- lifecycle ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to stop (pending deliveries stay in the outbox)."""
        self._stop.set()

    def start_in_thread(self, ready_timeout_s: float = 60.0) -> AlerterService:
        """Run in a daemon thread; returns once the consumer has its partitions."""
        self._thread = threading.Thread(target=self.run_forever, name="alerter", daemon=True)
        self._thread.start()
        if not self.stats.started.wait(ready_timeout_s):
            raise TimeoutError("alerter did not get its partitions in time")
        return self

    def join(self, timeout_s: float = 30.0) -> None:
        """Stop and wait for the thread."""
        self.stop()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def run_forever(self) -> None:
        """Block until :meth:`stop` (or SIGINT in the CLI)."""
        try:
            asyncio.run(self._main())
        finally:
            self._producer.flush(10)
            self.store.close()

    # --- the loop -----------------------------------------------------------------------------

    def _consumer(self) -> Consumer:
        c = Consumer({
            **base_config(self.settings),
            "group.id": self.group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": self.config.start_from,
            "enable.partition.eof": False,
            # the broker answers a fetch at once when data arrives, not after the default 500 ms
            "fetch.wait.max.ms": 10,
        })

        def on_assign(consumer: Consumer, parts: list[Any]) -> None:
            self.stats.started.set()

        c.subscribe([self.settings.metrics_topic], on_assign=on_assign)
        return c

    async def _main(self) -> None:
        if self.serve_http:
            self._start_http()
        consumer = self._consumer()
        loop = asyncio.get_running_loop()
        # re-insert stored alerts so groups (and their dedup against the nflog) survive a restart
        for rec in self.engine.alerts.values():
            self.dispatcher.insert(rec)
        last_gc = 0.0
        self.store.disable_autocheckpoint()
        ckpt: asyncio.Future[None] | None = None
        last_ckpt = time.monotonic()
        try:
            async with DeliveryManager(self.store, self.receivers, self.config.delivery, self._record) as dm:
                for item in self.store.pending_outbox():
                    dm.submit(item)
                while not self._stop.is_set():
                    due = self.dispatcher.next_due()
                    # short: the wait also bounds how late a due group or a hot reload is seen
                    wait = 0.02 if due is None else min(0.02, max(0.0, due - time.time()))
                    msgs = await loop.run_in_executor(None, _fetch, consumer, wait)
                    if msgs:
                        self._handle_batch(consumer, msgs)
                    if self.watcher.poll():
                        for rec in self.engine.set_rules(self.watcher.rules):
                            self.dispatcher.insert(rec)
                    if self.config_watcher is not None and (new_cfg := self.config_watcher.poll()) is not None:
                        apply_config(self.dispatcher, new_cfg)
                    for item in self.dispatcher.flush_due(self.engine.firing_labels):
                        self.stats.notifications += 1
                        dm.submit(item)
                    if time.monotonic() - last_gc > 60:
                        last_gc = time.monotonic()
                        cutoff = now_ms() - int(self.config.resolved_retention_s * 1000)
                        for fp in self.engine.gc(cutoff):
                            self.dispatcher.forget(fp)
                        self.store.gc_outbox(now_ms() - 7 * 86_400_000)
                    dm.flush_marks()
                    if (ckpt is None or ckpt.done()) and time.monotonic() - last_ckpt > 1.0:
                        if ckpt is not None and ckpt.exception() is not None:
                            log.warning("WAL checkpoint failed: %s", ckpt.exception())
                        last_ckpt = time.monotonic()
                        ckpt = loop.run_in_executor(None, self.store.checkpoint)
                    await asyncio.sleep(0)  # let deliveries run
        finally:
            if ckpt is not None:
                await asyncio.wait([ckpt], timeout=10)
            consumer.close()
            if self._http_server is not None:
                self._http_server.should_exit = True

    def _handle_batch(self, consumer: Consumer, msgs: list[Message]) -> None:
        snaps: list[MetricSnapshotV1] = []
        dead = 0
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", err)
                continue
            try:
                snap = validate("metric_snapshot.v1", m.value() or b"")
                assert isinstance(snap, MetricSnapshotV1)
                snaps.append(snap)
            except ContractError as exc:
                self._deadletter(m, exc.message + f" [{exc.rule}]", exc.path or None)
                dead += 1
        if dead:
            self._producer.flush(30)  # dead letters are durable before their offsets are committed
        self.stats.deadlettered += dead
        try:
            changed = self.engine.process(snaps)
        except Exception:
            # a bug in evaluation must not turn into a crash loop on one poison batch; the batch is
            # retried one snapshot at a time so the guilty one can be dead-lettered
            changed = []
            for snap, m in zip(snaps, [x for x in msgs if x.error() is None], strict=False):
                try:
                    changed.extend(self.engine.process([snap]))
                except Exception as exc:
                    log.exception("evaluation failed")
                    self._deadletter(m, f"evaluation failed: {type(exc).__name__}: {exc}", None)
            self._producer.flush(30)
        self.stats.snapshots += len(snaps)
        self.stats.batches += 1
        for rec in changed:
            self.dispatcher.insert(rec)
        # asynchronous: the state above is already durable, so the commit may land a little later
        # (a crash before it only re-delivers snapshots the event-time guard skips); a synchronous
        # commit held the event loop, and with it every delivery, for a broker round trip per batch
        consumer.commit(asynchronous=True)

    def _deadletter(self, m: Message, reason: str, path: str | None) -> None:
        dl = DeadletterV1(
            event_id=uuid.uuid4().hex, ts=now_ms(), stage="alerter", reason=reason[:4096], error_path=path,
            source_topic=m.topic(), source_partition=m.partition(), source_offset=m.offset(),
            expected_schema="metric_snapshot.v1",
            key_b64=base64.b64encode(key).decode() if (key := m.key()) else None,
            payload_b64=base64.b64encode(m.value() or b"").decode(),
        )
        log.warning("dead-lettered %s[%s]@%s: %s", m.topic(), m.partition(), m.offset(), reason)
        self._producer.produce(self.settings.deadletter_topic, dl.model_dump_json().encode(), key=(m.topic() or "").encode())

    def _record(self, attempt: AlertV1) -> None:
        self.stats.attempts += 1
        self._producer.produce(self.settings.alerts_topic, attempt.model_dump_json().encode(),
                               key=attempt.group_key.encode())
        self._producer.poll(0)

    def _start_http(self) -> None:
        from inferwatch.alerter.http import alerter_server

        # behind the main API's door: same token, body limits; refuses a public address without a token
        server = alerter_server(self.store, self.config.http.host, self.config.http.port, self.settings.api_token,
                                on_silence_change=self.dispatcher.invalidate_silences)
        self._http_server = server
        threading.Thread(target=server.run, name="alerter-http", daemon=True).start()
