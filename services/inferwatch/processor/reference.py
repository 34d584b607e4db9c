"""Reference profiles: the distributions and metrics a model version is compared with.

A profile is a :class:`WindowAcc` over the reference data (whole version plus segment values),
serialised with msgpack. The processor builds one itself from the first ``baseline_s`` of a
version's traffic (the pinned baseline), or a user uploads one built from a training dataframe
with :func:`build_reference_profile` (``inferwatch reference upload``); uploaded profiles are
published, keyed ``model@version``, to the compacted ``inferwatch.references`` topic, which a
worker reads in full with :func:`read_uploaded` before its first batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from inferwatch.config import Settings
from inferwatch.processor.core.accumulator import WindowAcc
from inferwatch.processor.core.event_arrays import build_columns
from inferwatch.processor.core.raw_events import Outputs, Prediction
from inferwatch.processor.errors import ReferenceError_
from inferwatch.processor.topics import references_topic

if TYPE_CHECKING:
    import pandas as pd

_MAGIC = b"IWREF1"


@dataclass
class ReferenceProfile:
    """A model version's reference: ``kind`` is ``uploaded`` or ``baseline``."""

    model: str
    version: str
    acc: WindowAcc
    kind: str = "uploaded"

    def to_bytes(self) -> bytes:
        """``IWREF1`` + msgpack of ``[model, version, kind, acc bytes]``."""
        return _MAGIC + msgspec.msgpack.encode([self.model, self.version, self.kind, self.acc.to_bytes()])

    @classmethod
    def from_bytes(cls, data: bytes) -> ReferenceProfile:
        """Inverse of :meth:`to_bytes`; raises :class:`ReferenceError_` on anything else."""
        if not data.startswith(_MAGIC):
            raise ReferenceError_("not a reference profile (bad magic)")
        try:
            model, version, kind, acc = msgspec.msgpack.decode(data[len(_MAGIC):])
            return cls(model, version, WindowAcc.from_bytes(acc), kind)
        except Exception as exc:
            raise ReferenceError_(f"corrupt reference profile: {exc}") from exc

    @property
    def key(self) -> str:
        """The topic key: ``model@version``."""
        return f"{self.model}@{self.version}"


