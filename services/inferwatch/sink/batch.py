"""Turn the buffered messages of one topic-partition into an insert batch and dead letters (pure).

Every message ends up somewhere: a valid event becomes a row; an undecodable or invalid one becomes
a ``deadletter.v1`` event (stage ``sink``) for the dead-letter topic. A bad message read from the
dead-letter topic itself is written straight into the ``deadletter`` table instead, so that a bad
dead letter never loops through Kafka.
"""

from __future__ import annotations

import base64
import gc
import logging
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import methodcaller
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
from confluent_kafka import Message

from inferwatch.contract.events import DeadletterV1
from inferwatch.contract.limits import deadletter_id
from inferwatch.deadletters import payload_fields
from inferwatch.native.prediction_columns import decode_predictions
from inferwatch.sink import arrow_tables, prediction_table
from inferwatch.sink.contract_decode import Rejected, decode_many

log = logging.getLogger(__name__)

_VALUE = methodcaller("value")
_OFFSET = methodcaller("offset")


class MessageLike(Protocol):
    """What the sink reads of a Kafka message: ``confluent_kafka.Message`` or :class:`RawMessage`."""

    def offset(self) -> int: ...  # noqa: D102
    def key(self) -> bytes | None: ...  # noqa: D102
    def value(self) -> bytes | None: ...  # noqa: D102


class RawMessage:
    """A message built by hand (tests, replays), with the accessors of ``confluent_kafka.Message``."""

    __slots__ = ("_key", "_offset", "_value")

    def __init__(self, offset: int, key: bytes | None, value: bytes | None) -> None:
        self._offset, self._key, self._value = offset, key, value

    def offset(self) -> int:
        """The message's offset in its partition."""
        return self._offset

    def key(self) -> bytes | None:
        """The message key."""
        return self._key

    def value(self) -> bytes | None:
        """The message value (the event's JSON bytes)."""
        return self._value


@dataclass
class PartitionBatch:
    """The outcome of one topic-partition's buffered messages."""

    topic: str
    partition: int
    first_offset: int
    last_offset: int
    table: str
    rows: pa.Table | None
    dead_letters: list[DeadletterV1] = field(default_factory=list)

    @property
    def dedup_token(self) -> str:
        """``topic-partition-first_offset-last_offset-digest``: a replay of the same messages is dropped
        by the store. ``digest`` (CRC32 of the first and last rows' event ids) tells apart the same
        offsets of a topic deleted and re-created: its new batches must not be dropped as replays."""
        base = f"{self.topic}-{self.partition}-{self.first_offset}-{self.last_offset}"
        if self.rows is None or not self.rows.num_rows or "event_id" not in self.rows.column_names:
            return base
        ids = self.rows.column("event_id")
        digest = zlib.crc32(f"{ids[0].as_py()}\x00{ids[-1].as_py()}".encode())
        return f"{base}-{digest:08x}"


def dead_letter(
    schema: str, topic: str, partition: int, msg: MessageLike, rej: Rejected, now_ms: int | None = None
) -> DeadletterV1:
    """A ``deadletter.v1`` for ``msg``; its id is derived from the message's coordinates so that a
    replay after a crash produces the same dead letter (the table keeps one). A payload too large to
    fit a Kafka record once in base64 is cut, and the reason says so (:mod:`inferwatch.deadletters`)."""
    key = msg.key()
    payload_b64, reason = payload_fields(msg.value(), rej.reason)
    return DeadletterV1(
        event_id=deadletter_id("sink", topic, partition, msg.offset()),
        ts=now_ms if now_ms is not None else int(time.time() * 1000),
        stage="sink",
        reason=reason,
        error_path=(rej.error_path or None) and rej.error_path[:512],  # type: ignore[arg-type]
        source_topic=topic,
        source_partition=partition,
        source_offset=msg.offset(),
        expected_schema=schema,
        key_b64=base64.b64encode(key).decode() if key is not None else None,
        payload_b64=payload_b64,
    )


def _build(schema: str, topic: str, partition: int, good: list[Any], offsets: list[int],
           msgs: list[MessageLike], on_bad: Any) -> pa.Table | None:
    """The Arrow rows of ``good``. A value the contract accepts but the table cannot hold (an integer
    beyond Float64/UInt32) fails the whole batch's conversion; then the rows are built one by one and
    the events that cannot be stored become dead letters (``on_bad``), so the batch still goes on."""
    if not good:
        return None
    try:
        return arrow_tables.build(schema, good, arrow_tables.Kafka(topic, partition, offsets))[1]
    except (pa.ArrowException, OverflowError, ValueError, TypeError) as exc:
        log.warning("%s[%d]: a batch did not convert (%s); isolating the offending events", topic, partition, exc)
    parts: list[pa.Table] = []
    # Copies: ``on_bad`` may append to ``good`` (bad dead letters are stored as rows).
    for ev, off, m in list(zip(good, offsets, msgs, strict=True)):
        try:
            parts.append(arrow_tables.build(schema, [ev], arrow_tables.Kafka(topic, partition, [off]))[1])
        except (pa.ArrowException, OverflowError, ValueError, TypeError) as exc:
            on_bad(m, Rejected(f"{schema}: valid, but cannot be stored: {exc}"))
    return pa.concat_tables(parts) if parts else None


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while a batch is decoded: the batch allocates ~10 containers per event, which
    would trigger many collections walking every live object (10-20% of the decode time), and it
    creates no cycles. Collections resume, with whatever is pending, when the batch is done."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def process(schema: str, topic: str, partition: int, msgs: Sequence[MessageLike]) -> PartitionBatch:
    """Decode ``msgs`` (one topic-partition, offset order) as ``schema``; build the rows and dead letters."""
    table = arrow_tables.BUILDERS[schema][0]
    with _gc_paused():
        if schema == "prediction.v1":
            rows, dls = _predictions(topic, partition, msgs)
        else:
            rows, dls = _exact(schema, topic, partition, msgs)
    return PartitionBatch(topic, partition, msgs[0].offset(), msgs[-1].offset(), table, rows, dls)


