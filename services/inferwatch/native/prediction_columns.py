"""A batch of ``prediction.v1`` messages decoded straight into flat columns.

Wire format: one UTF-8 JSON object per Kafka message value, ``prediction.v1`` of
``inferwatch.contract.events`` (the pydantic models there are the truth).

This is the shared fast path of the sink (rows → Arrow columns) and the processor (rows → numeric
matrices and category codes): one pass over the bytes, no Python object per field, the map-shaped
fields (inputs, segment, tags, probabilities) flattened into parallel arrays with an offsets array
per row, and every distinct key and string value interned once per batch.

The rule that keeps it safe: ``ok[i]`` is True only when message ``i`` is a ``prediction.v1`` the
contract accepts, decoded to exactly the values the contract's model would give. Anything the fast
path is not sure of — a malformed or invalid message, but also a valid one that uses a block it
leaves alone (``embedding``, ``llm``, ``lineage``), a duplicate key, an integer beyond 64 bits, ... —
gets ``ok[i] = False`` and the caller decodes that one message with its exact (slower) decoder,
which also gives the reason for the dead-letter topic. The fast path may refuse more than the
contract; it never accepts more, nor decodes differently.

:func:`decode_predictions` uses the compiled ``inferwatch.native._decode`` when it is built and
:func:`decode_predictions_py` (the pure-Python twin, also the reference of the parity tests)
otherwise.

What the compiled fast path refuses (``ok[i] = False``; the caller's exact decoder decides), and why:

* anything that is not strict RFC 8259 JSON: other whitespace, a BOM, trailing bytes or commas,
  number spellings like ``01``/``1.``/``NaN``, control characters in strings, unknown escapes,
  invalid UTF-8 (overlong forms, encoded surrogates, beyond U+10FFFF), lone ``\\uD800``-style
  surrogates — pydantic rejects these, or decodes them differently;
* a duplicate key anywhere it looks (the event, ``outputs``, the maps, unknown keys): parsers
  differ on which value wins;
* ``embedding``, ``llm`` or ``lineage`` other than null: the columns have no place for them;
* an integer beyond int64 anywhere (pydantic takes big ints, the columns cannot) and a number that
  overflows to infinity; a ``ts`` written as a float (``1.0``) or as a string, and other spellings
  only pydantic's lax mode takes (``"5"`` for a number, ``true`` for a score);
* nesting deeper than 64 inside an unknown field;
* and, of course, everything the contract rejects: types, lengths in code points, the name
  pattern (full match, models/keys 1..128, versions 1..64), ``ts`` in 0..32503680000000,
  ``latency_ms >= 0``, probabilities in [0, 1] and at most 1000, inputs <= 2000, segment <= 32,
  tags <= 64, outputs with one of label/score/probabilities/value, outputs or error, and
  ``schema_version`` exactly ``"prediction.v1"`` when present. Unknown keys are skipped (their
  value must still be valid JSON).

Numbers: a JSON integer within int64 is exact (a feature, score or probability gets
``float(int)``); any other number is exactly Python's ``float(token)`` — Clinger's fast path (at most
15 significant digits and a decimal exponent within ±22: one exact double multiply or divide), else
the Eisel-Lemire algorithm when it decides the rounding, else ``PyOS_string_to_double`` on the token
(also for more than 19 significant digits).

Speed (``.venv/bin/python -m inferwatch.native.prediction_columns``: best of 40 batches of 1,000
messages, numpy wrapping included, against msgspec's struct decoder of the sink in the same loop;
this 2-core machine is shared, numbers swing 2-3x, so trust the ratio): the bench sink's 15-feature
event (~380 B) 0.67-0.75 µs/event vs msgspec 2.1-2.2 µs; the processor's ``scenarios.wide_event``
(20 features, 17-digit floats, ~700 B) 1.18-1.23 µs/event vs msgspec 3.2-3.3 µs; the pure-Python
twin 11-35 µs. Side by side with the previous build in one process (the C call alone, best of 300):
sink 0.59 vs 0.69 µs (-14%), wide_event 1.09 vs 1.13 µs (-4%). What it costs: a 17-digit float is
~250 instructions (digits, Eisel-Lemire), about a third of the wide event; the rest is the map
walk, strings and interning. Keys and short values that repeat at the same place as in the previous
row (map keys, values, the top-level and outputs keys) are recognised by one word compare.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import msgspec
import numpy as np

from inferwatch.native import load

NUM, CAT, NULL = 0, 1, 2
"""``in_kind`` codes: numeric (float, int, bool as 0/1), categorical (string), missing (null)."""


@dataclass
class PredictionColumns:
    """Flat columns of ``n`` messages (row ``i`` is message ``i``; rows with ``ok[i]`` False are empty).

    Map-shaped fields: entries of row ``i`` are ``[X_off[i], X_off[i+1])`` of the flat arrays,
    in the message's key order. Keys index :attr:`names`; string values index :attr:`strings`.
    """

    n: int
    ok: np.ndarray  # bool[n]
    event_id: list[str | None]
    prediction_id: list[str | None]
    model: list[str | None]
    model_version: list[str | None]
    ts: np.ndarray  # int64[n], epoch ms (0 when not ok)
    latency_ms: np.ndarray  # float64[n], NaN when absent
    error: list[str | None]
    # inputs
    in_off: np.ndarray  # int64[n + 1]
    in_key: np.ndarray  # int32[m] -> names
    in_kind: np.ndarray  # int8[m]: NUM, CAT or NULL
    in_num: np.ndarray  # float64[m]: the value when NUM (bool as 0.0/1.0, int as float), else NaN
    in_cat: np.ndarray  # int32[m] -> strings when CAT, else -1
    # outputs (a row with outputs null has label -1 and NaN score/value and no probabilities)
    has_outputs: np.ndarray  # bool[n]
    out_label: np.ndarray  # int32[n] -> strings, -1 when absent
    out_score: np.ndarray  # float64[n], NaN when absent
    out_value: np.ndarray  # float64[n], NaN when absent
    prob_off: np.ndarray  # int64[n + 1]; a row with probabilities null or {} has none
    prob_key: np.ndarray  # int32 -> names
    prob_val: np.ndarray  # float64
    # segment and tags
    seg_off: np.ndarray  # int64[n + 1]
    seg_key: np.ndarray  # int32 -> names
    seg_val: np.ndarray  # int32 -> strings
    tag_off: np.ndarray  # int64[n + 1]
    tag_key: np.ndarray  # int32 -> names
    tag_val: np.ndarray  # int32 -> strings
    names: list[str]  # distinct keys of the batch (features, segment/tag keys, probability classes)
    strings: list[str]  # distinct string values (categorical values, labels, segment/tag values)

    def row_inputs(self, i: int) -> dict[str, Any]:
        """Row ``i``'s inputs as the contract's dict (for tests and slow paths, not hot loops)."""
        out: dict[str, Any] = {}
        for j in range(int(self.in_off[i]), int(self.in_off[i + 1])):
            k = self.names[self.in_key[j]]
            kind = int(self.in_kind[j])
            out[k] = float(self.in_num[j]) if kind == NUM else self.strings[self.in_cat[j]] if kind == CAT else None
        return out


class _Interner:
    __slots__ = ("index", "items")

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.items: list[str] = []

    def __call__(self, s: str) -> int:
        i = self.index.get(s)
        if i is None:
            i = self.index[s] = len(self.items)
            self.items.append(s)
        return i


def decode_predictions_py(raws: Sequence[bytes | None]) -> PredictionColumns:
    """The pure-Python twin of the C decoder (and the reference of its parity tests).

    Validation is the msgspec mirror of the contract (``inferwatch.contract.structs``) plus its
    batch name check; rows carrying ``embedding``, ``llm`` or ``lineage`` are left to the caller.
    """
    from inferwatch.contract.structs import PredictionV1 as S
    from inferwatch.contract.structs import bad_names

    dec = msgspec.json.Decoder(S)
    n = len(raws)
    evs: list[Any] = []
    for raw in raws:
        try:
            ev = dec.decode(raw) if raw is not None else None  # type: ignore[arg-type]
        except Exception:  # DecodeError/ValidationError, bad UTF-8: the exact decoder says why
            ev = None
        if ev is not None and (ev.embedding is not None or ev.llm is not None or ev.lineage is not None):
            ev = None
        evs.append(ev)
    good = [e for e in evs if e is not None]
    bad = bad_names(good, S)
    if bad is not None:
        it = iter(bad)
        evs = [None if e is None or next(it) else e for e in evs]

    names, strings = _Interner(), _Interner()
    ok = np.zeros(n, np.bool_)
    ts = np.zeros(n, np.int64)
    lat = np.full(n, np.nan)
    has_out = np.zeros(n, np.bool_)
    label = np.full(n, -1, np.int32)
    score = np.full(n, np.nan)
    value = np.full(n, np.nan)
    ids: list[list[str | None]] = [[None] * n for _ in range(5)]
    offs = {k: [0] for k in ("in", "prob", "seg", "tag")}
    in_key: list[int] = []
    in_kind: list[int] = []
    in_num: list[float] = []
    in_cat: list[int] = []
    prob_key: list[int] = []
    prob_val: list[float] = []
    seg_key: list[int] = []
    seg_val: list[int] = []
    tag_key: list[int] = []
    tag_val: list[int] = []
    for i, e in enumerate(evs):
        if e is not None:
            ok[i] = True
            ids[0][i], ids[1][i], ids[2][i], ids[3][i], ids[4][i] = (
                e.event_id, e.prediction_id, e.model, e.model_version, e.error)
            ts[i] = e.ts
            if e.latency_ms is not None:
                lat[i] = e.latency_ms
            for k, v in e.inputs.items():
                in_key.append(names(k))
                kind = NULL if v is None else CAT if type(v) is str else NUM
                in_kind.append(kind)
                in_num.append(float(v) if kind == NUM else math.nan)
                in_cat.append(strings(v) if kind == CAT else -1)
            o = e.outputs
            if o is not None:
                has_out[i] = True
                if o.label is not None:
                    label[i] = strings(o.label)
                if o.score is not None:
                    score[i] = o.score
                if o.value is not None:
                    value[i] = o.value
                for k, p in (o.probabilities or {}).items():
                    prob_key.append(names(k))
                    prob_val.append(float(p))
            for k, v in e.segment.items():
                seg_key.append(names(k))
                seg_val.append(strings(v))
            for k, v in e.tags.items():
                tag_key.append(names(k))
                tag_val.append(strings(v))
        offs["in"].append(len(in_key))
        offs["prob"].append(len(prob_key))
        offs["seg"].append(len(seg_key))
        offs["tag"].append(len(tag_key))

    def i32(x: list[int]) -> np.ndarray:
        return np.array(x, np.int32)

    def off(k: str) -> np.ndarray:
        return np.array(offs[k], np.int64)

    return PredictionColumns(
        n=n, ok=ok, event_id=ids[0], prediction_id=ids[1], model=ids[2], model_version=ids[3], ts=ts,
        latency_ms=lat, error=ids[4],
        in_off=off("in"), in_key=i32(in_key), in_kind=np.array(in_kind, np.int8), in_num=np.array(in_num, np.float64),
        in_cat=i32(in_cat),
        has_outputs=has_out, out_label=label, out_score=score, out_value=value,
        prob_off=off("prob"), prob_key=i32(prob_key), prob_val=np.array(prob_val, np.float64),
        seg_off=off("seg"), seg_key=i32(seg_key), seg_val=i32(seg_val),
        tag_off=off("tag"), tag_key=i32(tag_key), tag_val=i32(tag_val),
        names=names.items, strings=strings.items,
    )


# The compiled decoder returns the fields in PredictionColumns' order: numeric columns as bytearrays
# (native byte order, viewed here without a copy), the rest as they are.
_DTYPES: dict[str, type[np.generic]] = {
    "ok": np.bool_, "ts": np.int64, "latency_ms": np.float64,
    "in_off": np.int64, "in_key": np.int32, "in_kind": np.int8, "in_num": np.float64, "in_cat": np.int32,
    "has_outputs": np.bool_, "out_label": np.int32, "out_score": np.float64, "out_value": np.float64,
    "prob_off": np.int64, "prob_key": np.int32, "prob_val": np.float64,
    "seg_off": np.int64, "seg_key": np.int32, "seg_val": np.int32,
    "tag_off": np.int64, "tag_key": np.int32, "tag_val": np.int32,
}
_WRAP = [_DTYPES.get(f.name) for f in fields(PredictionColumns)]


def decode_predictions(raws: Sequence[bytes | None]) -> PredictionColumns:
    """Decode a batch of ``prediction.v1`` message values (compiled decoder when built)."""
    mod = load("_decode")
    if mod is None:
        return decode_predictions_py(raws)
    cols: tuple[Any, ...] = mod.decode_predictions(raws)
    args: list[Any] = [v if dt is None else np.frombuffer(v, dt) for v, dt in zip(cols, _WRAP, strict=True)]
    return PredictionColumns(*args)


def _measure() -> None:  # pragma: no cover - a measurement, not a test
    """Print µs/event of the compiled decoder, msgspec's struct decoder and the twin (see the docstring)."""
    import time

    import orjson

    from inferwatch.contract.structs import PredictionV1 as S
    from inferwatch.testing.scenarios import wide_event

    def sink_event(i: int) -> bytes:  # the event of bench/bench_sink.py
        inputs: dict[str, object] = {f"f{j}": (i * 7 + j) % 1000 / 10.0 for j in range(12)}
        inputs.update({"device": f"d{i % 8}", "country": f"c{i % 20}", "app": "ios" if i % 2 else "android"})
        return orjson.dumps({
            "schema_version": "prediction.v1", "event_id": f"e{i}", "prediction_id": f"p{i}", "ts": 1764140000000 + i,
            "model": f"m{i % 4}", "model_version": "v1", "latency_ms": float(i % 50), "inputs": inputs,
            "outputs": {"label": "a" if i % 3 else "b", "score": 0.7}, "segment": {"device": f"d{i % 8}"}})

    rng = np.random.default_rng(0)
    dec = msgspec.json.Decoder(S)
    print("compiled decoder built:", load("_decode") is not None)
    for name, raws in (("sink 15-feature event", [sink_event(i) for i in range(1000)]),
                       ("wide_event", [wide_event(i, 1764140000000 + i, rng) for i in range(1000)])):
        best = {"decode_predictions": 1e9, "msgspec": 1e9}
        for _ in range(40):
            t0 = time.perf_counter()
            decode_predictions(raws)
            t1 = time.perf_counter()
            [dec.decode(r) for r in raws]
            t2 = time.perf_counter()
            best["decode_predictions"] = min(best["decode_predictions"], t1 - t0)
            best["msgspec"] = min(best["msgspec"], t2 - t1)
        t0 = time.perf_counter()
        decode_predictions_py(raws)
        twin = time.perf_counter() - t0
        size = sum(map(len, raws)) / len(raws)
        print(f"{name} ({size:.0f} B): " + ", ".join(f"{k} {v * 1e3:.3f}" for k, v in best.items())
              + f", twin {twin * 1e3:.2f} (µs/event)")


if __name__ == "__main__":
    _measure()
