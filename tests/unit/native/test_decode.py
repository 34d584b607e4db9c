"""The compiled batch decoder ``inferwatch.native._decode`` never accepts more than the contract.

For every message: when the C decoder says ``ok``, the contract's pydantic model accepts it and
every decoded value (ids, numbers bit for bit, inputs/outputs/segment/tags resolved through the
batch's ``names``/``strings``) equals the contract's and the pure-Python twin's; when the contract
rejects it, the C decoder says not ok. A refused row is empty, and the interned tables hold only
what ok rows use. Checked on the schema examples, hand-written JSON corner cases, generated events
(valid ones and mutated ones: values, keys, encodings, bytes) and the bench generators (which must
all take the fast path).
"""

from __future__ import annotations

import copy
import json
import math
import struct
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from bench.bench_sink import _event as sink_event
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inferwatch import native
from inferwatch.contract.events import PredictionV1
from inferwatch.native.prediction_columns import (
    CAT,
    NULL,
    NUM,
    PredictionColumns,
    decode_predictions,
    decode_predictions_py,
)
from inferwatch.paths import schemas_dir
from inferwatch.testing.scenarios import wide_event

EXAMPLES = sorted((schemas_dir() / "examples" / "prediction").glob("*/*.json"))


def test_the_compiled_modules_are_built() -> None:
    """``make install`` builds them; a missing build fails here (no skip)."""
    assert "_decode" in native.MODULES
    native.require_native()
    assert native.load("_decode") is not None


# -- the property -------------------------------------------------------------------------------


def _f(x: float) -> str:
    """A float compared bit for bit (0.0 and -0.0 differ)."""
    return float(x).hex() if not math.isnan(x) else "nan"


def _contract_row(ev: PredictionV1) -> dict[str, Any]:
    def feat(v: Any) -> Any:
        return None if v is None else v if isinstance(v, str) else _f(float(v))

    o = ev.outputs
    return {
        "event_id": ev.event_id, "prediction_id": ev.prediction_id, "model": ev.model,
        "model_version": ev.model_version, "ts": ev.ts,
        "latency_ms": None if ev.latency_ms is None else _f(ev.latency_ms), "error": ev.error,
        "inputs": [(k, feat(v)) for k, v in ev.inputs.items()],
        "outputs": None if o is None else {
            "label": o.label, "score": None if o.score is None else _f(o.score),
            "value": None if o.value is None else _f(o.value),
            "probabilities": [(k, _f(v)) for k, v in (o.probabilities or {}).items()]},
        "segment": list(ev.segment.items()), "tags": list(ev.tags.items()),
    }


def _col_row(c: PredictionColumns, i: int) -> dict[str, Any]:
    def span(off: np.ndarray) -> range:
        return range(int(off[i]), int(off[i + 1]))

    def opt(x: float) -> str | None:
        return None if math.isnan(x) else _f(x)

    inputs: list[tuple[str, Any]] = []
    for j in span(c.in_off):
        kind = int(c.in_kind[j])
        assert (kind == CAT) == (c.in_cat[j] >= 0) and (kind == NUM) != math.isnan(c.in_num[j])
        v = _f(c.in_num[j]) if kind == NUM else c.strings[c.in_cat[j]] if kind == CAT else None
        assert kind in (NUM, CAT, NULL)
        inputs.append((c.names[c.in_key[j]], v))
    return {
        "event_id": c.event_id[i], "prediction_id": c.prediction_id[i], "model": c.model[i],
        "model_version": c.model_version[i], "ts": int(c.ts[i]), "latency_ms": opt(c.latency_ms[i]),
        "error": c.error[i], "inputs": inputs,
        "outputs": None if not c.has_outputs[i] else {
            "label": None if c.out_label[i] < 0 else c.strings[c.out_label[i]],
            "score": opt(c.out_score[i]), "value": opt(c.out_value[i]),
            "probabilities": [(c.names[c.prob_key[j]], _f(c.prob_val[j])) for j in span(c.prob_off)]},
        "segment": [(c.names[c.seg_key[j]], c.strings[c.seg_val[j]]) for j in span(c.seg_off)],
        "tags": [(c.names[c.tag_key[j]], c.strings[c.tag_val[j]]) for j in span(c.tag_off)],
    }


