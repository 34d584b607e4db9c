"""Silences shared by every alerter through the compacted topic ``inferwatch.alerter-silences``.

Wire format: key = the silence id (UTF-8); value = JSON ``{"v": 1, "id", "matchers": [{"name",
"op", "value"}], "starts_at_ms", "ends_at_ms", "created_by", "comment", "created_at_ms"}``.

Every alerter reads the whole topic (:class:`SilenceFollower`, a global table) into its local
store, so a silence created or expired through any alerter's API (or the CLI) is honoured by all
of them. Copies converge whatever the order they are read in: a silence is only ever shortened
(expired), so merging keeps the earlier start and the earlier end
(:meth:`~inferwatch.alerter.lifecycle.state.AlertStore.merge_silence`).

Writers: the alerter's HTTP API publishes a silence before it answers (:class:`SilencePublisher`);
silences written into the local store by another process (``inferwatch silence add``, the main
API) are published by the alerter that owns that data directory (:meth:`SilenceFollower.unpublished`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inferwatch.alerter.errors import AlerterError, MatcherError
from inferwatch.alerter.lifecycle.state import AlertStore
from inferwatch.alerter.route.matchers import parse_matchers
from inferwatch.alerter.silence.silences import Silence
from inferwatch.config import Settings
from inferwatch.kafka import groups
from inferwatch.kafka.clientconf import base_config

log = logging.getLogger(__name__)

MAX_RECORD_BYTES = 1_048_576  # the HTTP API bounds a silence far below this


class SilenceRecordError(AlerterError, ValueError):
    """A record of the silences topic that does not decode."""


class SilencePublishError(AlerterError):
    """Kafka did not take a silence (it stays in the local store and is published again later)."""


class _MatcherIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    op: str
    value: str


class _SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    v: int = Field(1, ge=1, le=1)
    id: str = Field(min_length=1, max_length=128)
    matchers: list[_MatcherIn] = Field(min_length=1, max_length=64)
    starts_at_ms: int
    ends_at_ms: int
    created_by: str = Field(max_length=256)
    comment: str = Field("", max_length=4096)
    created_at_ms: int


def encode_silence(s: Silence) -> bytes:
    """The record value of ``s``."""
    return orjson.dumps({
        "v": 1, "id": s.id, "matchers": [m.as_dict() for m in s.matchers], "starts_at_ms": s.starts_at_ms,
        "ends_at_ms": s.ends_at_ms, "created_by": s.created_by, "comment": s.comment,
        "created_at_ms": s.created_at_ms,
    })


def decode_silence(key: bytes | None, value: bytes | None) -> Silence:
    """The silence a record carries; :class:`SilenceRecordError` when it is not one (or its key lies)."""
    if value is None:
        raise SilenceRecordError("tombstone")
    if len(value) > MAX_RECORD_BYTES:
        raise SilenceRecordError(f"record of {len(value)} bytes (at most {MAX_RECORD_BYTES})")
    try:
        raw = _SilenceIn.model_validate_json(value)
        matchers = parse_matchers([m.model_dump() for m in raw.matchers])
    except ValidationError as exc:
        e = exc.errors(include_url=False)[0]
        raise SilenceRecordError(f"field {'.'.join(str(x) for x in e['loc']) or '<value>'}: {e['msg']}") from None
    except MatcherError as exc:
        raise SilenceRecordError(f"matchers: {exc}") from None
    if key is not None and key != raw.id.encode():
        raise SilenceRecordError(f"silence {raw.id!r} under another key")
    return Silence(raw.id, matchers, raw.starts_at_ms, raw.ends_at_ms, raw.created_by, raw.comment, raw.created_at_ms)


class SilencePublisher:
    """Writes silences to the topic and waits for Kafka's confirmation."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        self._producer = Producer({**base_config(settings), "acks": "all", "enable.idempotence": True,
                                   "linger.ms": 0})
        self._lock = threading.Lock()  # the HTTP server's threads and the service loop publish

    def publish(self, s: Silence, timeout_s: float = 10.0) -> None:
        """Produce ``s`` and wait for its delivery report; :class:`SilencePublishError` otherwise."""
        result: list[str | None] = []

        def cb(err: KafkaError | None, _msg: Any) -> None:
            result.append(None if err is None else str(err))

        with self._lock:
            try:
                self._producer.produce(self.topic, encode_silence(s), key=s.id.encode(), on_delivery=cb)
            except (BufferError, KafkaException) as exc:
                raise SilencePublishError(f"silence {s.id}: {exc}") from None
            self._producer.flush(timeout_s)
        if not result:
            raise SilencePublishError(f"silence {s.id}: not confirmed by Kafka within {timeout_s:.0f} s")
        if result[0] is not None:
            raise SilencePublishError(f"silence {s.id}: {result[0]}")

    def close(self) -> None:
        """Close the producer."""
        self._producer.flush(5)
        self._producer.close()


