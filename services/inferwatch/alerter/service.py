"""The alerter process: consume ``metric_snapshot.v1`` from the metrics topic and ``detection.v1`` from
the detections topic (one consumer, both topics), evaluate, notify.

Commit order (per consumed batch), enforced in :meth:`AlerterService._handle_batch`:

1. decode and validate each message by its topic's schema; invalid ones become dead letters (stage
   ``alerter``, naming the schema expected);
2. evaluate rules on the snapshots, then hand the detections to the engine
   (:meth:`~inferwatch.alerter.evaluation.rule_engine.Engine.process_detections`), persisting the alert
   states in SQLite (one transaction each); when either fails, its events are evaluated again one at a
   time and each that fails becomes a dead letter carrying its own message's offset and payload;
3. produce the batch's dead letters and wait for every delivery report; only when Kafka confirmed
   each of them, commit the batch's Kafka offsets (asynchronously: the commit is issued after the
   state is durable, so losing it only re-delivers snapshots that are skipped as already seen).

A dead letter Kafka refuses (or does not confirm) holds the commit: the partitions are paused, the
refused dead letters are produced again with back-off until Kafka takes them, and only then are the
offsets committed and reading resumed. :meth:`AlerterService.health` (``GET /healthz``) is not ok
meanwhile, with the error, and ``inferwatch_alerter_deadletter_failures_total``
(:meth:`AlerterService.metrics_text`, ``GET /metrics``) counts every refused delivery.

Notifications are decided by the dispatcher (wall-clock timers) into the SQLite outbox and sent by
the delivery manager; each attempt is produced to the alerts topic. Outbox items left pending by a
previous run are re-sent at start with their original idempotency keys.

Several alerters (one consumer group; Kafka distributes the partitions, the ``range`` assignor gives
one alerter the same partition number of every input topic, which are keyed by model alike). An
alerter holds the state of the partitions it is assigned, and only that:

- every state row belongs to one input partition; the rows a batch wrote are produced to the
  compacted changelog ``inferwatch.alerter-state`` (same partition number) in step 2 above, and the
  batch's offsets are committed only once Kafka confirmed them (the changelog's *durable epoch*,
  :class:`~inferwatch.alerter.lifecycle.state_topic.StateChangelog`, reached the batch's): so the
  input offsets never run ahead of the state in Kafka. Nothing blocks the event loop meanwhile;
- a decided notification (nflog + outbox) is confirmed in the changelog before it is handed to the
  delivery manager, so the alerter that takes a partition over knows it, and re-sends it if it is
  still pending, under the same idempotency key;
- on assignment a partition's rows are read back from the changelog into the local SQLite cache
  (whatever the cache held for it is discarded: another alerter may have moved it on), its alerts
  re-enter the groups and its pending outbox items are sent; on revocation the deliveries of the
  partition stop, everything written is confirmed in the changelog, the offsets are committed, and
  the partition's rows are dropped locally;
- silences are a global table: the compacted ``inferwatch.alerter-silences`` topic, read in full by
  every alerter (:mod:`inferwatch.alerter.silence.silence_topic`).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import fcntl
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer

from inferwatch.alerter.errors import ConfigError
from inferwatch.alerter.evaluation.rule_engine import Engine
from inferwatch.alerter.evaluation.rulewatch import ConfigWatcher, RuleWatcher, apply_config
from inferwatch.alerter.lifecycle.state import AlertStore, OutboxItem, state_path
from inferwatch.alerter.lifecycle.state_topic import StateChangelog
from inferwatch.alerter.lifecycle.transitions import AlertRecord
from inferwatch.alerter.notification.delivery import DeliveryManager
from inferwatch.alerter.route.dispatch import Dispatcher
from inferwatch.alerter.route.inhibit import InhibitRule
from inferwatch.alerter.route.routing import AlerterConfig, compile_route
from inferwatch.alerter.silence.silence_topic import SilenceFollower, SilencePublisher
from inferwatch.alerter.silence.silences import Silence
from inferwatch.clock import now_ms
from inferwatch.config import Settings
from inferwatch.contract.errors import ContractError
from inferwatch.contract.events import AlertV1, DeadletterV1, DetectionV1, MetricSnapshotV1
from inferwatch.contract.limits import deadletter_id
from inferwatch.contract.topics import ALERTER_SILENCES, ALERTER_STATE
from inferwatch.contract.validate import validate
from inferwatch.deadletters import payload_fields
from inferwatch.kafka import groups
from inferwatch.kafka.clientconf import base_config

log = logging.getLogger(__name__)

DEADLETTER_RETRY_INITIAL_S = 0.2
DEADLETTER_RETRY_MAX_S = 5.0
DEADLETTER_CONFIRM_S = 30.0  # how long a batch waits for its dead letters' delivery reports
ENGINE_TICK_S = 1.0  # how often the engine's wall-clock half runs (bounds how late it decides)
CHANGELOG_CONFIRM_S = 10.0  # how long a revocation waits for the state changelog's delivery reports
CHANGELOG_RETRY_S = 1.0  # while a changelog row is refused, rows are re-sent at most this often
SILENCE_SYNC_S = 5.0  # how often silences written to the local store by other processes are published
SNAPSHOT_SCHEMA = "metric_snapshot.v1"
DETECTION_SCHEMA = "detection.v1"

E = TypeVar("E", MetricSnapshotV1, DetectionV1)


@dataclass
class Stats:
    """Counters of one run (exposed for tests, the bench and logs)."""

    snapshots: int = 0
    detections: int = 0
    deadlettered: int = 0
    notifications: int = 0
    attempts: int = 0
    batches: int = 0
    deadletter_failures: int = 0  # dead-letter deliveries Kafka refused or did not confirm (every attempt)
    deadletter_pending: int = 0  # dead letters not yet confirmed: the offsets are not committed meanwhile
    deadletter_error: str | None = None
    started: threading.Event = field(default_factory=threading.Event)


@dataclass
class _DeadLetter:
    """One dead letter ready to produce (bytes), with where it came from for the logs."""

    key: bytes
    value: bytes
    source: str


def _fetch(consumer: Consumer, wait_s: float) -> list[Message]:
    """Up to 500 messages: wait (at most ``wait_s``) for the first, then take what is already fetched.

    ``consume(500, t)`` alone returns only when 500 messages came or ``t`` passed, so every batch
    would wait out the timeout; this returns as soon as the first message is there.
    """
    first = consumer.consume(1, wait_s)
    if not first:
        return first
    return first + consumer.consume(499, 0)


def _lock_data_dir(directory: Path) -> Any:
    """Hold an exclusive lock on ``directory`` for this alerter's life (released when the file closes).

    Each alerter drops and restores the rows of its partitions in its data directory: a second one
    on the same directory would delete the first one's state under it, so it is refused."""
    directory.mkdir(parents=True, exist_ok=True)
    fh = (directory / "alerter.lock").open("a")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise ConfigError(f"another alerter runs on the data directory {directory.parent}: give each alerter "
                          "its own (--data-dir or INFERWATCH_DATA_DIR)") from None
    return fh


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
        self.group_id = group_id or groups.group_id(settings, groups.ALERTER)  # a prefix isolates deployments
        self.serve_http = serve_http and config.http.port != 0
        self.watcher = RuleWatcher(Path(rules_path))
        self.watcher.load()  # bad rules at start-up stop the start, with the file/rule/field errors
        # hot reload of the routing configuration (receivers, routes, inhibition) when its file is known
        self.config_watcher = ConfigWatcher(Path(config_path), config) if config_path is not None else None
        self._lock_file = _lock_data_dir(state_path(settings.data_dir).parent)
        self.store = AlertStore(state_path(settings.data_dir))
        # the file is a cache of the partitions this alerter holds: it holds none yet (each is read back
        # from the changelog when assigned), and every write from now on goes to the changelog
        self.store.drop_partitions()
        self.store.track_changes()
        self.changelog = StateChangelog(settings, settings.topic(ALERTER_STATE), self.store)
        self.silence_publisher = SilencePublisher(settings, settings.topic(ALERTER_SILENCES))
        self.silences: SilenceFollower | None = None
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
        self._dl_batch: list[_DeadLetter] = []  # dead letters of the batch being handled
        self._dl_held: list[_DeadLetter] = []  # refused by Kafka: retried; nothing is committed meanwhile
        self._dl_retry_at = 0.0
        self._dl_attempts = 0
        self._paused = False
        self.partitions: set[int] = set()  # input partitions held (their state is in the store)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._dm: DeliveryManager | None = None
        # decided notifications waiting for the changelog epoch that carries them to be confirmed
        self._unsent: list[tuple[int, OutboxItem]] = []
        # offsets to commit once the changelog epoch that carries their batches' state is confirmed
        self._commits: list[tuple[int, list[Any]]] = []
        self._cl_retry_at = 0.0
        self._closing = False

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
            self._producer.close()  # an open producer keeps reconnecting (and logging) after the broker is gone
            if self.silences is not None:
                self.silences.stop()
            self.silence_publisher.close()
            self.changelog.close()
            self.store.close()
            self._lock_file.close()  # releases the data directory

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
            # range: partition N of every input topic (metrics, detections: keyed by model alike) goes
            # to the same alerter, which holds the state of partition N (a sticky or round-robin
            # assignor could split a model's snapshots and detections between two alerters)
            "partition.assignment.strategy": "range",
            # how long the others wait for a silent alerter before taking its partitions over
            "session.timeout.ms": int(self.config.session_timeout_s * 1000),
            "heartbeat.interval.ms": max(100, int(self.config.session_timeout_s * 1000 / 3)),
        })

        def on_assign(consumer: Consumer, parts: list[Any]) -> None:
            self._paused = False  # a new assignment starts unpaused
            self._on_loop(self._assign, {tp.partition for tp in parts})
            self.stats.started.set()

        def on_revoke(consumer: Consumer, parts: list[Any]) -> None:
            # Nothing of the held batch was committed: whoever owns the partitions next re-reads it
            # and produces its dead letters again, so they are not kept (nor retried) here.
            held_dl = bool(self._dl_held)
            if self._dl_held:
                log.warning("partitions revoked with %d dead letters unwritten; their batch will be re-read",
                            len(self._dl_held))
            self._dl_held = []
            self._dl_attempts = 0
            self._sync_dl_stats()
            if self._on_loop(self._revoke, {tp.partition for tp in parts}) and not held_dl:
                # the state of every handled batch is in the changelog: hand the offsets over with it
                self._commits = []
                try:
                    consumer.commit(asynchronous=False)
                except KafkaException as exc:  # nothing consumed since the last commit, or the group moved on
                    log.info("commit on revocation: %s", exc)

        c.subscribe([self.settings.metrics_topic, self.settings.detections_topic], on_assign=on_assign,
                    on_revoke=on_revoke)
        return c

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop, self._loop_thread = loop, threading.get_ident()
        # every silence before the first evaluation (a global table; followed in a thread from then on)
        self.silences = SilenceFollower(self.settings, self.settings.topic(ALERTER_SILENCES), self.store,
                                        on_change=self.dispatcher.invalidate_silences).start()
        self._sync_silences()
        if self.serve_http:
            self._start_http()
        consumer = self._consumer()
        last_silence_sync = time.monotonic()
        last_gc = 0.0
        last_tick = 0.0
        self.store.disable_autocheckpoint()
        ckpt: asyncio.Future[None] | None = None
        last_ckpt = time.monotonic()
        try:
            async with DeliveryManager(self.store, self.receivers, self.config.delivery, self._record) as dm:
                # the pending outbox items of each partition are submitted when it is assigned (_assign)
                self._dm = dm
                while not self._stop.is_set():
                    due = self.dispatcher.next_due()
                    # short: the wait also bounds how late a due group or a hot reload is seen
                    wait = 0.02 if due is None else min(0.02, max(0.0, due - time.time()))
                    if self._dl_held and time.monotonic() >= self._dl_retry_at:
                        self._retry_deadletters(consumer)
                    msgs = await loop.run_in_executor(None, _fetch, consumer, wait)
                    if msgs:
                        self._handle_batch(consumer, msgs)
                    if self.watcher.poll():
                        for rec in self.engine.set_rules(self.watcher.rules):
                            self.dispatcher.insert(rec)
                    if self.config_watcher is not None and (new_cfg := self.config_watcher.poll()) is not None:
                        apply_config(self.dispatcher, new_cfg)
                    if time.monotonic() - last_tick >= ENGINE_TICK_S:
                        # wall-clock decisions (for_max_wait, absent rules) even when no snapshot arrives
                        last_tick = time.monotonic()
                        try:
                            for rec in self.engine.tick():
                                self.dispatcher.insert(rec)
                        except Exception:  # a bug here must not stop evaluation and delivery
                            log.exception("engine tick failed")
                    decided = self.dispatcher.flush_due(self.engine.firing_labels)
                    if decided:
                        epoch = self.changelog.send()
                        self._unsent.extend((epoch, item) for item in decided)
                    if self._unsent or self._commits:
                        # decided notifications are in the changelog before they are sent (the alerter
                        # that takes the partition over re-sends them, under the same keys, if they
                        # are still pending there); offsets wait for their batches' state likewise
                        durable = self.changelog.durable_epoch()
                        ready = [item for epoch, item in self._unsent if epoch <= durable]
                        if ready:
                            self._unsent = [(e, item) for e, item in self._unsent if e > durable]
                            for item in ready:
                                self.stats.notifications += 1
                                dm.submit(item)
                        self._commit_durable(consumer, durable)
                    if time.monotonic() - last_gc > 60:
                        last_gc = time.monotonic()
                        cutoff = now_ms() - int(self.config.resolved_retention_s * 1000)
                        for fp in self.engine.gc(cutoff):
                            self.dispatcher.forget(fp)
                        self.store.gc_outbox(now_ms() - 7 * 86_400_000)
                    dm.flush_marks()
                    if self.store.has_dirty and (not self.changelog.failing or time.monotonic() >= self._cl_retry_at):
                        # ticks, delivery marks, gc, rows Kafka refused: sent now, confirmed later
                        self._cl_retry_at = time.monotonic() + CHANGELOG_RETRY_S
                        self.changelog.send()
                    if time.monotonic() - last_silence_sync > SILENCE_SYNC_S:
                        last_silence_sync = time.monotonic()
                        await loop.run_in_executor(None, self._sync_silences)
                    if (ckpt is None or ckpt.done()) and time.monotonic() - last_ckpt > 1.0:
                        if ckpt is not None and ckpt.exception() is not None:
                            log.warning("WAL checkpoint failed: %s", ckpt.exception())
                        last_ckpt = time.monotonic()
                        ckpt = loop.run_in_executor(None, self.store.checkpoint)
                    await asyncio.sleep(0)  # let deliveries run
        finally:
            self._dm = None
            if ckpt is not None:
                await asyncio.wait([ckpt], timeout=10)
            self._closing = True  # the revocation of close() keeps the local cache (for `alerts list`)
            consumer.close()
            if self._http_server is not None:
                self._http_server.should_exit = True

    def _handle_batch(self, consumer: Consumer, msgs: list[Message]) -> None:
        valid: list[tuple[MetricSnapshotV1, Message]] = []  # each snapshot with ITS message
        detections: list[tuple[DetectionV1, Message]] = []  # each detection with ITS message
        detections_topic = self.settings.detections_topic
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", err)
                continue
            schema = DETECTION_SCHEMA if m.topic() == detections_topic else SNAPSHOT_SCHEMA
            try:
                ev = validate(schema, m.value() or b"")
            except ContractError as exc:
                self._deadletter(m, exc.message + f" [{exc.rule}]", exc.path or None, schema)
                continue
            if isinstance(ev, DetectionV1):
                detections.append((ev, m))
            else:
                assert isinstance(ev, MetricSnapshotV1)
                valid.append((ev, m))
        # late-bound (lambdas, not bound methods): the engine may be rebuilt between batches
        changed = self._evaluate(lambda ss: self.engine.process(ss), valid, SNAPSHOT_SCHEMA)
        changed += self._evaluate(lambda ds: self.engine.process_detections(ds), detections, DETECTION_SCHEMA)
        self.stats.snapshots += len(valid)
        self.stats.detections += len(detections)
        self.stats.batches += 1
        for rec in changed:
            self.dispatcher.insert(rec)
        dls, self._dl_batch = self._dl_batch, []
        if dls:
            refused, errors = self._deliver(dls)
            self.stats.deadlettered += len(dls) - len(refused)
            if refused:
                self._hold(consumer, refused, errors)
        epoch = self.changelog.send()  # the batch's state rows, confirmed before its offsets are committed
        if self._dl_held:
            return  # a dead letter of the range read so far is not written: no commit (it would cover it)
        self._commit_after(consumer, epoch)

    def _commit_after(self, consumer: Consumer, epoch: int) -> None:
        """Commit the consumer's positions once changelog ``epoch`` is confirmed (now, if it is)."""
        try:
            positions = [tp for tp in consumer.position(consumer.assignment()) if tp.offset >= 0]
        except KafkaException as exc:  # the assignment is changing: the revocation commits
            log.info("positions not read: %s", exc)
            return
        if positions:
            # while the changelog refuses rows this grows; the oldest entries are only earlier progress
            self._commits = [*self._commits[-99:], (epoch, positions)]
        self._commit_durable(consumer, self.changelog.durable_epoch())

    def _commit_durable(self, consumer: Consumer, durable: int) -> None:
        """Commit the latest positions whose batches' state the changelog has (up to epoch ``durable``).

        Asynchronous: the state is already in Kafka, so the commit may land a little later (a crash
        before it only re-delivers snapshots the event-time guard skips); a synchronous commit held the
        event loop, and with it every delivery, for a broker round trip per batch."""
        ready = [c for c in self._commits if c[0] <= durable]
        if not ready:
            return
        self._commits = [c for c in self._commits if c[0] > durable]
        try:
            consumer.commit(offsets=ready[-1][1], asynchronous=True)
        except KafkaException as exc:  # e.g. the partitions moved on meanwhile
            log.info("commit: %s", exc)

    def _evaluate(self, fn: Callable[[Sequence[E]], list[AlertRecord]], items: list[tuple[E, Message]],
                  schema: str) -> list[AlertRecord]:
        """``fn`` (the engine's ``process`` or ``process_detections``) on the events of ``items``; the alerts to
        dispatch. Each call persists its alert states before it returns (one transaction)."""
        if not items:
            return []
        by_part: dict[int, list[tuple[E, Message]]] = {}
        for it in items:
            by_part.setdefault(it[1].partition() or 0, []).append(it)
        changed: list[AlertRecord] = []
        for part in sorted(by_part):
            # the state this writes belongs to the input partition the events came from (it moves with it)
            with self.store.partition_scope(part):
                changed += self._evaluate_part(fn, by_part[part], schema)
        return changed

    def _evaluate_part(self, fn: Callable[[Sequence[E]], list[AlertRecord]], items: list[tuple[E, Message]],
                       schema: str) -> list[AlertRecord]:
        """:meth:`_evaluate` for the events of one input partition."""
        try:
            return fn([ev for ev, _ in items])
        except Exception:
            # a bug in evaluation must not turn into a crash loop on one poison batch; the batch is
            # retried one event at a time so the guilty one can be dead-lettered (with its own
            # message: invalid messages earlier in the batch have no event, so the messages
            # cannot be lined up with the events by position)
            self._rollback_engine()
            changed: list[AlertRecord] = []
            for ev, m in items:
                try:
                    changed.extend(fn([ev]))
                except Exception as exc:
                    log.exception("evaluation failed")
                    self._rollback_engine()
                    self._deadletter(m, f"evaluation failed: {type(exc).__name__}: {exc}", None, schema)
            return changed

    def _rollback_engine(self) -> None:
        """Back to the stored alert states after a failed ``process()``: it applies transitions in memory
        as it goes and stores them all at the end, so after a failure memory is ahead of the store, and
        re-running the good snapshots would find their transitions done (neither stored nor notified)."""
        self.engine.alerts = self.store.load_alerts()
        self.engine._history.clear()  # anomaly histories: reloaded from the store when next needed

    def _reload_engine(self) -> None:
        """The engine's state from the store again (partitions were restored into it or dropped from it)."""
        self._rollback_engine()
        self.engine._seen = self.store.load_seen()
        self.engine._seen_stored = dict(self.engine._seen)

    # --- partitions ---------------------------------------------------------------------------

    def _on_loop(self, fn: Callable[[set[int]], Any], parts: set[int]) -> Any:
        """Run ``fn(parts)`` on the event loop's thread and return its result. Rebalance callbacks run in
        the thread that polls the consumer (an executor thread), while deliveries, the dispatcher and the
        engine belong to the loop; the loop is free meanwhile (it awaits that poll)."""
        loop = self._loop
        if loop is None or threading.get_ident() == self._loop_thread or not loop.is_running():
            return fn(parts)
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(fn(parts))
            except BaseException as exc:
                fut.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return fut.result()

    def _assign(self, parts: set[int]) -> None:
        """Take partitions over: their state from the changelog, their alerts into the groups, their
        pending notifications into delivery."""
        fresh = parts - self.partitions
        self.changelog.restore(self.settings, fresh)  # raises when it cannot: no running on part of the state
        self.partitions = self.partitions | fresh  # replaced, not changed in place: health() reads it from another thread
        self._reload_engine()
        self.dispatcher.reload_nflog()
        for rec in self.engine.alerts.values():
            if self.store.partition_of(rec) in fresh:
                self.dispatcher.insert(rec)
        if self._dm is not None:
            for item in self.store.pending_outbox(fresh):
                self._dm.submit(item)
        log.info("alerter holds partitions %s (restored %s)", sorted(self.partitions), sorted(fresh))

    def _revoke(self, parts: set[int]) -> bool:
        """Hand partitions over: stop their deliveries, confirm everything written in the changelog, drop
        their state locally. Returns whether the changelog confirmed (the offsets may then be committed)."""
        if self._dm is not None:
            self._dm.cancel_partitions(parts)
            self._dm.flush_marks()
        ok = self.changelog.confirm(CHANGELOG_CONFIRM_S)
        if not ok:
            log.error("partitions %s revoked before the changelog confirmed their state: %s", sorted(parts),
                      self.changelog.stats.error)
        self.partitions = self.partitions - parts
        if not self._closing:
            self.store.drop_partitions(parts)
            self._reload_engine()
            self.dispatcher.drop_partitions(parts)
            # their pending notifications are in the changelog's outbox: the next holder sends them
            self._unsent = [(e, i) for e, i in self._unsent if i.part not in parts]
        self._commits = []  # positions of revoked partitions must not be committed later
        return ok

    # --- silences -----------------------------------------------------------------------------

    def _publish_silence(self, s: Silence) -> None:
        """Share a silence created or expired through this alerter's API (raises when Kafka refuses it)."""
        self.silence_publisher.publish(s)
        if self.silences is not None:
            self.silences.note(s)

    def _sync_silences(self) -> None:
        """Publish what other processes (the CLI, the main API) wrote into this data directory's store."""
        if self.silences is None:
            return
        for s in self.silences.unpublished():
            try:
                self._publish_silence(s)
            except Exception as exc:  # retried at the next sync
                log.warning("silence %s not published yet: %s", s.id, exc)
                return

    def _deadletter(self, m: Message, reason: str, path: str | None, schema: str = SNAPSHOT_SCHEMA) -> None:
        """Queue a dead letter for ``m`` (its own offset and bytes); produced with the batch's others."""
        payload_b64, reason = payload_fields(m.value(), reason)  # cut when it would not fit a record
        dl = DeadletterV1(
            event_id=deadletter_id("alerter", m.topic() or "", m.partition() or 0, m.offset() or 0), ts=now_ms(), stage="alerter", reason=reason, error_path=path,
            source_topic=m.topic(), source_partition=m.partition(), source_offset=m.offset(),
            expected_schema=schema,
            key_b64=base64.b64encode(key).decode() if (key := m.key()) else None,
            payload_b64=payload_b64,
        )
        where = f"{m.topic()}[{m.partition()}]@{m.offset()}"
        log.warning("dead-lettered %s: %s", where, reason)
        self._dl_batch.append(_DeadLetter((m.topic() or "").encode(), dl.model_dump_json().encode(), where))

    def _deliver(self, dls: list[_DeadLetter]) -> tuple[list[_DeadLetter], list[str]]:
        """Produce ``dls`` and wait for their delivery reports; returns the ones Kafka did not confirm
        (refused, or no report within ``DEADLETTER_CONFIRM_S``) and the errors. ``flush()`` alone
        says nothing about a message the broker refused: only its delivery report does."""
        reports: dict[int, str | None] = {}

        def report(i: int) -> Any:
            def cb(err: KafkaError | None, _msg: Any) -> None:
                reports[i] = None if err is None else str(err)
            return cb

        for i, dl in enumerate(dls):
            try:
                self._producer.produce(self.settings.deadletter_topic, dl.value, key=dl.key, on_delivery=report(i))
            except (BufferError, KafkaException) as exc:  # refused locally (queue full, too large, ...)
                reports[i] = f"{type(exc).__name__}: {exc}"
        self._producer.flush(DEADLETTER_CONFIRM_S)
        refused: list[_DeadLetter] = []
        errors: list[str] = []
        for i, dl in enumerate(dls):
            err = reports.get(i, f"no delivery report within {DEADLETTER_CONFIRM_S:.0f} s")
            if err is not None:
                refused.append(dl)
                errors.append(f"{dl.source}: {err}")
        return refused, errors

    def _hold(self, consumer: Consumer, refused: list[_DeadLetter], errors: list[str]) -> None:
        """Keep ``refused`` for a retry; pause reading and commit nothing until Kafka has them."""
        self._dl_held.extend(refused)
        self._dl_attempts += 1
        self.stats.deadletter_failures += len(refused)
        self.stats.deadletter_error = "; ".join(errors[:3])[:500]
        delay = min(DEADLETTER_RETRY_INITIAL_S * 2 ** (self._dl_attempts - 1), DEADLETTER_RETRY_MAX_S)
        self._dl_retry_at = time.monotonic() + delay
        self._sync_dl_stats()
        self._set_paused(consumer, True)
        log.error("%d dead letters not written (attempt %d), offsets not committed, retrying in %.1fs: %s",
                  len(self._dl_held), self._dl_attempts, delay, self.stats.deadletter_error)

    def _retry_deadletters(self, consumer: Consumer) -> None:
        """Produce the held dead letters again; once all are confirmed, commit and resume reading."""
        held, self._dl_held = self._dl_held, []
        refused, errors = self._deliver(held)
        self.stats.deadlettered += len(held) - len(refused)
        if refused:
            self._hold(consumer, refused, errors)
            return
        log.info("dead letters written after %d failed attempts; committing", self._dl_attempts)
        self._dl_attempts = 0
        self.stats.deadletter_error = None
        self._sync_dl_stats()
        self._commit_after(consumer, self.changelog.send())
        self._set_paused(consumer, False)

    def _set_paused(self, consumer: Consumer, paused: bool) -> None:
        if paused == self._paused:
            return
        parts = consumer.assignment()
        if parts:
            (consumer.pause if paused else consumer.resume)(parts)
        self._paused = paused

    def _sync_dl_stats(self) -> None:
        self.stats.deadletter_pending = len(self._dl_held)

    def health(self, errors: bool = True) -> dict[str, Any]:
        """The alerter's health (``GET /healthz``, without the error text: it is open to anyone):
        ``ok`` is False while a dead letter is not written."""
        st = self.stats
        pending = st.deadletter_pending
        return {
            "ok": pending == 0 and self.changelog.stats.error is None,
            "deadletters": {
                "ok": pending == 0, "pending": pending, "failures_total": st.deadletter_failures,
                "written_total": st.deadlettered,
                **({"error": st.deadletter_error if pending else None} if errors else {}),
            },
            "partitions": sorted(self.partitions),
            "changelog": {
                "ok": self.changelog.stats.error is None, "records_total": self.changelog.stats.records,
                "failures_total": self.changelog.stats.failures, "restored_total": self.changelog.stats.restored,
                "skipped_total": self.changelog.stats.skipped,
                **({"error": self.changelog.stats.error} if errors else {}),
            },
            "silences": {
                "records_total": self.silences.records if self.silences else 0,
                "skipped_total": self.silences.skipped if self.silences else 0,
            },
            "snapshots": st.snapshots,
            "detections": st.detections,
            "batches": st.batches,
        }

    def metrics_text(self) -> str:
        """The alerter's own series in the Prometheus text format (``GET /metrics``)."""
        from inferwatch.api.metrics import Exposition

        h = self.health()
        dl = h["deadletters"]
        e = Exposition()
        e.add("alerter_snapshots_total", h["snapshots"], kind="counter", help_="Snapshots the alerter evaluated")
        e.add("alerter_detections_total", h["detections"], kind="counter", help_="Detections the alerter evaluated")
        e.add("alerter_dead_letters_total", dl["written_total"], kind="counter",
              help_="Dead letters the alerter wrote (confirmed by Kafka)")
        e.add("alerter_deadletter_failures_total", dl["failures_total"], kind="counter",
              help_="Dead-letter deliveries Kafka refused or did not confirm (each attempt)")
        e.add("alerter_deadletters_pending", dl["pending"],
              help_="Dead letters not written yet; the offsets are not committed while above 0")
        e.add("alerter_partitions", len(h["partitions"]), help_="Input partitions this alerter holds the state of")
        e.add("alerter_changelog_records_total", h["changelog"]["records_total"], kind="counter",
              help_="State rows written to the changelog (confirmed by Kafka)")
        e.add("alerter_changelog_failures_total", h["changelog"]["failures_total"], kind="counter",
              help_="State rows Kafka refused or did not confirm (each attempt); offsets wait meanwhile")
        return e.text()

    def _record(self, attempt: AlertV1) -> None:
        self.stats.attempts += 1
        self._producer.produce(self.settings.alerts_topic, attempt.model_dump_json().encode(),
                               key=attempt.group_key.encode())
        self._producer.poll(0)

    def _start_http(self) -> None:
        from inferwatch.alerter.http import alerter_server

        # behind the main API's door: same token, body limits; refuses a public address without a token
        server = alerter_server(self.store, self.config.http.host, self.config.http.port, self.settings.api_token,
                                on_silence_change=self.dispatcher.invalidate_silences,
                                health=lambda: self.health(errors=False), metrics=self.metrics_text,
                                publish=self._publish_silence)
        self._http_server = server
        threading.Thread(target=server.run, name="alerter-http", daemon=True).start()