def _predictions(topic: str, partition: int, msgs: Sequence[MessageLike]) -> tuple[pa.Table | None, list[DeadletterV1]]:
    """``prediction.v1`` rows: the flat fast path for every message it accepts, the exact path for the rest.

    The fast decoder accepts a message only when the contract does and decodes it to the same values
    (see :mod:`inferwatch.native.prediction_columns`); the messages it refuses — invalid ones, and valid
    ones it leaves alone (embedding, LLM, lineage blocks) — go through :func:`_exact`, which
    decodes them like before and gives the dead letters their reasons. Rows keep message order.
    """
    n = len(msgs)
    cols = decode_predictions(_values(msgs))
    offsets = _offsets(msgs)
    ok = cols.ok
    n_ok = int(np.count_nonzero(ok))
    if n_ok == n:  # the common case
        return prediction_table.predictions(cols, topic, partition, offsets), []
    refused = np.flatnonzero(~ok)
    slow, dls = _exact("prediction.v1", topic, partition, [msgs[i] for i in refused.tolist()])
    if n_ok == 0:
        return slow, dls
    fast = prediction_table.predictions(cols, topic, partition, offsets)  # every message; refused rows are empty
    if slow is None or not slow.num_rows:
        return fast.filter(pa.array(ok)), dls
    # Rows in message (= offset) order: the fast path's accepted rows and the exact path's rows.
    idx = np.concatenate([np.flatnonzero(ok), n + np.arange(slow.num_rows)])
    key = np.concatenate([offsets[ok], slow.column("kafka_offset").to_numpy().astype(np.int64)])
    return pa.concat_tables([fast, slow]).take(pa.array(idx[np.argsort(key, kind="stable")])), dls


def _values(msgs: Sequence[MessageLike]) -> list[bytes | None]:
    """Every message's value. The unbound ``Message.value`` costs a third of a ``methodcaller``
    (~40 vs ~140 ns a message); other message types (tests, replays) take the generic way."""
    if type(msgs[0]) is Message:
        try:
            return list(map(Message.value, msgs))  # type: ignore[arg-type]
        except TypeError:  # not all of them are confluent-kafka messages
            pass
    return list(map(_VALUE, msgs))


def _offsets(msgs: Sequence[MessageLike]) -> np.ndarray:
    """The messages' offsets (int64). They strictly increase within a partition, so when the first and
    last are ``n - 1`` apart they are exactly first..last, with no call per message (the usual case:
    gaps come only from compaction or transaction markers)."""
    n = len(msgs)
    first, last = msgs[0].offset(), msgs[-1].offset()
    if last - first == n - 1:
        return np.arange(first, last + 1, dtype=np.int64)
    return np.fromiter(map(_OFFSET, msgs), np.int64, n)


def _exact(schema: str, topic: str, partition: int,
           msgs: Sequence[MessageLike]) -> tuple[pa.Table | None, list[DeadletterV1]]:
    """The exact path: decode each message as ``schema`` (msgspec structs, else the pydantic model,
    which also says why a message is refused), build the rows of the valid ones from the events."""
    good: list[Any] = []
    good_offsets: list[int] = []
    good_msgs: list[MessageLike] = []
    dls: list[DeadletterV1] = []
    is_dl_topic = schema == "deadletter.v1"
    now_ms = int(time.time() * 1000)

    def reject(m: MessageLike, rej: Rejected) -> None:
        dl = dead_letter(schema, topic, partition, m, rej, now_ms)
        if is_dl_topic:
            # A bad dead letter is stored as its own dead letter, never sent around through Kafka again.
            good.append(dl)
            good_offsets.append(m.offset())
            good_msgs.append(m)
        else:
            dls.append(dl)

    decoded = decode_many(schema, list(map(_VALUE, msgs)))
    if not any(type(ev) is Rejected for ev in decoded):  # the common case: one pass, no branches
        good = decoded
        good_offsets = list(map(_OFFSET, msgs))
        good_msgs = list(msgs)
    else:
        for m, ev in zip(msgs, decoded, strict=True):
            if type(ev) is Rejected:
                reject(m, ev)
            else:
                good.append(ev)
                good_offsets.append(m.offset())
                good_msgs.append(m)
    n_good = len(good)
    rows = _build(schema, topic, partition, good, good_offsets, good_msgs, reject)
    if is_dl_topic and len(good) > n_good:
        # Dead letters added while isolating unconvertible rows: build those too (deadletter rows always convert).
        extra = arrow_tables.build(schema, good[n_good:], arrow_tables.Kafka(topic, partition, good_offsets[n_good:]))[1]
        rows = extra if rows is None else pa.concat_tables([rows, extra])
    return rows, dls