def _empty(c: PredictionColumns, i: int) -> bool:
    return (c.event_id[i] is None and c.prediction_id[i] is None and c.model[i] is None
            and c.model_version[i] is None and c.error[i] is None and c.ts[i] == 0
            and math.isnan(c.latency_ms[i]) and not c.has_outputs[i] and c.out_label[i] == -1
            and math.isnan(c.out_score[i]) and math.isnan(c.out_value[i])
            and all(off[i] == off[i + 1] for off in (c.in_off, c.prob_off, c.seg_off, c.tag_off)))


def _contract(raw: Any) -> PredictionV1 | None:
    try:
        return PredictionV1.model_validate_json(raw)
    except Exception:
        return None


def check(raws: list[Any]) -> PredictionColumns:
    """Assert the property on one batch; return the C decoder's columns."""
    c = decode_predictions(raws)
    assert isinstance(c.ok, np.ndarray) and c.n == len(raws) == len(c.ok)
    dtypes = {"ok": np.bool_, "ts": np.int64, "in_off": np.int64, "in_key": np.int32, "in_kind": np.int8,
              "in_num": np.float64, "in_cat": np.int32, "prob_val": np.float64, "seg_val": np.int32}
    for name, dt in dtypes.items():
        assert getattr(c, name).dtype == dt, name
    twin = decode_predictions_py([r if isinstance(r, bytes | type(None)) else None for r in raws])
    used_names: set[str] = set()
    used_strings: set[str] = set()
    for i, raw in enumerate(raws):
        want = _contract(raw) if isinstance(raw, bytes) else None
        if not c.ok[i]:
            assert _empty(c, i), raw
            continue
        assert want is not None, f"C accepted what the contract rejects: {raw!r}"
        got = _col_row(c, i)
        assert got == _contract_row(want), raw
        if twin.ok[i]:
            assert _col_row(twin, i) == got, raw
        used_names.update(k for k, _ in got["inputs"] + got["segment"] + got["tags"])
        used_names.update(k for k, _ in (got["outputs"] or {}).get("probabilities", []))
        used_strings.update(v for _, v in got["segment"] + got["tags"])
        if got["outputs"] and got["outputs"]["label"] is not None:
            used_strings.add(got["outputs"]["label"])
    # A refused row takes back what it interned: the tables hold what ok rows use, once each.
    assert set(c.names) == used_names and len(c.names) == len(used_names)
    cat_strings = {c.strings[j] for j in c.in_cat[c.in_cat >= 0]}
    assert set(c.strings) == used_strings | cat_strings
    assert len(set(c.strings)) == len(c.strings)
    return c


# -- examples and corner cases ------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: "/".join(p.parts[-2:]))
def test_schema_examples(path: Path) -> None:
    raw = path.read_bytes()
    doc = json.loads(raw)
    event = doc.get("event", doc)
    raws = [raw, json.dumps(event).encode(), json.dumps(event, indent=1, ensure_ascii=True).encode()]
    c = check(raws)
    valid = path.parts[-2] == "valid"
    fast = valid and not ({"embedding", "llm", "lineage"} & {k for k, v in event.items() if v is not None})
    assert list(c.ok) == [fast] * 3, path


