"""The faust app of the processor: thin agents around :class:`ProcessorCore`.

Wire formats: reads ``prediction.v1`` / ``feedback.v1`` JSON (raw bytes, decoded by the core with
msgspec), writes ``metric_snapshot.v1`` JSON to the metrics topic keyed by model name, and
``deadletter.v1`` JSON to the dead-letter topic keyed by the source topic.

State: three faust tables (rocksdict stores, compacted changelogs) hold the core's maps. A batch
from ``stream.take_events`` is split by source partition, and each part is processed with faust's
current event set to that partition's last event, so every table write lands in the store and
changelog partition of the models it belongs to (predictions and feedback are co-partitioned by
model). Snapshots are emitted before the window is deleted from the table; together with the
per-window source high-water offsets this gives the recovery guarantee in docs/processor.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import defaultdict
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import faust
import orjson
from faust.streams import _current_event
from faust.transport.drivers import aiokafka as faust_aiokafka

from inferwatch.config import Settings
from inferwatch.processor.config import ProcessorConfig
from inferwatch.processor.core.decode import Raw
from inferwatch.processor.core.engine import Output, ProcessorCore
from inferwatch.processor.topics import TABLES, app_id, references_topic

log = logging.getLogger("inferwatch.processor")


class TableMap(MutableMapping[str, bytes]):
    """A faust table seen as ``str -> bytes`` (raw serializers)."""

    def __init__(self, table: Any) -> None:
        self.t = table

    def __getitem__(self, k: str) -> bytes:
        return self.t[k]

    def __setitem__(self, k: str, v: bytes) -> None:
        self.t[k] = v

    def __delitem__(self, k: str) -> None:
        del self.t[k]

    def __iter__(self) -> Iterator[str]:
        for k in self.t:  # noqa: SIM118 - a faust table iterates like a dict
            yield k.decode() if isinstance(k, bytes) else k

    def __len__(self) -> int:
        return len(self.t)

    def get(self, k: str, default: Any = None) -> Any:  # type: ignore[override]
        v = self.t.get(k)
        return default if v is None else v

    def __contains__(self, k: object) -> bool:
        return self.t.get(k) is not None


@contextmanager
def in_partition_of(event: Any) -> Iterator[None]:
    """Make table writes go to ``event``'s partition (faust reads it from the current event)."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


class DirectConsumer(faust_aiokafka.Consumer):  # type: ignore[misc]
    """faust's aiokafka consumer, handing each fetched message to the conductor without new tasks.

    faust's ``Consumer._drain_messages`` wraps every message's delivery in ``Service.wait_first``
    (four ``ensure_future`` tasks and an ``asyncio.wait`` per message) so that a rebalance can
    interrupt a delivery blocked on flow control, a full stream queue or a full producer buffer.
    Here the delivery is awaited directly when none of these can block it (checked before each
    message); otherwise faust's own interruptible path is taken. Offsets, acks, gaps and commits
    are unchanged (the same code as faust 0.15.3's loop, plus the fast path).
    """

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - run by faust's Fetcher
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        suspended = self.suspend_flow.is_set
        flow_active = self.app.flow_control.is_active
        tp_index = self.app.topics._tp_index  # type: ignore[attr-defined]
        yield_every, num_since_yield = 100, 0
        sleep = asyncio.sleep
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag("FETCHING")
                ait = getmany(timeout=1.0)
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0
                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            if gap > 1 and r_offset and acks_enabled_for(message.topic):
                                await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None and self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                            # (a full producer buffer is flushed inside the callback: that ends by itself)
                            if not suspended() and flow_active() and not any(
                                    ch.queue.full() for ch in tp_index.get(tp, ())):
                                await callback(message)  # cannot block: no task needed
                            else:
                                await self.wait_first(callback(message), self.suspend_flow.wait())
                            set_read_offset(tp, offset)
                    unset_flag("FETCHING")
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        finally:
            unset_flag("FETCHING")


class DirectTransport(faust_aiokafka.Transport):  # type: ignore[misc]
    """faust's aiokafka transport with :class:`DirectConsumer`."""

    Consumer = DirectConsumer