def _val(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v


def build_reference_profile(
    df: pd.DataFrame,
    model: str,
    version: str,
    *,
    features: Sequence[str] | None = None,
    segment_columns: Sequence[str] = (),
    label_column: str | None = None,
    prediction_column: str | None = None,
    score_column: str | None = None,
    value_column: str | None = None,
    target_value_column: str | None = None,
) -> ReferenceProfile:
    """Build a reference profile from a training (or validation) dataframe.

    ``features`` are the input columns (default: every column not named in another argument);
    numeric columns become histograms, string columns category shares. ``segment_columns`` give
    per-segment references. With ``prediction_column`` (predicted label) and ``label_column`` (true
    label), or ``value_column``/``target_value_column`` for regression, the profile also carries
    reference performance; ``score_column`` gives the score distribution (and, with the prediction
    and label columns, the calibration of the accuracy estimated before labels: the score is read
    as the confidence of the predicted label, as in ``outputs.score``).
    """
    used = {c for c in (label_column, prediction_column, score_column, value_column, target_value_column) if c}
    used |= set(segment_columns)
    feats = list(features) if features is not None else [c for c in df.columns if c not in used]
    missing = [c for c in [*feats, *used] if c not in df.columns]
    if missing:
        raise ReferenceError_(f"columns not in the dataframe: {missing}")
    if len(df) == 0:
        raise ReferenceError_("the dataframe is empty")
    recs = df.to_dict(orient="records")
    events = []
    for i, r in enumerate(recs):
        label = _val(r[prediction_column]) if prediction_column else None
        score = _val(r[score_column]) if score_column else None
        value = _val(r[value_column]) if value_column else None
        outputs = None
        if label is not None or score is not None or value is not None:
            outputs = Outputs(label=None if label is None else str(label), score=score, value=value)
        events.append(Prediction(
            event_id=str(i), prediction_id=str(i), ts=0, model=model, model_version=version,
            inputs={f: _val(r[f]) for f in feats}, outputs=outputs, error=None if outputs else "none",
            segment={k: str(r[k]) for k in segment_columns if _val(r[k]) is not None},
        ))
    acc = WindowAcc(model, version, 0, 1)
    cols = build_columns(events)
    cols.error[:] = False  # rows without outputs are not failures in training data
    acc.add_columns(cols)
    if label_column and (prediction_column or value_column):
        from inferwatch.processor.core.accumulator import Joined

        slots = [[("", ""), *[(k, e.segment[k]) for k in segment_columns if k in e.segment]] for e in events]
        truth = [_val(r[label_column]) for r in recs]
        tv = [_val(r[target_value_column]) if target_value_column else None for r in recs]
        acc.add_joined(Joined(
            slots=slots,
            pred_label=[None if _val(r.get(prediction_column)) is None else str(r[prediction_column]) for r in recs] if prediction_column else [None] * len(recs),
            true_label=[None if t is None else str(t) for t in truth],
            pos_name=[None] * len(recs),
            pos_score=np.full(len(recs), np.nan),
            pred_value=np.array([_val(r[value_column]) if value_column else None for r in recs], dtype=np.float64),
            true_value=np.array(tv, dtype=np.float64),
            conf=cols.conf,  # the score as the predicted label's confidence: calibrates accuracy-before-labels
        ))
    return ReferenceProfile(model, version, acc)


def read_uploaded(settings: Settings, timeout_s: float = 10.0) -> dict[str, bytes]:
    """Every uploaded profile on the compacted references topic, by key (``model@version``): read
    from the start to the end the topic had when called, the last value of a key winning and a
    tombstone withdrawing it; the group is never committed (every worker reads it all)."""
    from confluent_kafka import Consumer, TopicPartition

    from inferwatch.kafka.clientconf import base_config
    from inferwatch.kafka.groups import PROCESSOR_REFERENCES, group_id

    c = Consumer({**base_config(settings), "group.id": group_id(settings, PROCESSOR_REFERENCES),
                  "enable.auto.commit": False})
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


class ReferenceFollower:
    """Follows the whole references topic for ONE worker: every partition assigned directly (no
    consumer group), from the beginning, then every record as it arrives.

    Each worker must see every uploaded profile, whatever processor partitions it holds: a profile
    is keyed ``model@version`` and may apply to any of them. A faust agent on the topic would join
    the processor's group, and the group would hand the references partition to one worker only
    (the others would keep their first read until restarted). Not thread-safe: use from one thread.
    """

    def __init__(self, settings: Settings) -> None:
        from confluent_kafka import Consumer

        from inferwatch.kafka.clientconf import base_config
        from inferwatch.kafka.groups import PROCESSOR_REFERENCES, group_id

        self.topic = references_topic(settings)
        self._consumer = Consumer({**base_config(settings), "group.id": group_id(settings, PROCESSOR_REFERENCES),
                                   "enable.auto.commit": False, "enable.auto.offset.store": False})
        self._assigned = False

    def poll(self, timeout_s: float = 0.5) -> list[tuple[bytes | None, bytes | None]]:
        """The next records as ``(key, value)`` (value None: a tombstone); [] while there are none.
        The first call assigns every partition of the topic from its beginning."""
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        if not self._assigned:
            md = self._consumer.list_topics(self.topic, timeout=timeout_s * 4)
            parts = md.topics.get(self.topic)
            if parts is None or parts.error is not None or not parts.partitions:
                return []  # not created yet (topics are made at start): asked again next time
            self._consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in sorted(parts.partitions)])
            self._assigned = True
        out: list[tuple[bytes | None, bytes | None]] = []
        for m in self._consumer.consume(1000, timeout=timeout_s):
            if m.error() is None:
                out.append((m.key(), m.value()))
        return out

    def close(self) -> None:
        self._consumer.close()
