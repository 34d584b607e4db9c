"""The replayer: delivers a transport's spooled events once Kafka takes them again.

One thread per transport (so one per process and settings, whatever the number of loggers). It
owns a second producer with full delivery reports, created when there is first something to
replay. It reads the spool from its cursor in order, produces a batch, waits for every report,
and moves the cursor past the longest delivered prefix. Records of the batch delivered beyond
that prefix are remembered (segment and offset) and skipped when the batch is read again, so a
partly failed batch (one partition's leader late after a restart, say) is not delivered twice by
this process. A failure means the broker is still away: it backs off and probes again with a
single record, growing the batch as deliveries succeed. At start-up it first adopts spools that
a dead process left in the same directory.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException, Producer

from inferwatch.sdk.spool import Batch, Spool, adoptable_spools

if TYPE_CHECKING:
    from inferwatch.sdk.transport import Transport

log = logging.getLogger("inferwatch.sdk")

PERMANENT = frozenset({
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.INVALID_RECORD,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    KafkaError.TOPIC_EXCEPTION,
    KafkaError._INVALID_ARG,
})
_KINDS = (0, 1)  # KIND_PREDICTION, KIND_FEEDBACK


class Replayer(threading.Thread):
    """Replays spooled records in order once the broker takes them again (see the module docstring)."""

    MAX_BATCH = 5000
    MAX_BACKOFF_S = 5.0

    def __init__(self, transport: Transport, spool: Spool, root: Path | None) -> None:
        super().__init__(name="inferwatch-sdk-replay", daemon=True)
        self.t = transport
        self.own = spool
        self.root = root
        self._stop_ev = threading.Event()
        self._producer: Producer | None = None
        self._batch = 1
        self._backoff = 0.5
        # (id(spool), segment, end offset) of records delivered beyond the committed prefix.
        self._done: set[tuple[int, int, int]] = set()

    def stop(self, timeout_s: float) -> None:
        """Stop after the current wait; undelivered records stay in the spool."""
        self._stop_ev.set()
        self.t.wake.set()
        self.join(timeout_s)

    def run(self) -> None:
        try:
            orphans = adoptable_spools(self.root, self.own) if self.root is not None else []
        except OSError as exc:
            log.warning("inferwatch: cannot scan %s for orphaned spools: %s", self.root, exc)
            orphans = []
        try:
            while not self._stop_ev.is_set():
                for sp in list(orphans):
                    if self._drain(sp):
                        orphans.remove(sp)
                        self._retire(sp)
                ok = self._drain(self.own)
                if self._stop_ev.is_set():
                    break
                if ok and not orphans:
                    self.t.health.spool_drained(self.t.c.replayed)
                    self.t.wake.wait(1.0)
                    self.t.wake.clear()
                else:
                    self._stop_ev.wait(self._backoff)
                    self._backoff = min(self.MAX_BACKOFF_S, self._backoff * 2)
        except Exception:  # never let the thread die silently: the spool would stop draining
            log.exception("inferwatch: spool replayer crashed; spooled events stay on disk for the next start")
        finally:
            for sp in orphans:
                sp.close()
            if self._producer is not None:
                self._producer.purge(in_queue=True, in_flight=True, blocking=False)
                self._producer.poll(0)

    def _retire(self, sp: Spool) -> None:
        sp.close()
        if sp.directory.name.startswith("w-"):
            for p in sp.directory.iterdir():
                p.unlink(missing_ok=True)
            sp.directory.rmdir()

    def _get_producer(self) -> Producer:
        if self._producer is None:
            conf = dict(self.t.replay_conf)
            conf["error_cb"] = lambda err: None  # the main producer already reports transport trouble
            self._producer = Producer(conf)
        return self._producer

    def _drain(self, sp: Spool) -> bool:
        """Replay ``sp`` until it is empty (True) or a delivery fails / we are stopped (False)."""
        while not self._stop_ev.is_set():
            batch = sp.read_batch(max_records=self._batch)
            if batch.corrupt:
                self.t.c.add("corrupt_skipped", batch.corrupt)
            if not batch.records:
                sp.commit(batch.segment, batch.end)
                if not sp.has_pending():
                    return True
                continue
            delivered = self._replay(sp, batch)
            if delivered == len(batch.records):
                sp.commit(batch.segment, batch.end)
                self._forget(sp, batch.segment, batch.end)
                self._batch = min(self.MAX_BATCH, self._batch * 4)
                self._backoff = 0.5
                if self.t.health.down:
                    self.t.health.probe_ok()  # a delivery is the best evidence that Kafka is back
            else:
                if delivered:
                    sp.commit(batch.segment, batch.ends[delivered - 1])
                    self._forget(sp, batch.segment, batch.ends[delivered - 1])
                self._batch = 1
                return False
        return False

    def _forget(self, sp: Spool, segment: int, end: int) -> None:
        if self._done:
            me = id(sp)
            self._done = {d for d in self._done if d[0] != me or (d[1], d[2]) > (segment, end)}

    def _replay(self, sp: Spool, batch: Batch) -> int:
        """Produce the batch and wait for its reports; return the length of the delivered prefix.

        ``results[i]``: 0 no report yet, 1 delivered now, 2 settled without a delivery now (done
        by an earlier attempt, corrupt, refused for good), -1 failed.
        """
        prod = self._get_producer()
        results = [0] * len(batch.records)
        topics = self.t.topics
        me = id(sp)
        for i, rec in enumerate(batch.records):
            if (me, batch.segment, batch.ends[i]) in self._done:
                results[i] = 2  # delivered by an earlier attempt of this batch
                continue
            if rec.kind not in _KINDS:
                self.t.c.add("corrupt_skipped")
                results[i] = 2
                continue
            cb = functools.partial(self._report, results, i)
            while True:
                try:
                    prod.produce(topics[rec.kind], rec.value, rec.key, on_delivery=cb)
                    break
                except BufferError:
                    prod.poll(0.1)
                    if self._stop_ev.is_set():
                        return 0
                except KafkaException:
                    results[i] = 2  # refused for good
                    self.t.c.add("dropped")
                    break
        timeout = self.t.replay_conf.get("message.timeout.ms", 10_000) / 1000 + 5
        deadline = time.monotonic() + timeout
        while len(prod) and time.monotonic() < deadline and not self._stop_ev.is_set():
            prod.poll(0.1)
        prefix = 0
        for r in results:
            if r <= 0:
                break
            prefix += 1
        for i in range(prefix, len(results)):
            if results[i] > 0:
                self._done.add((me, batch.segment, batch.ends[i]))
        self.t.c.add("replayed", results.count(1))
        return prefix

    def _report(self, results: list[int], i: int, err: KafkaError | None, msg: Any) -> None:
        if err is None:
            results[i] = 1
        elif err.code() in PERMANENT:
            results[i] = 2  # skip a poison record rather than block the spool forever
            self.t.c.add("dropped")
        else:
            results[i] = -1
