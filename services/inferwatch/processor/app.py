"""The faust app of the processor: thin agents around :class:`ProcessorCore`.

Wire formats: reads ``prediction.v1`` / ``feedback.v1`` JSON (raw bytes, decoded by the core with
msgspec), writes ``metric_snapshot.v1`` JSON to the metrics topic keyed by model name, and
``deadletter.v1`` JSON to the dead-letter topic keyed by the source topic.

Batches: the consumer (:mod:`inferwatch.processor.batching`) delivers each fetched run of records of
one predictions/feedback partition as one event whose value is a ``RecordBatch``; the agent hands
it to the core whole. State: three faust tables (rocksdict stores, compacted changelogs) hold the
core's maps. A batch is processed with faust's current event set to the batch's event, so every
table write lands in the store and changelog partition of the models it belongs to (predictions
and feedback are co-partitioned by model). Snapshots are emitted before the window is deleted from the table; together with the
per-window source high-water offsets this gives the recovery guarantee in docs/processor.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import faust
import orjson
from faust.streams import _current_event

from inferwatch.config import Settings
from inferwatch.processor.batching import BatchingTransport, RecordBatch
from inferwatch.processor.config import ProcessorConfig
from inferwatch.processor.core.engine import Output, ProcessorCore
from inferwatch.processor.topics import TABLES, app_id, references_topic

log = logging.getLogger("inferwatch.processor")

#: Batch events buffered per input stream (each up to ``batch_max`` records).
BATCH_QUEUE = 4


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


class _Where:
    __slots__ = ("topic", "partition")

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition


class PartitionOf:
    """Stands for an event of ``topic``/``partition`` where faust's tables only need its partition.

    Kept per model instead of the batch event itself, which would hold the batch's bytes alive.
    """

    __slots__ = ("message", "__weakref__")

    def __init__(self, topic: str, partition: int) -> None:
        self.message = _Where(topic, partition)


@contextmanager
def in_partition_of(event: Any) -> Iterator[None]:
    """Make table writes go to ``event``'s partition (faust reads it from the current event)."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


class ProcessorApp(faust.App):  # type: ignore[misc]
    """A faust app with :class:`BatchingTransport` and without faust's Monitor sensor.

    The Monitor keeps per-event statistics for faust's web views (off here: ``web_enabled=False``)
    and is called several times for every message; the processor's own metrics are its snapshots.
    """

    #: Topics whose fetched records reach the agents as one :class:`RecordBatch` event per fetch.
    batch_topics: frozenset[str] = frozenset()
    #: The broker's longest wait for data on a fetch (see ``ShortWaitConsumerThread``).
    fetch_max_wait_ms: int | None = None

    def _new_transport(self) -> Any:
        return BatchingTransport(self.conf.broker_consumer, self)

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


