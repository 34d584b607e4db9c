"""The faust app of the processor: thin agents around :class:`ProcessorCore`.

Wire formats: reads ``prediction.v1`` / ``feedback.v1`` JSON (raw bytes, decoded by the core with
msgspec), writes ``metric_snapshot.v1`` JSON to the metrics topic and ``detection.v1`` JSON to the
detections topic, both keyed by model name, and ``deadletter.v1`` JSON to the dead-letter topic keyed
by the source topic.

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
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import faust
import orjson

from inferwatch.config import Settings
from inferwatch.processor.batching import BatchingTransport
from inferwatch.processor.reference import ReferenceFollower
from inferwatch.processor.settings import ProcessorSettings
from inferwatch.processor.tables import TableMap  # noqa: F401 - re-exported
from inferwatch.processor.topics import TABLES, app_id
from inferwatch.processor.worker import PartitionOf, ProcessorWorker, in_partition_of  # noqa: F401 - re-exported

log = logging.getLogger("inferwatch.processor")

#: Batch events buffered per input stream (each up to ``batch_max`` records).
BATCH_QUEUE = 4


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


def build_app(settings: Settings, cfg: ProcessorSettings, batch_max: int | None = None) -> faust.App:
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
        producer_acks=-1,  # all in-sync replicas (min.insync.replicas 2 on a cluster): a lost broker loses no state
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
    detections = app.topic(settings.detections_topic, **raw)
    from inferwatch.contract.topics import PREDICTIONS, load_registry

    parts = load_registry()[PREDICTIONS].partitions
    tables = {t: app.Table(t, partitions=parts, key_type=bytes, value_type=bytes) for t in TABLES}
    for tab in tables.values():  # raw bytes in the store and on the changelog
        tab.key_serializer = "raw"
        tab.value_serializer = "raw"
    worker = ProcessorWorker(settings, cfg, tables, metrics, dead, detections=detections)
    app.processor_worker = worker

    # The in-memory state covers the active partitions: drop it whenever they change. faust restores
    # newly assigned partitions' tables before their records reach the agents; the next batch rebuilds.
    async def on_revoked(sender: Any, revoked: Any = (), **kwargs: Any) -> None:
        worker.on_rebalance()

    async def on_assigned(sender: Any, assigned: Any = (), **kwargs: Any) -> None:
        worker.on_rebalance(assigned=[tp.partition for tp in assigned if tp.topic == settings.predictions_topic])

    app.on_partitions_revoked.connect(on_revoked)
    app.on_partitions_assigned.connect(on_assigned)
    app._inferwatch_receivers = (on_revoked, on_assigned)  # strong references (signals may hold weak ones)

    async def run_agent(stream: Any, kind: str) -> None:
        """Process every batch event, acknowledging it only after it was handled (see failures.py).

        Acks are manual: faust's stream iterator would ack an event in a ``finally`` even when the
        agent raises, committing records that were never processed. An exception that still
        escapes (a failure to publish outputs) stops the worker instead of skipping the batch.
        """
        stream.enable_acks = False
        try:
            async for ev in stream.events():
                await worker.handle(ev, kind)
                await stream.ack(ev)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.critical("the %s agent failed outside a batch's processing (%r): stopping the worker so that "
                         "the unacknowledged batch is read again after a restart", kind, exc)
            await app.crash(exc)
            raise

    # One event is one fetched batch of one partition (BatchingConsumer).
    @app.agent(preds)
    async def predictions(stream: Any) -> None:
        await run_agent(stream, "p")

    @app.agent(feed)
    async def feedback(stream: Any) -> None:
        await run_agent(stream, "f")

    # Every worker follows the whole references topic itself (see ReferenceFollower: an agent would
    # join the group, and only one worker would ever see a profile uploaded at run time). The
    # consumer's calls run on one thread of their own; the records are handled here, in the loop.
    @app.task
    async def follow_references() -> None:
        loop = asyncio.get_running_loop()
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inferwatch-references")
        follower = await loop.run_in_executor(pool, ReferenceFollower, settings)
        try:
            while True:
                for key, value in await loop.run_in_executor(pool, follower.poll, 0.5):
                    worker.reference_event(key, value)
        finally:
            pool.submit(follower.close)  # after a poll still running on that thread
            pool.shutdown(wait=False)

    @app.timer(interval=max(0.5, min(5.0, cfg.idle_flush_s / 4)))
    async def idle_flush() -> None:
        await worker.idle_flush()

    @app.timer(interval=expiry_interval_s(cfg))
    async def expire_joins() -> None:
        await worker.expire_joins()

    app.conf.processor_tables = tables  # type: ignore[attr-defined]
    return app


def expiry_interval_s(cfg: ProcessorSettings) -> float:
    """How often waiting join entries are swept: a tenth of the retention, between 5 s and 10 min."""
    return float(max(5.0, min(600.0, cfg.join_retention_s / 10)))


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


#: The faust release whose internals :mod:`inferwatch.processor.batching` and
#: :mod:`inferwatch.processor.tables` rely on (pinned in ``pyproject.toml``).
FAUST_VERSION = "0.15.3"


def check_faust() -> None:
    """Refuse to start on another faust release than the one the worker's faust internals were written for."""
    from importlib.metadata import version

    found = version("faust-streaming")
    if found != FAUST_VERSION:
        raise RuntimeError(
            f"the processor needs faust-streaming=={FAUST_VERSION} (found {found}): its batch consumer and table "
            f"access use faust internals of that release; install it with pip install 'faust-streaming=={FAUST_VERSION}'")


def run_worker(settings: Settings, cfg: ProcessorSettings) -> None:
    """Create the topics, then run one faust worker in the foreground until SIGTERM/SIGINT."""
    from inferwatch.processor.health import serve_health
    from inferwatch.processor.topics import ensure_topics

    check_faust()
    ensure_topics(settings, cfg)
    try:  # uvloop (the ``platform`` extra) when installed: a cheaper event loop per message
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - plain asyncio works the same, slower
        pass
    _tune_gc()
    app = build_app(settings, cfg)
    if cfg.health_port:
        serve_health(app.processor_worker.health, settings.api_host, cfg.health_port, settings.api_token)
    worker = faust.Worker(app, loglevel="INFO", quiet=True)
    worker.execute_from_commandline()


def encode_snapshot(s: Any) -> bytes:
    """JSON bytes of a snapshot (used by tools replaying the core outside faust)."""
    return orjson.dumps(s.model_dump())
