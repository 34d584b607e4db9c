"""One processor worker's state and steps, between faust's agents and the pure :class:`ProcessorCore`.

Wire formats: reads ``prediction.v1`` / ``feedback.v1`` batches (:class:`RecordBatch`, raw JSON bytes),
writes ``metric_snapshot.v1`` JSON to the metrics topic and ``detection.v1`` JSON to the detections topic
(key: model name, both) and ``deadletter.v1`` JSON to the dead-letter topic (key: the source topic). A
batch's snapshots, detections and dead letters are all sent before the batch is acknowledged.

State and recovery. The core keeps the state of the models it serves in memory and writes every
change through to three faust tables (rocksdict stores with compacted changelogs). The in-memory
state is a cache of the tables' *active* partitions and is dropped whenever that set may change or
may disagree with the tables:

* at start-up and after every rebalance (partitions revoked or assigned: faust restores the tables of
  newly assigned partitions from their changelogs before any of their records reach an agent);
* after a failed try of a batch (the tables hold each window's last complete write, with its
  per-partition high-water offsets, so a retry skips exactly what the failed try already absorbed).

The next batch rebuilds it from the tables (:meth:`ProcessorWorker.core`), reading each active
partition's keys together with their values (:class:`inferwatch.processor.tables.TableMap`), and
remembers which partition each restored model lives in, so idle flushes and join expiry of restored
models write to the right partition even before new traffic of theirs arrives.

Failures: see :mod:`inferwatch.processor.failures` (retry, narrow down, dead-letter; never ack a
record that was not processed). Health: :mod:`inferwatch.processor.health`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from faust.streams import _current_event

from inferwatch.config import Settings
from inferwatch.processor.batching import RecordBatch
from inferwatch.processor.core.raw_events import Raw, Rejected
from inferwatch.processor.core.state_machine import Output, ProcessorCore
from inferwatch.processor.failures import FailurePolicy, Steps, process_batch
from inferwatch.processor.health import ProcessorHealth
from inferwatch.processor.reference import read_uploaded
from inferwatch.processor.settings import ProcessorSettings
from inferwatch.processor.tables import TableMap, model_of_key

log = logging.getLogger("inferwatch.processor")

#: The schema each batch topic's records must follow (named in dead letters).
SCHEMAS = {"p": "prediction.v1", "f": "feedback.v1"}


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


class ProcessorWorker:
    """The state of one faust worker of the processor and what its agents and timers do."""

    def __init__(self, settings: Settings, cfg: ProcessorSettings, tables: dict[str, Any], metrics: Any, dead: Any,
                 health: ProcessorHealth | None = None, detections: Any = None) -> None:
        self.settings = settings
        self.cfg = cfg
        self.maps = {name: TableMap(t) for name, t in tables.items()}
        self.metrics = metrics
        self.dead = dead
        self.detections = detections
        """The detections topic (``detection.v1``, key: model name); None only where no core detects (tests)."""
        self.health = health or ProcessorHealth()
        self.policy = FailurePolicy(attempts=cfg.failure_attempts, backoff_s=cfg.failure_backoff_s,
                                    max_backoff_s=max(cfg.failure_backoff_s, 30.0),
                                    bisect_budget=cfg.failure_bisect_budget)
        self._core: ProcessorCore | None = None
        self.uploaded: dict[str, bytes] | None = None
        """Uploaded reference profiles (``model@version``): read from the references topic once, then
        kept current by the app's reference follower, which every worker runs over the whole topic
        (tombstones withdraw a profile). Outlives core rebuilds."""
        self.last_event: dict[str, PartitionOf] = {}
        """Per model, the partition of its state: table writes made outside a batch (idle flush, join
        expiry) go there. Filled from the tables at every rebuild and by every batch."""

    # ---- the core and its lifecycle ---------------------------------------------------------------
    def core(self) -> ProcessorCore:
        """The core over the active partitions' tables, rebuilt from them when it was dropped."""
        if self._core is None:
            if self.uploaded is None:
                self.uploaded = read_uploaded(self.settings)
            m = self.maps
            fresh = ProcessorCore(self.cfg, m["windows"], m["joins"], m["meta"])
            fresh.uploaded = self.uploaded
            self.last_event = self._model_partitions()
            self._core = fresh
            self.health.rebuilt()
        return self._core

    @property
    def has_core(self) -> bool:
        """Whether the in-memory state is loaded (timers do nothing until a batch has loaded it)."""
        return self._core is not None

    def drop_core(self) -> None:
        """Forget the in-memory state: the next batch rebuilds it from the tables."""
        self._core = None

    def on_rebalance(self, assigned: list[int] | None = None) -> None:
        """Partitions were revoked or (``assigned``: the predictions partitions now held) assigned: the
        in-memory state may cover the wrong partitions."""
        self.health.rebalanced(assigned)
        self.drop_core()

    def _model_partitions(self) -> dict[str, PartitionOf]:
        """Which predictions partition each model with state in the active partitions lives in."""
        topic = self.settings.predictions_topic
        where: dict[str, PartitionOf] = {}
        for name, tmap in self.maps.items():
            for partition, key in tmap.partitioned_keys():
                model = model_of_key(name, key)
                if model is not None and partition >= 0 and model not in where:
                    where[model] = PartitionOf(topic, partition)
        return where

    # ---- batches --------------------------------------------------------------------------------
    async def handle(self, ev: Any, kind: str) -> None:
        """Process one batch event (a :class:`RecordBatch` of one partition) and send its outputs.

        Returns only when every record was processed or dead-lettered (see
        :mod:`inferwatch.processor.failures`); the agent acknowledges the event after that.
        """
        batch = ev.value
        if not isinstance(batch, RecordBatch):  # a lone message (its topic is not delivered in batches)
            m = ev.message
            batch = RecordBatch(m.topic, m.partition, [m.offset], [ev.key], [batch])
        n = len(batch)
        if not n:
            return

        def run(lo: int, hi: int) -> Output:
            part = batch if (lo, hi) == (0, n) else RecordBatch(
                batch.topic, batch.partition, batch.offsets[lo:hi], batch.keys[lo:hi], batch.values[lo:hi])
            c = self.core()
            with in_partition_of(ev):
                if kind == "p":  # the core's entry without a Raw object per message
                    return c.process_prediction_values(part.bytes_values(), part.topic, part.partition,
                                                       part.offsets, part.keys)
                return c.process_feedback(part.raws())

        def on_failure(exc: BaseException, consecutive: int) -> None:
            self.health.failed(exc, consecutive)
            self.drop_core()

        async def dead_letter(lo: int, hi: int, exc: BaseException, tries: int) -> None:
            reason = f"processing failed {tries} times: {type(exc).__name__}: {exc}"
            vals = batch.bytes_values()
            for i in range(lo, hi):
                raw = Raw(vals[i], batch.topic, batch.partition, batch.offsets[i], batch.keys[i])
                d = Rejected(raw, reason, SCHEMAS[kind]).to_deadletter()
                await self.dead.send(key=batch.topic.encode(), value=d.model_dump_json().encode())
            self.health.dead_lettered(hi - lo)

        await process_batch(n, Steps(run, self.publish, on_failure, dead_letter), self.policy)
        self.health.processed(n)
        where = PartitionOf(ev.message.topic, ev.message.partition)
        for k in set(batch.keys):
            if k:
                self.last_event[k.decode(errors="replace")] = where

    async def publish(self, out: Output) -> None:
        """Send snapshots, detections and invalid-input dead letters; a failure here stops the worker (raised).

        Called before the batch is acknowledged (:mod:`inferwatch.processor.failures`): a crash before the
        ack re-reads the batch, and the re-emitted detections carry the same deterministic event ids.
        """
        try:
            for s in out.snapshots:
                await self.metrics.send(key=s.model.encode(), value=s.model_dump_json().encode())
            if out.detections and self.detections is None:
                raise RuntimeError("the core emitted detections but the worker has no detections topic")
            for d in out.detections:
                await self.detections.send(key=d.model.encode(), value=d.model_dump_json().encode())
            for r in out.rejected:
                await self.dead.send(key=(r.raw.topic or "").encode(),
                                     value=r.to_deadletter().model_dump_json().encode())
        except Exception as exc:
            self.health.publish_failed(exc)
            raise
        if out.snapshots:
            log.info("emitted %d snapshots", len(out.snapshots))
        if out.detections:
            log.info("emitted %d detections", len(out.detections))

    # ---- references -----------------------------------------------------------------------------
    def reference_event(self, key: bytes | None, value: bytes | None) -> None:
        """A record of the references topic: install a profile, or withdraw it (a tombstone)."""
        if not key:
            return
        name = key.decode(errors="replace")
        if self.uploaded is None:
            return  # not loaded yet: the first core() reads the whole topic, this record included
        if value:
            self.uploaded[name] = value
            log.info("reference profile for %s installed", name)
        elif self.uploaded.pop(name, None) is not None:
            log.info("reference profile for %s withdrawn", name)

    # ---- timers ---------------------------------------------------------------------------------
    async def idle_flush(self) -> None:
        """Close the open windows of models idle for ``idle_flush_s``."""
        if self._core is None:
            return
        c = self._core
        for model in c.idle_models(time.monotonic()):
            ev = self.last_event.get(model)
            if ev is None:
                continue
            try:
                with in_partition_of(ev):
                    out = c.close_model(model)
            except Exception as exc:  # the state is suspect now: rebuild it from the tables
                self.health.failed(exc, 1)
                self.drop_core()
                log.exception("closing idle windows of %s failed; state will be rebuilt", model)
                return
            await self.publish(out)
            await asyncio.sleep(0)

    async def expire_joins(self) -> None:
        """Drop join entries older than the retention, one model at a time (in its partition)."""
        if self._core is None:
            return
        c = self._core
        n = 0
        for model in sorted(c.joinbook.models()):
            ev = self.last_event.get(model)
            if ev is None:
                continue
            try:
                with in_partition_of(ev):
                    n += c.expire_joins(models=[model])
            except Exception as exc:
                self.health.failed(exc, 1)
                self.drop_core()
                log.exception("expiring join entries of %s failed; state will be rebuilt", model)
                return
            await asyncio.sleep(0)
        if n:
            log.info("expired %d join entries older than %d s", n, self.cfg.join_retention_s)