def build_app(settings: Settings, cfg: ProcessorConfig, batch_max: int | None = None) -> faust.App:
    """The processor app. Topics must exist (``ensure_topics``): faust's own declaration is off.

    ``batch_max``: most records per batch event (aiokafka's ``max_poll_records``; default
    ``cfg.batch_max_records``).
    """
    if batch_max is None:
        batch_max = cfg.batch_max_records
    from inferwatch.kafka.clientconf import faust_credentials

    (settings.data_dir / "processor").mkdir(parents=True, exist_ok=True)
    app = ProcessorApp(
        app_id(settings),
        broker=f"kafka://{settings.kafka_bootstrap}",
        # INFERWATCH_KAFKA_SECURITY, translated for aiokafka: every consumer and producer of the app
        broker_credentials=faust_credentials(settings),
        store="rocksdb://",
        datadir=str(settings.data_dir / "processor"),
        topic_allow_declare=False,
        topic_disable_leader=True,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        # acks count batch events now: commit every few batches (and at least every second)
        broker_commit_every=4,
        broker_commit_interval=1.0,
        table_standby_replicas=0,
        producer_compression_type="zstd",
        # a window's state is one changelog value (atomic with its high-water offsets): allow big ones
        producer_max_request_size=16 * 1024 * 1024,
        producer_max_batch_size=1024 * 1024,
        producer_linger=0.02,
        # a batch event holds up to batch_max records of one partition
        broker_max_poll_records=batch_max,
        consumer_max_fetch_size=16 * 1024 * 1024,
    )
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    # Their queues hold batch events: a few batches of read-ahead per stream bound the memory.
    preds = app.topic(settings.predictions_topic, schema=RawSchema(**raw), maxsize=BATCH_QUEUE)
    feed = app.topic(settings.feedback_topic, schema=RawSchema(**raw), maxsize=BATCH_QUEUE)
    app.batch_topics = frozenset({settings.predictions_topic, settings.feedback_topic})
    app.fetch_max_wait_ms = cfg.fetch_max_wait_ms
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
    """``last_event``: per model, the partition of its latest batch (predictions or feedback): table
    writes made outside a batch (idle flush, join expiry) go to that partition."""

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

    async def handle(ev: Any, kind: str) -> None:
        """Process one batch event (a :class:`RecordBatch` of one partition) and send its outputs."""
        batch = ev.value
        if not isinstance(batch, RecordBatch):  # a lone message (its topic is not delivered in batches)
            m = ev.message
            batch = RecordBatch(m.topic, m.partition, [m.offset], [ev.key], [batch])
        if not len(batch):
            return
        keys = set(batch.keys)
        c = core()
        with in_partition_of(ev):
            if kind == "p":  # the core's entry without a Raw object per message
                out = c.process_prediction_values(batch.bytes_values(), batch.topic, batch.partition, batch.offsets,
                                                  batch.keys)
            else:
                out = c.process_feedback(batch.raws())
        where = PartitionOf(ev.message.topic, ev.message.partition)
        for k in keys:
            if k:
                state["last_event"][k.decode(errors="replace")] = where
        await publish(out)

    # One event is one fetched batch of one partition (BatchingConsumer); the stream acks it when
    # the agent asks for the next one, i.e. after its table writes and sends.
    @app.agent(preds)
    async def predictions(stream: Any) -> None:
        async for ev in stream.events():
            await handle(ev, "p")

    @app.agent(feed)
    async def feedback(stream: Any) -> None:
        async for ev in stream.events():
            await handle(ev, "f")

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


#: Allocations between two young-generation collections of the cyclic GC in a worker (CPython's default: 700).
GC_THRESHOLD0 = 100_000


def _tune_gc() -> None:
    """Fewer cyclic-GC passes in the worker process: a batch allocates ~10 container objects per
    record (parsed records, lists, the core's join records) that live until the batch is done, so at
    CPython's 700 each batch ran dozens of young collections, and every survivor was scanned again in
    the older generations (~1 µs per event in all, measured with ``gc.callbacks``). With a larger
    first threshold most of a batch's garbage is freed by reference counting before a collection
    sees it. Objects alive at start-up (modules, faust's app) are frozen out of every collection.
    Cycles are still collected; only later.
    """
    import gc

    gc.collect()
    gc.freeze()
    _, t1, t2 = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD0, t1, t2)


def run_worker(settings: Settings, cfg: ProcessorConfig) -> None:
    """Create the topics, then run one faust worker in the foreground until SIGTERM/SIGINT."""
    from inferwatch.processor.topics import ensure_topics

    ensure_topics(settings, cfg)
    try:  # uvloop (the ``platform`` extra) when installed: a cheaper event loop per message
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - plain asyncio works the same, slower
        pass
    _tune_gc()
    app = build_app(settings, cfg)
    worker = faust.Worker(app, loglevel="INFO", quiet=True)
    worker.execute_from_commandline()


def encode_snapshot(s: Any) -> bytes:
    """JSON bytes of a snapshot (used by tools replaying the core outside faust)."""
    return orjson.dumps(s.model_dump())
