"""The wire format of the alerter's state changelog (topic ``inferwatch.alerter-state``).

One compacted record per row of the alerter's per-partition state; the record's Kafka partition is
the partition of the input (``inferwatch.metrics``) that the state belongs to, so a partition's
state moves with the partition. Keys are scoped by that partition:

- key: the UTF-8 JSON array ``[partition, kind, id...]``, e.g. ``[2, "alert", "9f3c…"]``;
  ``kind`` and its ids: ``alert`` (fingerprint), ``hist`` (fingerprint: an anomaly rule's last
  values), ``seen`` (rule, model, model_version: an absent rule's last sighting), ``nflog``
  (receiver, group key: what the receiver was last told), ``outbox`` (idempotency key: a decided
  notification and how its delivery went).
- value: a JSON object with ``"v": 1`` and the row's fields (:data:`ROW_MODELS`); a tombstone
  (no value) deletes the row.

A record is always the whole current row, never a delta: replaying the partition's records in
order (or only the last one per key, which is what compaction keeps) gives the state. Decoding
checks every field, so a record that is not ours (or is damaged) raises :class:`ChangelogError`
and is skipped by the restore, counted, never half-applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inferwatch.alerter.errors import AlerterError
from inferwatch.alerter.lifecycle.transitions import AlertRecord

Kind = Literal["alert", "hist", "seen", "nflog", "outbox"]
#: how many ids each kind's key carries after the partition and the kind
ARITY: dict[str, int] = {"alert": 1, "hist": 1, "seen": 3, "nflog": 2, "outbox": 1}
MAX_KEY_BYTES = 16_384  # a key longer than this is not one of ours (ids are labels and hashes)
MAX_PARTITION = 1023  # the registry allows at most 1024 partitions


class ChangelogError(AlerterError, ValueError):
    """A changelog record that does not decode (not ours, damaged, or from a newer version)."""


@dataclass(frozen=True, order=True)
class StateKey:
    """Which row a changelog record is about: its input partition, its kind and its ids."""

    part: int
    kind: str
    ids: tuple[str, ...]

    def encode(self) -> bytes:
        """The record key (``[part, kind, *ids]`` as JSON)."""
        return orjson.dumps([self.part, self.kind, *self.ids])


def state_key(part: int, kind: Kind, *ids: str) -> StateKey:
    """Build a key, checking the arity of ``kind``."""
    if ARITY.get(kind) != len(ids):
        raise ChangelogError(f"a {kind!r} key takes {ARITY.get(kind)} ids, got {len(ids)}")
    return StateKey(part, kind, tuple(ids))


def decode_key(raw: bytes | None) -> StateKey:
    """Parse a record key; :class:`ChangelogError` names what is wrong."""
    if not raw:
        raise ChangelogError("record without a key")
    if len(raw) > MAX_KEY_BYTES:
        raise ChangelogError(f"key of {len(raw)} bytes (at most {MAX_KEY_BYTES})")
    try:
        arr = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ChangelogError(f"key is not JSON: {exc}") from None
    if not isinstance(arr, list) or len(arr) < 2:
        raise ChangelogError("key is not a [partition, kind, id...] array")
    part, kind, *ids = arr
    if type(part) is not int or not 0 <= part <= MAX_PARTITION:
        raise ChangelogError(f"key partition {part!r} is not an integer in 0..{MAX_PARTITION}")
    if kind not in ARITY:
        raise ChangelogError(f"unknown key kind {kind!r}")
    if len(ids) != ARITY[kind] or not all(isinstance(i, str) for i in ids):
        raise ChangelogError(f"a {kind!r} key takes {ARITY[kind]} string ids, got {ids!r}")
    return StateKey(part, kind, tuple(ids))


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

    v: Literal[1] = 1


class AlertRow(_Row):
    """An alert's stored record (``alerts`` table)."""

    record: AlertRecord
    updated_wall_ms: int


class HistRow(_Row):
    """An anomaly rule's last values of one series, oldest first (``history`` table)."""

    points: list[tuple[int, float]] = Field(max_length=100_000)


class SeenRow(_Row):
    """When an absent rule last saw a model (wall clock, ms)."""

    last_wall_ms: int


class NflogRow(_Row):
    """What a receiver was last told about a group."""

    firing: list[str]
    resolved: list[str]
    notified_wall_ms: int
    seq: int = Field(ge=1)


class OutboxRow(_Row):
    """A decided notification and its delivery progress."""

    receiver: str
    group_key: str
    body: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int = Field(ge=0)
    last_error: str | None = None
    created_wall_ms: int
    updated_wall_ms: int


ROW_MODELS: dict[str, type[_Row]] = {
    "alert": AlertRow, "hist": HistRow, "seen": SeenRow, "nflog": NflogRow, "outbox": OutboxRow,
}

Row = AlertRow | HistRow | SeenRow | NflogRow | OutboxRow


def encode_value(row: _Row | None) -> bytes | None:
    """The record value of ``row`` (``None``: a tombstone)."""
    return None if row is None else row.model_dump_json().encode()


def decode_value(key: StateKey, raw: bytes | None) -> Any:
    """The row a record carries (``None`` for a tombstone), checked against its kind's model."""
    if raw is None:
        return None
    model = ROW_MODELS[key.kind]
    try:
        row = model.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(x) for x in first["loc"]) or "<value>"
        raise ChangelogError(f"{key.kind} record {list(key.ids)}: field {where}: {first['msg']}") from None
    if isinstance(row, AlertRow) and row.record.fingerprint != key.ids[0]:
        raise ChangelogError(f"alert record {row.record.fingerprint!r} under the key of {key.ids[0]!r}")
    return row


def decode_record(key: bytes | None, value: bytes | None) -> tuple[StateKey, Any]:
    """Key and row of one record (see :func:`decode_key`, :func:`decode_value`)."""
    k = decode_key(key)
    return k, decode_value(k, value)