def _ev(**over: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {"event_id": "e1", "prediction_id": "p1", "ts": 1764140000000, "model": "m",
                          "model_version": "v1", "outputs": {"label": "a"}}
    ev.update(over)
    return {k: v for k, v in ev.items() if v is not _DROP}


_DROP = object()
BASE = json.dumps(_ev()).encode()

ACCEPTED = [  # the contract accepts these and so must the fast path
    BASE,
    b' \t\r\n' + BASE + b' \n',
    BASE.replace(b'"e1"', b'"e\\u0031"').replace(b'"model"', b'"mo\\u0064el"'),
    json.dumps(_ev(inputs={"a": "\u00e9\U0001f600", "b": "\\\"/\b\f\n\r\t\u0000\u001f", "c": -0.0, "d": -0,
                           "e": True, "f": False, "g": None, "h": 1e308, "i": 5e-324, "j": 9223372036854775807,
                           "k": -9223372036854775808, "l": 0.1, "m": "x" * 256})).encode(),
    json.dumps(_ev(inputs={"a": "\U0001f600" * 256}), ensure_ascii=True).encode(),
    json.dumps(_ev(outputs={"probabilities": {}})).encode(),
    json.dumps(_ev(outputs={"probabilities": {"": 0, "x" * 256: 1, "\u00e9": 0.5}, "label": None})).encode(),
    json.dumps(_ev(outputs=None, error="")).encode(),
    json.dumps(_ev(outputs={"value": 0, "zzz": {"a": [1, 2, {"b": None}]}}, future={"x": [True, False]})).encode(),
    json.dumps(_ev(schema_version="prediction.v1", embedding=None, llm=None, lineage=None)).encode(),
    json.dumps(_ev(ts=0, latency_ms=0, model="A" * 128, model_version="9" * 64)).encode(),
    json.dumps(_ev(ts=32503680000000, latency_ms=-0.0, model="a_.:/@+-Z", event_id="x" * 64,
                   prediction_id="\u00e9" * 128)).encode(),
    json.dumps(_ev(segment={f"k{i}": "v" for i in range(32)}, tags={f"k{i}": "" for i in range(64)})).encode(),
    json.dumps(_ev(inputs={f"f{i}": i for i in range(2000)})).encode(),
    json.dumps(_ev(error="x" * 4096)).encode(),
    json.dumps(_ev(inputs={"a": 1.5e-7, "b": 123456789012345678901234567890.5, "c": 2.5e-310})).encode(),
]

REJECTED = [  # the contract rejects these
    b"", b"null", b"[]", b"1", b'"x"', b"{", b"{}", BASE[:-1], BASE + b"x", BASE + b",", b"\xef\xbb\xbf" + BASE,
    BASE.replace(b'"a"}', b'"a",}'), BASE.replace(b'"e1"', b'"e\x01"'), BASE.replace(b'"e1"', b'"e\\x"'),
    BASE.replace(b'"e1"', b'"e\\ud800"'), BASE.replace(b'"e1"', b'"\\udc00e"'), BASE.replace(b'"e1"', b'"\xc0\xaf"'),
    BASE.replace(b'"e1"', b'"\xed\xa0\x80"'), BASE.replace(b'"e1"', b'"\xf4\x90\x80\x80"'),
    BASE.replace(b'"e1"', b'"\xe2\x82"'), BASE.replace(b'"e1"', b'"\xff"'),
    json.dumps(_ev(event_id="")).encode(), json.dumps(_ev(event_id="x" * 65)).encode(),
    json.dumps(_ev(prediction_id="x" * 129)).encode(), json.dumps(_ev(model="a b")).encode(),
    json.dumps(_ev(model="m\n")).encode(), json.dumps(_ev(model="A" * 129)).encode(),
    json.dumps(_ev(model_version="9" * 65)).encode(), json.dumps(_ev(model="\u00e9")).encode(),
    json.dumps(_ev(ts=-1)).encode(), json.dumps(_ev(ts=32503680000001)).encode(), json.dumps(_ev(ts=None)).encode(),
    json.dumps(_ev(ts=_DROP)).encode(), json.dumps(_ev(event_id=_DROP)).encode(), json.dumps(_ev(model=_DROP)).encode(),
    json.dumps(_ev(latency_ms=-1e-300)).encode(), json.dumps(_ev(latency_ms=[1])).encode(),
    json.dumps(_ev(outputs={})).encode(), json.dumps(_ev(outputs={"label": None})).encode(),
    json.dumps(_ev(outputs=None)).encode(), json.dumps(_ev(outputs=_DROP)).encode(),
    json.dumps(_ev(outputs={"label": "x" * 257})).encode(), json.dumps(_ev(outputs={"score": [True]})).encode(),
    json.dumps(_ev(outputs={"probabilities": {"a": 1.0000001}})).encode(),
    json.dumps(_ev(outputs={"probabilities": {"a": -1e-300}})).encode(),
    json.dumps(_ev(outputs={"probabilities": {f"c{i}": 0 for i in range(1001)}})).encode(),
    json.dumps(_ev(inputs={"a b": 1})).encode(), json.dumps(_ev(inputs={"": 1})).encode(),
    json.dumps(_ev(inputs={"a": [1]})).encode(), json.dumps(_ev(inputs={"a": {}})).encode(),
    json.dumps(_ev(inputs={"a": "x" * 257})).encode(), json.dumps(_ev(inputs=None)).encode(),
    json.dumps(_ev(inputs={f"f{i}": i for i in range(2001)})).encode(),
    json.dumps(_ev(segment={"a": 1})).encode(), json.dumps(_ev(segment={f"k{i}": "v" for i in range(33)})).encode(),
    json.dumps(_ev(tags={f"k{i}": "v" for i in range(65)})).encode(), json.dumps(_ev(tags=None)).encode(),
    json.dumps(_ev(schema_version="feedback.v1")).encode(), json.dumps(_ev(schema_version=None)).encode(),
    json.dumps(_ev(error="x" * 4097)).encode(), json.dumps(_ev(embedding=[])).encode(),
    BASE.replace(b'"ts": 1764140000000', b'"ts": 1e400'), BASE.replace(b'"ts": 1764140000000', b'"ts": 01'),
    BASE.replace(b'"ts": 1764140000000', b'"ts": NaN'), BASE.replace(b'"ts": 1764140000000', b'"ts": 1.5'),
    json.dumps(_ev(inputs={"a": 1})).encode().replace(b"1}", b"Infinity}"),
    json.dumps(_ev(inputs={"a": 1})).encode().replace(b"1}", b"1e999}"),
    json.dumps(_ev(inputs={"a": 1})).encode().replace(b"1}", b"-}"),
    json.dumps(_ev(inputs={"a": 1})).encode().replace(b"1}", b"1.}"),
    json.dumps(_ev(inputs={"a": 1})).encode().replace(b"1}", b"+1}"),
    json.dumps(_ev(inputs={"a": 1})).encode().replace(b"1}", b"tru}"),
    json.dumps(_ev(inputs={"a": 1})).encode().replace(b": 1}", b"\x0b: 1}"),
    json.dumps(_ev(x="\ud800"), ensure_ascii=True).encode(),
]

REFUSED = [  # the contract accepts these; the fast path leaves them to the exact decoder
    BASE.replace(b'{"event_id": "e1"', b'{"event_id": "e0", "event_id": "e1"'),
    json.dumps(_ev(inputs={"a": 1})).encode().replace(b'{"a": 1}', b'{"a": 1, "a": 2}'),
    json.dumps(_ev(x=1)).encode().replace(b'"x": 1', b'"x": 1, "x": 2'),
    json.dumps(_ev(outputs={"label": "b"})).encode().replace(b'"label": "b"', b'"label": "a", "label": "b"'),
    json.dumps(_ev(inputs={"a": 2**63})).encode(), json.dumps(_ev(inputs={"a": -(2**63) - 1})).encode(),
    json.dumps(_ev(x=10**30)).encode(), json.dumps(_ev(ts=1764140000000.0)).encode(), json.dumps(_ev(latency_ms="1")).encode(),
    json.dumps(_ev(outputs={"score": True})).encode(),
    json.dumps(_ev(embedding=[0.5])).encode(), json.dumps(_ev(llm={})).encode(), json.dumps(_ev(lineage=[])).encode(),
    json.dumps(_ev(deep=json.loads("[" * 70 + "]" * 70))).encode(),
]


def test_corner_cases() -> None:
    c = check(ACCEPTED + REJECTED + REFUSED + ACCEPTED)
    n_a = len(ACCEPTED)
    for raw in ACCEPTED:
        assert _contract(raw) is not None, raw
    for raw in REJECTED:
        assert _contract(raw) is None, raw
    for raw in REFUSED:
        assert _contract(raw) is not None, raw
    assert list(c.ok[:n_a]) == [True] * n_a, [r for r, ok in zip(ACCEPTED, c.ok[:n_a], strict=True) if not ok]
    assert not c.ok[n_a:-n_a].any(), [r for r, ok in zip(REJECTED + REFUSED, c.ok[n_a:-n_a], strict=True) if ok]
    assert c.ok[-n_a:].all()
    assert len(c.names) == len(set(c.names))


def test_keys_remembered_by_position() -> None:
    """Top-level and outputs keys are matched against the previous row's key at the same place: near
    misses there (escaped spellings, prefixes, longer names, repeats, unknown keys) decode as alone."""
    base = BASE.decode()
    raws = [BASE, BASE.replace(b'"model"', b'"mo\\u0064el"'), BASE, BASE.replace(b'"ts"', b'"tsx"'),
            BASE.replace(b'"ts"', b'"t"'), BASE, BASE.replace(b'"label"', b'"labels"'),
            BASE.replace(b'"label"', b'"labe"'), BASE.replace(b'"label"', b'"l\\u0061bel"'),
            BASE.replace(b'"model"', b'"model_version"'), BASE,
            BASE.replace(b'"outputs": {"label": "a"}', b'"outputs": {"label": "a", "label": "b"}'),
            BASE.replace(b'"outputs": {"label": "a"}', b'"outputs": {"score": 0.5, "label": "a"}'),
            BASE.replace(b'"outputs": {"label": "a"}', b'"outputs": {"label": "a", "score": 0.5}'),
            BASE.replace(b'"outputs": {"label": "a"}', b'"outputs": {"label": "a", "score": 0.5}'),
            BASE.replace(b'"outputs": {"label": "a"}', b'"outputs": {"label": "a", "scor": 0.5}'),
            BASE[:-1] + b', "ts": 5}', BASE[:-1] + b', "ts": 5}', BASE[:-1] + b', "t": 5}',
            ("{" + base[1:].replace('"event_id"', '"prediction_id"', 1).replace('"prediction_id": "p1"',
                                                                                  '"event_id": "p1"')).encode(),
            BASE, BASE[:40], BASE]
    c = check(raws)
    assert [bool(x) for x in c.ok] == [True, True, True, False, False, True, False, False, True, False, True,
                                       False, True, True, True, True, False, False, True, True, True, False, True]


def test_inputs_other_than_bytes() -> None:
    raws: list[Any] = [None, BASE, bytearray(BASE), memoryview(BASE), 5, "text", BASE]
    c = decode_predictions(raws)
    assert list(c.ok) == [False, True, True, True, False, False, True]
    assert decode_predictions([]).n == 0
    with pytest.raises(TypeError):
        decode_predictions(5)  # type: ignore[arg-type]


def test_bench_generators_take_the_fast_path() -> None:
    rng = np.random.default_rng(7)
    raws = [orjson.dumps(sink_event(i, 1764140000000)) for i in range(300)]
    raws += [wide_event(i, 1764140000000 + i, rng, shift=0.5 * (i % 3)) for i in range(300)]
    c = check(raws)
    assert c.ok.all()
    assert set(c.model) == {"m0", "m1", "m2", "m3", "bench-model"}


# -- numbers ------------------------------------------------------------------------------------


def _parse(tok: str) -> Any:
    mod = native.load("_decode")
    assert mod is not None
    return mod.parse_number(tok.encode())


def _same_float(got: Any, tok: str) -> None:
    want = float(tok)
    if math.isinf(want):
        assert got is None, tok
    else:
        assert type(got) is float and struct.pack("<d", got) == struct.pack("<d", want), (tok, got, want)


@settings(max_examples=400, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_repr_round_trips(x: float) -> None:
    _same_float(_parse(repr(x)), repr(x))
    _same_float(_parse(f"{x:.25e}"), f"{x:.25e}")


@settings(max_examples=400, deadline=None)
@given(st.booleans(), st.text("0123456789", min_size=1, max_size=30), st.text("0123456789", max_size=30),
       st.one_of(st.none(), st.integers(-400, 400)))
def test_decimal_strings_convert_like_python(neg: bool, ip: str, fp: str, exp: int | None) -> None:
    ip = ip.lstrip("0") or "0"
    tok = ("-" if neg else "") + ip + ("." + fp if fp else "") + ("" if exp is None else f"e{exp}")
    got = _parse(tok)
    if not fp and exp is None:
        assert got == (int(tok) if -(2**63) <= int(tok) < 2**63 else None), tok
    else:
        _same_float(got, tok)


@settings(max_examples=200, deadline=None)
@given(st.integers(2**52, 2**53 - 1), st.integers(-200, 200))
def test_halfway_cases(m: int, e: int) -> None:
    """Exact decimal spellings of the midpoint of two neighbouring doubles (ties to even), and just above it."""
    with localcontext() as ctx:
        ctx.prec = 1000
        mid = Decimal(2 * m + 1) * Decimal(2) ** (e - 1)
    tok = format(mid, "e")
    mant, exp = tok.split("e")
    fixed = format(mid, "f")
    fixed = fixed if "." in fixed else fixed + ".0"
    for t in (tok, f"{mant}{'' if '.' in mant else '.'}0000001e{exp}", fixed):
        _same_float(_parse(t), t)


@settings(max_examples=300, deadline=None)
@given(st.booleans(), st.one_of(st.integers(0, 10**15), st.integers(0, 10**20), st.sampled_from(
    [2**53 - 1, 2**53, 2**53 + 1, 10**15 - 1, 10**15, 10**15 + 1, 10**16 - 1, 10**19 - 1, 10**19])),
       st.integers(-30, 30), st.integers(0, 6))
def test_short_mantissas_convert_like_python(neg: bool, m: int, q: int, zeros: int) -> None:
    """Clinger's fast path (<= 15 digits, |q| <= 22) and its edges, in every spelling: d.ddd, 0.000ddd,
    ddd000.0, with and without an exponent."""
    digits = str(m)
    sign = "-" if neg else ""
    toks = [f"{sign}{digits}e{q}", f"{sign}{digits}.0e{q}", f"{sign}{digits}{'0' * zeros if m else ''}.0"]
    if q < 0:
        k = -q
        frac = digits.rjust(k, "0")
        ip, fp = (frac[:-k] or "0"), frac[-k:]
        toks.append(f"{sign}{ip.lstrip('0') or '0'}.{fp}{'0' * zeros}")
    else:
        toks.append(f"{sign}{digits[0]}.{digits[1:] or '0'}e{q + len(digits) - 1}")
    for tok in toks:
        _same_float(_parse(tok), tok)


def test_number_corner_tokens() -> None:
    for tok in ("0.0", "-0.0", "0e0", "-0e5", "0.000", "9007199254740993.0", "0.9007199254740993",
                "1e22", "1e23", "123456789012345e22", "123456789012345e-22", "1234567890123456e-22",
                "0.0000000000000000000000123456789012345", "1" * 25 + ".5", "0." + "3" * 40):
        _same_float(_parse(tok), tok)
    assert _parse("0") == 0 and _parse("-0") == 0 and _parse("00") is None and _parse("-00") is None


def test_bad_number_tokens() -> None:
    for bad in ("01", "-01", "1.", ".1", "1e", "1e+", "--1", "1.e5", "0x10", " 1", "1 ", "+1", "Infinity", "NaN", "-"):
        assert _parse(bad) is None, bad


# -- generated events ---------------------------------------------------------------------------

NAMES = st.from_regex(r"\A[A-Za-z0-9_.:/@+-]{1,12}\Z")
TEXT = st.text(max_size=8)
LONG = st.sampled_from(["x" * 256, "x" * 257, "\u00e9" * 256, "\U0001f600" * 257, "x" * 64, "x" * 65, "x" * 129])
FLOATS = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.floats(-1e6, 1e6),
                   st.sampled_from([0.0, -0.0, 1e-320, 5e-324, 1.7976931348623157e308, 0.1, 1 / 3]))
INTS = st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-10, 10))
FEATURE = st.one_of(st.none(), st.booleans(), INTS, FLOATS, TEXT)
UNIT = st.one_of(st.floats(0.0, 1.0), st.sampled_from([0, 1, -0.0]))
ODD = st.one_of(
    LONG, TEXT, st.sampled_from(["", "a b", "m\n", "5", "prediction.v1", "feedback.v1"]),
    st.sampled_from([None, True, False, 0, -1, 1, 1.5, -0.0, 1e308, 2**63, -(2**63) - 1, 10**20, 32503680000000,
                     32503680000001, 1.0000000000000002]),
    st.sampled_from([[], {}, [1.0], {"a": 1}, {"label": "x"}, {"value": None}]).map(copy.deepcopy), FLOATS)
