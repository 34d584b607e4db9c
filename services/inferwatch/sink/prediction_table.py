"""The ``predictions`` Arrow table straight from a batch's flat decoded columns (the sink's fast path).

Input: :class:`inferwatch.native.prediction_columns.PredictionColumns`, what
:func:`inferwatch.native.prediction_columns.decode_predictions` makes of a batch of ``prediction.v1``
messages (UTF-8 JSON objects, one per Kafka message value). Output: the same table, column for
column and type for type, that :func:`inferwatch.sink.arrow_tables.predictions` builds from the decoded
events — the parity test in ``tests/unit/sink/test_prediction_table.py`` holds the two together.

Everything here is vectorised over the batch: no Python code runs per row or per map entry. The
map-shaped fields arrive as flat arrays (one entry per key/value, ``*_off`` giving each row's
slice) and keys/strings as indexes into per-batch tables of distinct names and strings, so a map
column is a ``take`` of its keys and values plus offsets; the inputs map is split into numeric,
categorical and missing parts by kind, a part's offsets being the number of its entries before each
row boundary.

The table has one row per message, ``ok`` or not; a row that is not ``ok`` is empty (null ids)
and the caller leaves it out (see :mod:`inferwatch.sink.batch`). The blocks the fast decoder never
accepts (``embedding``, ``llm``, ``lineage``) are all-empty / all-null columns.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from inferwatch.native.prediction_columns import CAT, NULL, NUM, PredictionColumns
from inferwatch.sink.arrow_tables import _LLM_COLUMNS, TS, _empty_lists, _empty_map

_STR = pa.string()
_F64 = pa.float64()


def _int32_offsets(off: np.ndarray) -> pa.Array:
    """Arrow int32 offsets from the decoder's int64 offsets (a batch never holds 2**31 map entries)."""
    return pa.array(off.astype(np.int32, copy=False))


def _lookup(table: pa.Array, idx: np.ndarray) -> pa.Array:
    """``table[idx]`` as a plain string array (idx -1 → null)."""
    if not len(idx):
        return pa.array([], _STR)
    neg = idx < 0
    if neg.any():
        return table.take(pa.array(idx, mask=neg))
    return table.take(pa.array(idx))


def _floats(x: np.ndarray) -> pa.Array:
    """A Float64 column with null where ``x`` is NaN (the decoder's 'absent'; JSON has no NaN)."""
    nan = np.isnan(x)
    return pa.array(x, _F64, mask=nan) if nan.any() else pa.array(x, _F64)


def _map(off: np.ndarray, keys: pa.Array, values: pa.Array) -> pa.Array:
    return pa.MapArray.from_arrays(_int32_offsets(off), keys, values)


def _part(row_off: np.ndarray, kind: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The entries of kind ``k`` (their positions) and their row offsets: the number of such entries
    before each row boundary (a binary search of the boundaries among the sorted positions, cheaper
    than a running count over every entry)."""
    pos = np.flatnonzero(kind == k)
    if not len(pos):
        return pos, np.zeros(len(row_off), np.int64)
    return pos, np.searchsorted(pos, row_off)


def _inputs(c: PredictionColumns, names: pa.Array, strings: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array]:
    """``inputs_num``, ``inputs_cat`` and ``inputs_null`` (each in the message's key order)."""
    n = c.n
    if not len(c.in_key):
        return _empty_map(n, _F64), _empty_map(n, _STR), _empty_lists(n, _STR)
    kind = c.in_kind
    p_cat, o_cat = _part(c.in_off, kind, CAT)
    p_null, o_null = _part(c.in_off, kind, NULL)
    if not len(p_cat) and not len(p_null):  # an all-numeric batch: no filtering at all
        num = _map(c.in_off, _lookup(names, c.in_key), pa.array(c.in_num, _F64))
    else:
        m_num = kind == NUM
        o_num = c.in_off - o_cat - o_null
        num = _map(o_num, _lookup(names, c.in_key[m_num]), pa.array(c.in_num[m_num], _F64))
    cat = _map(o_cat, _lookup(names, c.in_key[p_cat]), _lookup(strings, c.in_cat[p_cat]))
    null = pa.ListArray.from_arrays(_int32_offsets(o_null), _lookup(names, c.in_key[p_null]))
    return num, cat, null


def predictions(c: PredictionColumns, kafka_topic: str, kafka_partition: int, kafka_offset: np.ndarray) -> pa.Table:
    """The ``predictions`` rows of every message of ``c`` (not-ok rows empty), with their Kafka coordinates.

    ``kafka_offset`` holds one offset per message (uint64 or int64).
    """
    n = c.n
    names = pa.array(c.names, _STR)
    strings = pa.array(c.strings, _STR)
    inputs_num, inputs_cat, inputs_null = _inputs(c, names, strings)
    no_lists = _empty_lists(n, pa.float32())
    cols: dict[str, pa.Array] = {
        "event_id": pa.array(c.event_id, _STR),
        "prediction_id": pa.array(c.prediction_id, _STR),
        "ts": pa.array(c.ts, pa.int64()).cast(TS),
        "model": pa.array(c.model, _STR),
        "model_version": pa.array(c.model_version, _STR),
        "latency_ms": _floats(c.latency_ms),
        "error": pa.array(c.error, _STR),
        "inputs_num": inputs_num,
        "inputs_cat": inputs_cat,
        "inputs_null": inputs_null,
        "output_label": _lookup(strings, c.out_label),
        "output_score": _floats(c.out_score),
        "output_value": _floats(c.out_value),
        "output_probabilities": _map(c.prob_off, _lookup(names, c.prob_key), pa.array(c.prob_val, _F64)),
        "segment": _map(c.seg_off, _lookup(names, c.seg_key), _lookup(strings, c.seg_val)),
        "embedding": no_lists,
        **{name: pa.nulls(n, t) for name, t in _LLM_COLUMNS.items()},
        "llm_token_logprobs": no_lists,
        "lineage_kind": _empty_lists(n, _STR),
        "lineage_model": _empty_lists(n, _STR),
        "lineage_model_version": _empty_lists(n, _STR),
        "lineage_share": _empty_lists(n, _F64),
        "tags": _map(c.tag_off, _lookup(names, c.tag_key), _lookup(strings, c.tag_val)),
        "kafka_topic": pa.repeat(pa.scalar(kafka_topic, _STR), n),
        "kafka_partition": pa.repeat(pa.scalar(kafka_partition, pa.uint32()), n),
        "kafka_offset": pa.array(kafka_offset.astype(np.uint64, copy=False), pa.uint64()),
    }
    return pa.table(cols)