class SilenceFollower:
    """Reads the whole silences topic into ``store``, then follows it in a thread.

    ``known`` holds, per silence id, the (start, end) the topic has: :meth:`unpublished` compares
    the local store with it to find what this data directory knows and the topic does not.
    """

    def __init__(self, settings: Settings, topic: str, store: AlertStore,
                 on_change: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.topic = topic
        self.store = store
        self.on_change = on_change
        self.known: dict[str, tuple[int, int]] = {}
        self.records = 0
        self.skipped = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer = Consumer({
            **base_config(settings), "group.id": groups.group_id(settings, groups.ALERTER_SILENCES),
            "enable.auto.commit": False, "enable.partition.eof": True, "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 50,
        })
        self._eof: set[int] = set()
        self._parts: list[int] = []

    def start(self, catch_up_s: float = 30.0) -> SilenceFollower:
        """Assign every partition from the beginning, read up to the end (at most ``catch_up_s``),
        then keep following in a daemon thread."""
        deadline = time.monotonic() + catch_up_s
        while True:
            try:
                t = self._consumer.list_topics(self.topic, timeout=10).topics.get(self.topic)
            except KafkaException as exc:
                t, problem = None, str(exc)
            else:
                problem = "no such topic" if t is None else str(t.error) if t.error is not None else ""
            if t is not None and t.error is None and t.partitions:
                break
            if time.monotonic() > deadline:  # a topic just created can lack a leader for a moment
                raise SilencePublishError(f"{self.topic}: {problem}; run `inferwatch topics apply`")
            time.sleep(0.5)
        self._parts = sorted(t.partitions)
        self._consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in self._parts])
        while len(self._eof) < len(self._parts) and time.monotonic() < deadline:
            self._poll(0.2)
        if len(self._eof) < len(self._parts):
            log.warning("silences topic not read to its end within %.0f s; following on", catch_up_s)
        self._thread = threading.Thread(target=self._run, name="alerter-silences", daemon=True)
        self._thread.start()
        return self

    def _poll(self, wait_s: float) -> None:
        changed = False
        for m in self._consumer.consume(500, wait_s):
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    self._eof.add(m.partition() or 0)
                else:
                    self.error = str(err)
                continue
            self.records += 1
            try:
                s = decode_silence(m.key(), m.value())
            except SilenceRecordError as exc:
                self.skipped += 1
                log.warning("%s[%d]@%d skipped: %s", self.topic, m.partition(), m.offset(), exc)
                continue
            self.note(s)
            changed = self.store.merge_silence(s) or changed
        if changed and self.on_change is not None:
            self.on_change()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._poll(0.5)
                self.error = None
            except Exception as exc:  # a bad moment of the broker must not end the following
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("following %s: %s", self.topic, exc)
                time.sleep(1.0)

    def note(self, s: Silence) -> None:
        """``s`` was just published (so :meth:`unpublished` does not offer it again before it is read back)."""
        prev = self.known.get(s.id)
        self.known[s.id] = (s.starts_at_ms, s.ends_at_ms) if prev is None else (
            min(prev[0], s.starts_at_ms), min(prev[1], s.ends_at_ms))

    def unpublished(self) -> list[Silence]:
        """Silences of the local store the topic does not have (or has with a later end)."""
        out = []
        for s in self.store.silences(include_expired=True):
            k = self.known.get(s.id)
            if k is None or s.starts_at_ms < k[0] or s.ends_at_ms < k[1]:
                out.append(s)
        return out

    def stop(self) -> None:
        """Stop following and close the consumer."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._consumer.close()
