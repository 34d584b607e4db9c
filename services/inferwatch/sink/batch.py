"""Turn the buffered messages of one topic-partition into an insert batch and dead letters (pure).

Every message ends up somewhere: a valid event becomes a row; an undecodable or invalid one becomes
a ``deadletter.v1`` event (stage ``sink``) for the dead-letter topic. A bad message read from the
dead-letter topic itself is written straight into the ``deadletter`` table instead, so that a bad
dead letter never loops through Kafka.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field

import pyarrow as pa

from inferwatch.contract.events import DeadletterV1, _Event
from inferwatch.sink import columns
from inferwatch.sink.decode import Rejected, decode


@dataclass(frozen=True)
class RawMessage:
    """What the sink keeps of a Kafka message until its batch is written."""

    offset: int
    key: bytes | None
    value: bytes | None


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
        """``topic-partition-first_offset-last_offset``: a replay of the same messages is dropped by the store."""
        return f"{self.topic}-{self.partition}-{self.first_offset}-{self.last_offset}"


def dead_letter(
    schema: str, topic: str, partition: int, msg: RawMessage, rej: Rejected, now_ms: int | None = None
) -> DeadletterV1:
    """A ``deadletter.v1`` for ``msg``; its id is derived from the message's coordinates so that a
    replay after a crash produces the same dead letter (the table keeps one)."""
    return DeadletterV1(
        event_id=f"sink:{topic}:{partition}:{msg.offset}"[-64:],
        ts=now_ms if now_ms is not None else int(time.time() * 1000),
        stage="sink",
        reason=rej.reason[:4096],
        error_path=(rej.error_path or None) and rej.error_path[:512],  # type: ignore[arg-type]
        source_topic=topic,
        source_partition=partition,
        source_offset=msg.offset,
        expected_schema=schema,
        key_b64=base64.b64encode(msg.key).decode() if msg.key is not None else None,
        payload_b64=base64.b64encode(msg.value or b"").decode(),
    )


def process(schema: str, topic: str, partition: int, msgs: list[RawMessage]) -> PartitionBatch:
    """Decode ``msgs`` (one topic-partition, offset order) as ``schema``; build the rows and dead letters."""
    good: list[_Event] = []
    good_offsets: list[int] = []
    dls: list[DeadletterV1] = []
    is_dl_topic = schema == "deadletter.v1"
    now_ms = int(time.time() * 1000)
    for m in msgs:
        ev = decode(schema, m.value)
        if isinstance(ev, Rejected):
            dl = dead_letter(schema, topic, partition, m, ev, now_ms)
            if is_dl_topic:
                good.append(dl)
                good_offsets.append(m.offset)
            else:
                dls.append(dl)
        else:
            good.append(ev)
            good_offsets.append(m.offset)
    table = columns.BUILDERS[schema][0]
    rows = columns.build(schema, good, columns.Kafka(topic, partition, good_offsets))[1] if good else None
    return PartitionBatch(topic, partition, msgs[0].offset, msgs[-1].offset, table, rows, dls)