class ProcessorApp(faust.App):  # type: ignore[misc]
    """A faust app with :class:`DirectTransport` and without faust's Monitor sensor.

    The Monitor keeps per-event statistics for faust's web views (off here: ``web_enabled=False``)
    and is called several times for every message; the processor's own metrics are its snapshots.
    """

    def _new_transport(self) -> Any:
        return DirectTransport(self.conf.broker_consumer, self)

    def _new_producer(self) -> Any:
        producer = super()._new_producer()
        buf = producer.buffer
        if not self.conf.producer_threaded:
            # The conductor awaits ``wait_until_ebb`` for every message; faust's reads a setting
            # (a slow attribute lookup) to find the queue each time. Same check, queue bound once.
            pending, slow = buf.pending, buf.wait_until_ebb

            async def wait_until_ebb() -> None:
                if pending.qsize() > buf.max_messages:
                    await slow()

            buf.wait_until_ebb = wait_until_ebb  # type: ignore[method-assign]
        return producer

    def on_init_dependencies(self) -> Any:
        deps = super().on_init_dependencies()
        self.sensors.remove(self.monitor)  # added by faust just above
        return deps


class RawSchema(faust.Schema):  # type: ignore[misc]
    """Key and value stay the message's bytes: the event is built without faust's codec registry.

    Same result as the ``raw`` serializers (bytes in, the same bytes out) without the per-message
    serializer lookups; events are decoded once, by the core (msgspec).
    """

    def compile(self, app: Any, *, on_key_decode_error: Any = None, on_value_decode_error: Any = None,
                default_propagate: bool = False) -> Any:
        event_cls = app.conf.Event

        async def decode(message: Any, *, propagate: bool = default_propagate) -> Any:
            return event_cls(app, message.key, message.value, message.headers, message)

        return decode


def build_app(settings: Settings, cfg: ProcessorConfig, batch_max: int = 5000, batch_within_s: float = 0.5) -> faust.App:
    """The processor app. Topics must exist (``ensure_topics``): faust's own declaration is off."""
    (settings.data_dir / "processor").mkdir(parents=True, exist_ok=True)
    app = ProcessorApp(
        app_id(settings),
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="rocksdb://",
        datadir=str(settings.data_dir / "processor"),
        topic_allow_declare=False,
        topic_disable_leader=True,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_commit_every=batch_max,
        broker_commit_interval=1.0,
        table_standby_replicas=0,
        producer_compression_type="lz4",
        # a window's state is one changelog value (atomic with its high-water offsets): allow big ones
        producer_max_request_size=16 * 1024 * 1024,
        producer_max_batch_size=1024 * 1024,
        producer_linger=0.02,
        # fetch and buffer whole batches: the agent takes up to batch_max events per call
        stream_buffer_maxsize=max(batch_max * 4, 4096),
        broker_max_poll_records=batch_max,
        consumer_max_fetch_size=16 * 1024 * 1024,
    )
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    preds = app.topic(settings.predictions_topic, schema=RawSchema(**raw))
    feed = app.topic(settings.feedback_topic, schema=RawSchema(**raw))
    metrics = app.topic(settings.metrics_topic, **raw)
    dead = app.topic(settings.deadletter_topic, **raw)
    refs = app.topic(references_topic(settings), **raw)
    from inferwatch.contract.topics import PREDICTIONS, load_registry

    parts = load_registry()[PREDICTIONS].partitions
    tables = {t: app.Table(t, partitions=parts, key_type=bytes, value_type=bytes) for t in TABLES}
    for tab in tables.values():  # raw bytes in the store and on the changelog
        tab.key_serializer = "raw"
        tab.value_serializer = "raw"
    maps = {t: TableMap(tab) for t, tab in tables.items()}
    state: dict[str, Any] = {"core": None, "last_event": {}}
    """``last_event``: per model, its latest event (predictions or feedback): table writes made
    outside a batch (idle flush, join expiry) go to that event's partition."""

    def core() -> ProcessorCore:
        if state["core"] is None:  # tables are recovered before the first batch reaches an agent
            fresh = ProcessorCore(cfg, maps["windows"], maps["joins"], maps["meta"])
            for k, v in _load_references(settings).items():
                fresh.uploaded[k] = v
            state["core"] = fresh
        current: ProcessorCore = state["core"]
        return current

    async def publish(out: Output) -> None:
        for s in out.snapshots:
            await metrics.send(key=s.model.encode(), value=s.model_dump_json().encode())
        for r in out.rejected:
            await dead.send(key=(r.raw.topic or "").encode(), value=r.to_deadletter().model_dump_json().encode())
        if out.snapshots:
            log.info("emitted %d snapshots", len(out.snapshots))

    async def handle(events: list[Any], kind: str) -> None:
        by_part: dict[int, list[Any]] = defaultdict(list)
        for ev in events:
            by_part[ev.message.partition].append(ev)
        c = core()
        for _part, evs in sorted(by_part.items()):
            raws = [Raw(e.value, e.message.topic, e.message.partition, e.message.offset, e.key) for e in evs]
            with in_partition_of(evs[-1]):
                out = c.process_predictions(raws) if kind == "p" else c.process_feedback(raws)
            for k in {r.key for r in raws}:
                if k:
                    state["last_event"][k.decode(errors="replace")] = evs[-1]
            await publish(out)

    @app.agent(preds)
    async def predictions(stream: Any) -> None:
        async for events in stream.take_events(batch_max, within=batch_within_s):
            await handle(list(events), "p")

    @app.agent(feed)
    async def feedback(stream: Any) -> None:
        async for events in stream.take_events(batch_max, within=batch_within_s):
            await handle(list(events), "f")

    @app.agent(refs)
    async def references(stream: Any) -> None:
        async for ev in stream.events():
            if ev.key and ev.value:
                core().uploaded[ev.key.decode()] = ev.value
                log.info("reference profile for %s installed", ev.key.decode())

    @app.timer(interval=max(0.5, min(5.0, cfg.idle_flush_s / 4)))
    async def idle_flush() -> None:
        if state["core"] is None:
            return
        c = state["core"]
        for model in c.idle_models(time.monotonic()):
            ev = state["last_event"].get(model)
            if ev is None:
                continue
            with in_partition_of(ev):
                out = c.close_model(model)
            await publish(out)
            await asyncio.sleep(0)

    @app.timer(interval=expiry_interval_s(cfg))
    async def expire_joins() -> None:
        if state["core"] is None:
            return
        c = state["core"]
        n = 0
        for model in sorted(c.joinbook.models()):
            ev = state["last_event"].get(model)
            if ev is None:  # no event of this model since the start: its partition is unknown yet
                continue
            with in_partition_of(ev):
                n += c.expire_joins(models=[model])
            await asyncio.sleep(0)
        if n:
            log.info("expired %d join entries older than %d s", n, cfg.join_retention_s)

    app.conf.processor_tables = tables  # type: ignore[attr-defined]
    return app