def _maybe(s: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), s)


OUTPUTS = st.fixed_dictionaries({"label": _maybe(TEXT)}, optional={
    "score": _maybe(FLOATS), "probabilities": _maybe(st.dictionaries(TEXT, UNIT, max_size=3)), "value": _maybe(FLOATS)})
PREDICTION = st.fixed_dictionaries(
    {"event_id": st.text(min_size=1, max_size=10), "prediction_id": st.text(min_size=1, max_size=10),
     "ts": st.integers(0, 2**45), "model": NAMES, "model_version": NAMES, "outputs": OUTPUTS},
    optional={
        "schema_version": st.just("prediction.v1"), "latency_ms": _maybe(st.floats(0.0, 1e6)),
        "error": _maybe(TEXT), "inputs": st.dictionaries(NAMES, FEATURE, max_size=6),
        "segment": st.dictionaries(NAMES, TEXT, max_size=3), "embedding": st.none(), "llm": st.none(),
        "lineage": st.none(), "tags": st.dictionaries(NAMES, TEXT, max_size=3), "unknown_field": ODD,
    })


def _containers(ev: Any, out: list[Any]) -> list[Any]:
    if isinstance(ev, dict):
        out.append(ev)
        for v in ev.values():
            _containers(v, out)
    elif isinstance(ev, list) and ev:
        out.append(ev)
        for v in ev:
            _containers(v, out)
    return out


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A generated event, maybe mutated once (value, key, dropped field), then encoded, maybe broken."""
    ev = draw(PREDICTION)
    what = draw(st.sampled_from(["none", "none", "value", "drop", "key"]))
    target = draw(st.sampled_from(_containers(ev, [])))
    if what != "none" and target:
        if isinstance(target, list):
            target[draw(st.integers(0, len(target) - 1))] = draw(ODD)
        else:
            key = draw(st.sampled_from(sorted(target)))
            if what == "value":
                target[key] = draw(ODD)
            elif what == "drop":
                del target[key]
            else:
                target[draw(st.sampled_from(["", "a b", "m\n", "\u00e9", "x" * 129, "ok"]))] = target.pop(key)
    enc = draw(st.sampled_from(["compact", "ascii", "spaced", "dup", "orjson"]))
    if enc == "ascii":
        raw = json.dumps(ev, ensure_ascii=True).encode()
    elif enc == "spaced":
        raw = json.dumps(ev, indent=draw(st.sampled_from([None, 1, "\t"])), ensure_ascii=False).encode()
    elif enc == "dup":
        k = draw(st.sampled_from(sorted(ev)))
        raw = (json.dumps({k: ev[k]})[:-1] + ", " + json.dumps(ev)[1:]).encode()
    elif enc == "orjson":
        try:
            raw = orjson.dumps(ev)
        except orjson.JSONEncodeError:  # integers beyond 64 bits
            raw = json.dumps(ev).encode()
    else:
        raw = json.dumps(ev, ensure_ascii=False, separators=(",", ":")).encode()
    damage = draw(st.sampled_from(["none"] * 8 + ["truncate", "flip", "insert", "delete"]))
    if damage != "none" and raw:
        at = draw(st.integers(0, len(raw) - 1))
        if damage == "truncate":
            raw = raw[:at]
        elif damage == "flip":
            raw = raw[:at] + bytes([raw[at] ^ (1 << draw(st.integers(0, 7)))]) + raw[at + 1:]
        elif damage == "insert":
            raw = raw[:at] + bytes([draw(st.sampled_from(b' ,:"{}[]\\0-.e\x00\x1f\x80\xc3\xff'))]) + raw[at:]
        else:
            raw = raw[:at] + raw[at + 1:]
    return raw


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated(), min_size=1, max_size=6))
def test_generated_predictions(raws: list[bytes]) -> None:
    check(raws)


def test_the_generators_reach_both_outcomes() -> None:
    """Guard against a vacuous property: generated events are both accepted and refused."""
    seen = {"ok": 0, "refused": 0, "contract_ok_c_refused": 0}

    @settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(mutated())
    def run(raw: bytes) -> None:
        ok = bool(decode_predictions([raw]).ok[0])
        seen["ok" if ok else "refused"] += 1
        if not ok and _contract(raw) is not None:
            seen["contract_ok_c_refused"] += 1

    run()
    assert seen["ok"] > 15 and seen["refused"] > 15, seen