def expiry_interval_s(cfg: ProcessorConfig) -> float:
    """How often waiting join entries are swept: a tenth of the retention, between 5 s and 10 min."""
    return float(max(5.0, min(600.0, cfg.join_retention_s / 10)))


def _load_references(settings: Settings, timeout_s: float = 10.0) -> dict[str, bytes]:
    """Every uploaded profile on the compacted references topic (read from the start, no group)."""
    from confluent_kafka import Consumer, TopicPartition

    from inferwatch.kafka.clientconf import base_config

    c = Consumer({**base_config(settings), "group.id": "inferwatch-processor-refs", "enable.auto.commit": False})
    out: dict[str, bytes] = {}
    try:
        topic = references_topic(settings)
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=timeout_s)
        if hi <= lo:
            return out
        c.assign([TopicPartition(topic, 0, lo)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msgs = c.consume(1000, timeout=0.5)
            for m in msgs:
                key, value, offset = m.key(), m.value(), m.offset()
                if m.error() is None and key:
                    if value:
                        out[key.decode()] = value
                    else:  # a tombstone: the profile was withdrawn
                        out.pop(key.decode(), None)
                    if offset is not None and offset >= hi - 1:
                        return out
    finally:
        c.close()
    return out


def run_worker(settings: Settings, cfg: ProcessorConfig) -> None:
    """Create the topics, then run one faust worker in the foreground until SIGTERM/SIGINT."""
    from inferwatch.processor.topics import ensure_topics

    ensure_topics(settings, cfg)
    try:  # uvloop (the ``platform`` extra) when installed: a cheaper event loop per message
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - plain asyncio works the same, slower
        pass
    app = build_app(settings, cfg)
    worker = faust.Worker(app, loglevel="INFO", quiet=True)
    worker.execute_from_commandline()


def encode_snapshot(s: Any) -> bytes:
    """JSON bytes of a snapshot (used by tools replaying the core outside faust)."""
    return orjson.dumps(s.model_dump())
