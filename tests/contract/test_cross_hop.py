"""Cross-hop agreement: every hop accepts and refuses exactly the same events, and names the same field.

One corpus — every schema example, mutations of valid events (each limit at its value and one past
it, wrong types, unicode edge cases, duplicate keys, huge numbers, strict JSON) and
hypothesis-generated events — goes through every hop of ``tests/contract/hops.py``: the JSON
Schema, the pydantic models, the SDK (C fast path and Python checks), the sink (C flat decoder,
msgspec, pydantic) and the processor (C columns and msgspec; and msgspec alone). The contract
(pydantic) is the reference; every other hop must give the same decision on every event, and where
it refuses, name the same field. The C decoders and the C encoder may refuse more (the hop's exact
path then decides) but never accept an event the contract refuses.

Before one contract, the processor's structs had no limit on the number of inputs or the length of
``error`` and no ``tags``: the 2,001-input event was counted by the processor and dead-lettered by
the sink (``test_the_2001_input_event_is_refused_by_every_hop``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inferwatch.contract import limits as L
from inferwatch.native import load
from inferwatch.native.prediction_columns import decode_predictions, decode_predictions_py
from inferwatch.paths import schemas_dir
from inferwatch.processor.core.raw_events import Raw
from inferwatch.processor.core.state_machine import ProcessorCore
from inferwatch.processor.settings import ProcessorSettings
from inferwatch.sink.batch import RawMessage, process
from tests.contract import hops
from tests.contract.hops import Verdict

TS = 1764140000000

# -- the corpus ------------------------------------------------------------------------------------


def _pred(**over: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "schema_version": "prediction.v1", "event_id": "e1", "prediction_id": "p1", "ts": TS,
        "model": "photo-verifier", "model_version": "3.2.0", "latency_ms": 12.5,
        "inputs": {"width": 4032, "brightness": 0.61, "device": "pixel-9", "has_face": True, "iso": None},
        "outputs": {"label": "genuine", "score": 0.93, "probabilities": {"genuine": 0.93, "fake": 0.07}},
        "segment": {"device": "pixel-9"}, "tags": {"source": "mobile"},
    }
    ev.update(over)
    return {k: v for k, v in ev.items() if v is not _DROP}


def _full(**over: Any) -> dict[str, Any]:
    """A prediction with every block (the C fast path leaves embedding/llm/lineage to the exact path)."""
    return _pred(**{
        "embedding": [0.1, -0.2, 0.3], "error": None,
        "llm": {"prompt_hash": "h1", "completion": "yes", "completion_chars": 3, "refusal": False,
                "token_logprobs": [-0.1, -2.0], "top_logprobs": [[-0.1, -3.0]], "input_tokens": 10,
                "output_tokens": 1, "finish_reason": "stop"},
        "lineage": [{"kind": "items", "model": "ranker", "model_version": "7", "share": 0.4}],
        **over,
    })


def _fb(**over: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {"schema_version": "feedback.v1", "event_id": "f1", "prediction_id": "p1", "ts": TS,
                          "model": "photo-verifier", "model_version": "3.2.0", "label": "genuine",
                          "tags": {"source": "review"}}
    ev.update(over)
    return {k: v for k, v in ev.items() if v is not _DROP}


_DROP = object()


def _dumps(ev: Any) -> bytes:
    return json.dumps(ev, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _with(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``base`` with ``value`` at ``path`` (``outputs.score``, ``llm.token_logprobs``)."""
    ev = json.loads(json.dumps(base))
    node = ev
    *parents, last = path.split(".")
    for p in parents:
        node = node[p]
    if value is _DROP:
        node.pop(last, None)
    else:
        node[last] = value
    return ev


def _limit_cases() -> list[tuple[str, bytes]]:
    """Every limit of the contract at its value (valid) and one past it (invalid), on both event types."""
    out: list[tuple[str, bytes]] = []

    def both(name: str, ok: dict[str, Any], bad: dict[str, Any]) -> None:
        out.append((f"{name}=limit", _dumps(ok)))
        out.append((f"{name}=limit+1", _dumps(bad)))

    p, f = _pred(), _full()
    for field, n in (("event_id", L.EVENT_ID_MAX), ("prediction_id", L.PREDICTION_ID_MAX)):
        both(field, _with(p, field, "x" * n), _with(p, field, "x" * (n + 1)))
        out.append((f"{field}=empty", _dumps(_with(p, field, ""))))
        both(f"fb.{field}", _with(_fb(), field, "x" * n), _with(_fb(), field, "x" * (n + 1)))
    both("model", _with(p, "model", "m" * L.NAME_MAX), _with(p, "model", "m" * (L.NAME_MAX + 1)))
    both("model_version", _with(p, "model_version", "v" * L.VERSION_MAX), _with(p, "model_version", "v" * (L.VERSION_MAX + 1)))
    both("fb.model_version", _with(_fb(), "model_version", "v" * L.VERSION_MAX),
         _with(_fb(), "model_version", "v" * (L.VERSION_MAX + 1)))
    both("lineage.model_version", _with(f, "lineage", [{"model": "r", "model_version": "v" * L.VERSION_MAX}]),
         _with(f, "lineage", [{"model": "r", "model_version": "v" * (L.VERSION_MAX + 1)}]))
    for key_field in ("inputs", "segment", "tags"):
        both(f"{key_field}.key", _with(p, key_field, {"k" * L.NAME_MAX: "x"}), _with(p, key_field, {"k" * (L.NAME_MAX + 1): "x"}))
    both("fb.tags.key", _with(_fb(), "tags", {"k" * L.NAME_MAX: "x"}), _with(_fb(), "tags", {"k" * (L.NAME_MAX + 1): "x"}))
    # short texts, counted in code points: ASCII, two-byte and astral (one code point, two UTF-16 units)
    for ch in ("a", "é", "😀"):
        n = L.SHORT_TEXT_MAX
        both(f"label[{ch}]", _with(p, "outputs.label", ch * n), _with(p, "outputs.label", ch * (n + 1)))
        both(f"inputs.value[{ch}]", _with(p, "inputs", {"c": ch * n}), _with(p, "inputs", {"c": ch * (n + 1)}))
        both(f"segment.value[{ch}]", _with(p, "segment", {"s": ch * n}), _with(p, "segment", {"s": ch * (n + 1)}))
        both(f"tags.value[{ch}]", _with(p, "tags", {"t": ch * n}), _with(p, "tags", {"t": ch * (n + 1)}))
        both(f"probabilities.key[{ch}]", _with(p, "outputs.probabilities", {ch * n: 0.5}),
             _with(p, "outputs.probabilities", {ch * (n + 1): 0.5}))
        both(f"fb.label[{ch}]", _with(_fb(), "label", ch * n), _with(_fb(), "label", ch * (n + 1)))
        both(f"error[{ch}]", _with(p, "error", ch * L.ERROR_MAX), _with(p, "error", ch * (L.ERROR_MAX + 1)))
    both("finish_reason", _with(f, "llm.finish_reason", "s" * L.SHORT_TEXT_MAX), _with(f, "llm.finish_reason", "s" * (L.SHORT_TEXT_MAX + 1)))
    both("prompt_hash", _with(f, "llm.prompt_hash", "h" * L.HASH_MAX), _with(f, "llm.prompt_hash", "h" * (L.HASH_MAX + 1)))
    out.append(("prompt_hash=empty", _dumps(_with(f, "llm.prompt_hash", ""))))
    both("prompt", _with(f, "llm.prompt", "p" * L.LLM_TEXT_MAX), _with(f, "llm.prompt", "p" * (L.LLM_TEXT_MAX + 1)))
    # counts
    both("inputs.count", _with(p, "inputs", {f"f{i}": 1.0 for i in range(L.MAX_INPUTS)}),
         _with(p, "inputs", {f"f{i}": 1.0 for i in range(L.MAX_INPUTS + 1)}))
    both("segment.count", _with(p, "segment", {f"s{i}": "x" for i in range(L.MAX_SEGMENT)}),
         _with(p, "segment", {f"s{i}": "x" for i in range(L.MAX_SEGMENT + 1)}))
    both("tags.count", _with(p, "tags", {f"t{i}": "x" for i in range(L.MAX_TAGS)}),
         _with(p, "tags", {f"t{i}": "x" for i in range(L.MAX_TAGS + 1)}))
    both("fb.tags.count", _with(_fb(), "tags", {f"t{i}": "x" for i in range(L.MAX_TAGS)}),
         _with(_fb(), "tags", {f"t{i}": "x" for i in range(L.MAX_TAGS + 1)}))
    both("probabilities.count", _with(p, "outputs.probabilities", {f"c{i}": 0.0 for i in range(L.MAX_PROBABILITIES)}),
         _with(p, "outputs.probabilities", {f"c{i}": 0.0 for i in range(L.MAX_PROBABILITIES + 1)}))
    both("embedding.count", _with(f, "embedding", [0.5] * L.MAX_EMBEDDING), _with(f, "embedding", [0.5] * (L.MAX_EMBEDDING + 1)))
    both("embedding.min", _with(f, "embedding", [0.5]), _with(f, "embedding", []))
    both("token_logprobs.count", _with(f, "llm.token_logprobs", [-1.0] * L.MAX_LOGPROBS),
         _with(f, "llm.token_logprobs", [-1.0] * (L.MAX_LOGPROBS + 1)))
    both("top_logprobs.count", _with(f, "llm.top_logprobs", [[-1.0]] * L.MAX_LOGPROBS),
         _with(f, "llm.top_logprobs", [[-1.0]] * (L.MAX_LOGPROBS + 1)))
    both("lineage.count", _with(f, "lineage", [{"model": "r", "model_version": "1"}] * L.MAX_LINEAGE),
         _with(f, "lineage", [{"model": "r", "model_version": "1"}] * (L.MAX_LINEAGE + 1)))
    # numbers
    both("ts.max", _with(p, "ts", L.TS_MAX_MS), _with(p, "ts", L.TS_MAX_MS + 1))
    both("ts.min", _with(p, "ts", L.TS_MIN_MS), _with(p, "ts", L.TS_MIN_MS - 1))
    both("fb.ts.max", _with(_fb(), "ts", L.TS_MAX_MS), _with(_fb(), "ts", L.TS_MAX_MS + 1))
    for k in ("completion_chars", "input_tokens", "output_tokens"):
        both(f"llm.{k}", _with(f, f"llm.{k}", L.LLM_COUNT_MAX), _with(f, f"llm.{k}", L.LLM_COUNT_MAX + 1))
        out.append((f"llm.{k}=-1", _dumps(_with(f, f"llm.{k}", -1))))
    both("probability.max", _with(p, "outputs.probabilities", {"a": 1.0}), _with(p, "outputs.probabilities", {"a": 1.0000000000000002}))
    both("probability.min", _with(p, "outputs.probabilities", {"a": 0.0}), _with(p, "outputs.probabilities", {"a": -5e-324}))
    both("share.max", _with(f, "lineage", [{"model": "r", "model_version": "1", "share": 1}]),
         _with(f, "lineage", [{"model": "r", "model_version": "1", "share": 1.0000000000000002}]))
    both("logprob.max", _with(f, "llm.token_logprobs", [0.0, -0.0]), _with(f, "llm.token_logprobs", [5e-324]))
    both("latency.min", _with(p, "latency_ms", -0.0), _with(p, "latency_ms", -5e-324))
    return out


def _raw_cases() -> list[tuple[str, bytes]]:
    """Mutations written as bytes: types, unicode, duplicate keys, huge numbers, strict JSON."""
    good = orjson.dumps(_pred())
    body = good[1:-1]

    def _sub(old: bytes, new: bytes) -> bytes:
        assert old in good, old
        return good.replace(old, new, 1)
    out: list[tuple[str, bytes]] = [
        ("valid", good), ("valid.full", _dumps(_full())), ("valid.error-only", _dumps(_pred(outputs=None, error="boom"))),
        ("valid.error-empty", _dumps(_pred(outputs=_DROP, error=""))),
        ("no-outputs-no-error", _dumps(_pred(outputs=None))), ("outputs-empty", _dumps(_pred(outputs={}))),
        ("outputs-all-null", _dumps(_pred(outputs={"label": None, "score": None}))),
        ("outputs-unknown-only", _dumps(_pred(outputs={"lbl": "x"}))),
        ("valid.minimal", _dumps({"event_id": "e", "prediction_id": "p", "ts": 0, "model": "m", "model_version": "v",
                                  "outputs": {"value": 0}})),
        ("missing-model", _dumps(_pred(model=_DROP))), ("missing-ts", _dumps(_pred(ts=_DROP))),
        ("missing-event_id", _dumps(_pred(event_id=_DROP))),
        # strict wire types
        ("ts-float", _sub(b'"ts":1764140000000', b'"ts":1764140000000.0')),
        ("ts-exp", _sub(b'"ts":1764140000000', b'"ts":1.76414e12')),
        ("ts-string", _dumps(_pred(ts=str(TS)))), ("ts-bool", _dumps(_pred(ts=True))), ("ts-null", _dumps(_pred(ts=None))),
        ("score-string", _dumps(_with(_pred(), "outputs.score", "0.5"))),
        ("score-bool", _dumps(_with(_pred(), "outputs.score", True))),
        ("score-int", _dumps(_with(_pred(), "outputs.score", 1))),
        ("latency-string", _dumps(_pred(latency_ms="12"))), ("latency-null", _dumps(_pred(latency_ms=None))),
        ("refusal-int", _dumps(_with(_full(), "llm.refusal", 1))), ("refusal-string", _dumps(_with(_full(), "llm.refusal", "true"))),
        ("model-int", _dumps(_pred(model=7))), ("inputs-list", _dumps(_pred(inputs=[1]))), ("inputs-string", _dumps(_pred(inputs="x"))),
        ("inputs-null", _dumps(_pred(inputs=None))), ("segment-null", _dumps(_pred(segment=None))), ("tags-null", _dumps(_pred(tags=None))),
        ("inputs-value-list", _dumps(_pred(inputs={"a": [1]}))), ("inputs-value-object", _dumps(_pred(inputs={"a": {"b": 1}}))),
        ("outputs-string", _dumps(_pred(outputs="genuine"))), ("outputs-list", _dumps(_pred(outputs=["label"]))),
        ("segment-value-int", _dumps(_pred(segment={"device": 9}))), ("segment-value-null", _dumps(_pred(segment={"device": None}))),
        ("tags-value-null", _dumps(_pred(tags={"a": None}))), ("error-int", _dumps(_pred(error=5))),
        ("embedding-bool", _dumps(_with(_full(), "embedding", [True]))), ("embedding-string", _dumps(_with(_full(), "embedding", ["1"]))),
        ("embedding-ints", _dumps(_with(_full(), "embedding", [1, 2, 3]))), ("embedding-object", _dumps(_with(_full(), "embedding", {"a": 1}))),
        ("llm-string", _dumps(_with(_full(), "llm", "x"))), ("llm-null", _dumps(_with(_full(), "llm", None))),
        ("lineage-object", _dumps(_with(_full(), "lineage", {"model": "r"}))), ("lineage-item-int", _dumps(_with(_full(), "lineage", [1]))),
        ("lineage-kind", _dumps(_with(_full(), "lineage", [{"kind": "bogus", "model": "r", "model_version": "1"}]))),
        ("lineage-missing-version", _dumps(_with(_full(), "lineage", [{"model": "r"}]))),
        ("lineage-bad-name", _dumps(_with(_full(), "lineage", [{"model": "r r", "model_version": "1"}]))),
        ("top_logprobs-flat", _dumps(_with(_full(), "llm.top_logprobs", [-1.0]))),
        ("schema_version-v2", _dumps(_pred(schema_version="prediction.v2"))), ("schema_version-null", _dumps(_pred(schema_version=None))),
        ("schema_version-absent", _dumps(_pred(schema_version=_DROP))),
        ("top-array", b"[1,2]"), ("top-string", b'"prediction"'), ("top-null", b"null"), ("top-number", b"5"),
        ("empty", b""), ("whitespace", b"  \n"), ("truncated", good[:-1]), ("trailing-garbage", good + b"x"),
        ("trailing-comma", good[:-1] + b",}"), ("surrounding-whitespace", b" \n\t" + good + b"\r\n "),
        ("bom", b"\xef\xbb\xbf" + good), ("nan-literal", _sub(b'"latency_ms":12.5', b'"latency_ms":NaN')),
        ("infinity-literal", _sub(b'"latency_ms":12.5', b'"latency_ms":Infinity')),
        ("single-quotes", good.replace(b'"e1"', b"'e1'")), ("leading-zero", _sub(b'"latency_ms":12.5', b'"latency_ms":012.5')),
        # unicode
        ("model-accent", _dumps(_pred(model="modèle"))), ("model-newline", _dumps(_pred(model="m\n"))),
        ("model-space", _dumps(_pred(model="m "))), ("model-empty", _dumps(_pred(model=""))), ("model-nul", _dumps(_pred(model="m\x00"))),
        ("version-slash-ok", _dumps(_pred(model_version="a_.:/@+-Z9"))), ("model-fullwidth", _dumps(_pred(model="ｍ"))),
        ("inputs-key-accent", _dumps(_pred(inputs={"é": 1.0}))), ("inputs-key-newline", _dumps(_pred(inputs={"a\n": 1.0}))),
        ("inputs-key-empty", _dumps(_pred(inputs={"": 1.0}))), ("segment-key-space", _dumps(_pred(segment={"a b": "x"}))),
        ("tags-key-accent", _dumps(_pred(tags={"ñ": "x"}))),
        ("label-lone-surrogate", good.replace(b'"genuine"', b'"\\ud800"', 1)),
        ("label-reversed-surrogates", good.replace(b'"genuine"', b'"\\udc00\\ud800"', 1)),
        ("label-escaped-pair", good.replace(b'"genuine"', b'"\\ud83d\\ude00"', 1)),
        ("label-nul-escape", good.replace(b'"genuine"', b'"a\\u0000b"', 1)),
        ("label-raw-control", good.replace(b'"genuine"', b'"a\x01b"', 1)),
        ("label-bad-escape", good.replace(b'"genuine"', b'"a\\xb"', 1)),
        ("label-invalid-utf8", good.replace(b'"genuine"', b'"a\xff"', 1)),
        ("label-overlong-utf8", good.replace(b'"genuine"', b'"a\xc0\xaf"', 1)),
        ("label-encoded-surrogate", good.replace(b'"genuine"', b'"a\xed\xa0\x80"', 1)),
        ("key-escaped", good.replace(b'"brightness"', b'"bright\\u006eess"', 1)),
        ("model-escaped-ok", good.replace(b'"photo-verifier"', b'"photo\\u002dverifier"', 1)),
        # duplicate keys: the last one wins on every hop (the C fast path refuses and leaves it to the exact path)
        ("dup-ts-last-valid", _sub(b'"ts":1764140000000', b'"ts":"x","ts":1764140000000')),
        ("dup-ts-last-invalid", _sub(b'"ts":1764140000000', b'"ts":1764140000000,"ts":-1')),
        ("dup-inputs-key", _sub(b'"width":4032', b'"width":[1],"width":4032')),
        ("dup-outputs", body + b',"outputs":{"label":"x"}'), ("dup-model-bad-last", body + b',"model":"a b"'),
        # huge and tiny numbers
        ("feature-2^64", _dumps(_pred(inputs={"a": 2**64}))), ("feature-2^70", _dumps(_pred(inputs={"a": 2**70}))),
        ("feature-min-int64-1", _dumps(_pred(inputs={"a": -(2**63) - 1}))),
        ("feature-400-digits", _sub(b'"width":4032', b'"width":' + b"9" * 400)),
        ("feature-300-digits", _sub(b'"width":4032', b'"width":' + b"9" * 300)),
        ("feature-1e308", _sub(b'"width":4032', b'"width":1e308')),
        ("feature-1e309", _sub(b'"width":4032', b'"width":1e309')),
        ("feature-max-double", _sub(b'"width":4032', b'"width":1.7976931348623157e308')),
        ("feature-just-over-max", _sub(b'"width":4032', b'"width":1.7976931348623159e308')),
        ("feature-underflow", _sub(b'"width":4032', b'"width":1e-400')),
        ("feature-negative-zero", _sub(b'"width":4032', b'"width":-0')),
        ("feature-long-mantissa", _sub(b'"width":4032', b'"width":0.' + b"1" * 800)),
        ("score-1e400", _sub(b'"score":0.93', b'"score":1e400')),
        ("score-neg-1e400", _sub(b'"score":0.93', b'"score":-1e400')),
        ("latency-1e309", _sub(b'"latency_ms":12.5', b'"latency_ms":1e309')),
        ("latency-big-int", _sub(b'"latency_ms":12.5', b'"latency_ms":' + b"1" * 30)),
        ("ts-big-int", _sub(b'"ts":1764140000000', b'"ts":' + b"1" * 30)),
        ("tokens-big-int", _dumps(_with(_full(), "llm.output_tokens", 10**30))),
        ("embedding-1e309", _dumps(_full()).replace(b"[0.1, -0.2, 0.3]", b"[0.1, 1e309]")),
        # unknown fields are ignored, but must still be JSON
        ("unknown-top", _dumps(_pred(extra={"nested": [1, {"a": None}]}))),
        ("unknown-outputs", _dumps(_with(_pred(), "outputs.margin", 0.1))),
        ("unknown-llm", _dumps(_with(_full(), "llm.temperature", 0.7))),
        ("unknown-lineage", _dumps(_with(_full(), "lineage", [{"model": "r", "model_version": "1", "weight": 2}]))),
        ("unknown-deep-50", good[:-1] + b',"x":' + b"[" * 50 + b"]" * 50 + b"}"),
        ("unknown-nan", good[:-1] + b',"x":NaN}'),
        # feedback
        ("fb.valid", _dumps(_fb())), ("fb.value", _dumps(_fb(label=_DROP, value=3.5))), ("fb.no-version", _dumps(_fb(model_version=_DROP))),
        ("fb.neither", _dumps(_fb(label=_DROP))), ("fb.both-null", _dumps(_fb(label=None, value=None))),
        ("fb.value-string", _dumps(_fb(value="3"))), ("fb.value-1e400", orjson.dumps(_fb()).replace(b'"label":"genuine"', b'"value":1e400')),
        ("fb.model-bad", _dumps(_fb(model="a b"))), ("fb.version-bad", _dumps(_fb(model_version="v\n"))),
        ("fb.version-null", _dumps(_fb(model_version=None))), ("fb.tags-key-bad", _dumps(_fb(tags={"a b": "x"}))),
        ("fb.tags-null", _dumps(_fb(tags=None))), ("fb.ts-float", orjson.dumps(_fb()).replace(b'"ts":1764140000000', b'"ts":1764140000000.0')),
        ("fb.wrong-schema", _dumps(_fb(schema_version="prediction.v1"))), ("fb.label-int", _dumps(_fb(label=1))),
    ]
    return out


def _examples() -> list[tuple[str, bytes]]:
    out = []
    for kind in ("prediction", "feedback"):
        for path in sorted((schemas_dir() / "examples" / kind).glob("*/*.json")):
            doc = json.loads(path.read_text())
            ev = doc["event"] if path.parent.name == "invalid" else doc
            out.append((f"example:{kind}/{path.parent.name}/{path.stem}", _dumps(ev)))
    return out


def _schema_of(name: str) -> str:
    return "feedback.v1" if name.startswith(("fb.", "example:feedback")) else "prediction.v1"


def corpus() -> dict[str, list[tuple[str, bytes]]]:
    """The whole fixed corpus, by schema."""
    out: dict[str, list[tuple[str, bytes]]] = {"prediction.v1": [], "feedback.v1": []}
    for name, raw in [*_examples(), *_limit_cases(), *_raw_cases()]:
        out[_schema_of(name)].append((name, raw))
    return out


# -- the hops that take a batch ----------------------------------------------------------------------


def _sink(schema: str, raws: list[bytes]) -> list[Verdict]:
    batch = process(schema, "t.cross-hop", 0, [RawMessage(i, None, r) for i, r in enumerate(raws)])
    out = [hops.OK] * len(raws)
    for dl in batch.dead_letters:
        out[dl.source_offset] = Verdict(False, hops.field_of(schema, dl.error_path or ""), dl.reason)
    stored = set(batch.rows.column("kafka_offset").to_pylist()) if batch.rows is not None else set()
    for i in range(len(raws)):
        assert out[i].ok == (i in stored), f"sink: message {i} neither stored nor dead-lettered, or both"
    return out


def _processor(schema: str, raws: list[bytes], fast: bool) -> list[Verdict]:
    cfg = ProcessorSettings(window_s=60, lateness_s=0, baseline_s=60)
    core = ProcessorCore(cfg, fast=fast)
    if schema == "prediction.v1":
        out_ = core.process_prediction_values(raws, "t.cross-hop", 0, range(len(raws)), now=0.0)
    else:
        out_ = core.process_feedback([Raw(r, "t.cross-hop", 0, i) for i, r in enumerate(raws)], now=0.0)
    out = [hops.OK] * len(raws)
    for rej in out_.rejected:
        out[rej.raw.offset] = Verdict(False, hops.msgspec_field(schema, rej.reason), rej.reason)
    return out


# -- the comparison ------------------------------------------------------------------------------------


# The contract's rules over several fields ("outputs or error", "a label or a value") are refused as
# the event's ("") by the models, msgspec and the JSON Schema; the SDK, which speaks to a caller,
# names the argument that is missing. Only these fields stand for "the event" in a refusal.
_RULE_FIELDS = {"prediction.v1": {"outputs"}, "feedback.v1": {"label"}}


def _run(schema: str, cases: list[tuple[str, bytes]], sdk: hops.SDK) -> list[str]:
    """Every disagreement with the contract on ``cases``, one line each (empty: all hops agree)."""
    names = [n for n, _ in cases]
    raws = [r for _, r in cases]
    ref = [hops.pydantic(schema, r) for r in raws]
    per_hop: dict[str, list[Verdict | None]] = {
        "json_schema": [hops.json_schema(schema, r) for r in raws],
        "sink": list(_sink(schema, raws)),
        "processor": list(_processor(schema, raws, fast=True)),
        "processor(python)": list(_processor(schema, raws, fast=False)),
        "sdk": [sdk(schema, r) for r in raws],
    }
    problems: list[str] = []
    for hop, verdicts in per_hop.items():
        for name, want, got in zip(names, ref, verdicts, strict=True):
            if got is None:  # not applicable (an SDK call cannot express this event)
                continue
            if got.ok != want.ok:
                problems.append(f"{hop}: {name}: {'accepts' if got.ok else 'refuses'}, the contract "
                                f"{'accepts' if want.ok else 'refuses'} ({(got.detail or want.detail)[:160]})")
            elif not got.ok and want.errors == 1:  # which field an event with several errors is refused for is each hop's choice
                fields = got.names()
                if want.field not in fields and not (want.field == "" and set(fields) <= _RULE_FIELDS.get(schema, set())):
                    problems.append(f"{hop}: {name}: names {got.field!r}, the contract {want.field!r} "
                                    f"({got.detail[:120]} / {want.detail[:120]})")
    if schema == "prediction.v1":
        # fast paths: never accept what the contract refuses
        for label, cols in (("c_decoder", decode_predictions(raws) if load("_decode") else None),
                            ("py_twin", decode_predictions_py(raws))):
            if cols is None:
                problems.append(f"{label}: the compiled decoder is not built (make install)")
                continue
            for name, want, ok in zip(names, ref, np.asarray(cols.ok).tolist(), strict=True):
                if ok and not want.ok:
                    problems.append(f"{label}: {name}: accepts an event the contract refuses ({want.detail[:120]})")
        for name, raw in zip(names, raws, strict=True):
            enc = hops.sdk_c(raw)
            if enc is not None and enc and not hops.pydantic(schema, _c_bytes(raw)).ok:
                problems.append(f"sdk_c: {name}: writes an event the contract refuses")
    return problems


def _c_bytes(raw: bytes) -> bytes:
    """The bytes the C encoder writes for the SDK call of ``raw``."""
    import itertools

    call = hops.sdk_call("prediction.v1", raw)
    assert call is not None
    enc = load("_encode").Encoder(call["model"], call["model_version"])  # type: ignore[union-attr]
    enc.use_ids("e", itertools.count())
    out = enc.prediction(call.get("inputs"), call.get("outputs"), call.get("latency_ms"), call.get("segment"))
    assert out is not None
    return out[1]


@pytest.fixture(scope="module")
def sdk() -> Any:
    s = hops.SDK()
    yield s
    s.close()


@pytest.mark.parametrize("schema", ["prediction.v1", "feedback.v1"])
def test_every_hop_agrees_with_the_contract_on_the_corpus(schema: str, sdk: hops.SDK) -> None:
    cases = corpus()[schema]
    ref = [hops.pydantic(schema, r) for _, r in cases]
    # the corpus exercises both outcomes, and its mutations break one rule each (so the field is compared)
    assert sum(v.ok for v in ref) >= 10 and sum(not v.ok for v in ref) >= 10
    several = [n for (n, _), v in zip(cases, ref, strict=True) if v.errors > 1]
    assert not several, f"cases breaking more than one rule: {several}"
    problems = _run(schema, cases, sdk)
    assert not problems, f"{len(problems)} disagreements:\n" + "\n".join(problems)


def test_the_corpus_decides_as_written() -> None:
    """The cases named for their outcome have it (the corpus itself is not wrong)."""
    for schema, cases in corpus().items():
        for name, raw in cases:
            v = hops.pydantic(schema, raw)
            if name.endswith("=limit") or name.startswith(("valid", "fb.valid", "example:prediction/valid",
                                                            "example:feedback/valid")):
                assert v.ok, (name, v.detail)
            elif name.endswith(("=limit+1", "=empty", "=-1")) or "/invalid/" in name:
                assert not v.ok, name


def test_the_2001_input_event_is_refused_by_every_hop(sdk: hops.SDK) -> None:
    """The issue's example: before one contract, the processor counted it and the sink dead-lettered it."""
    raw = _dumps(_pred(inputs={f"f{i}": float(i) for i in range(L.MAX_INPUTS + 1)}))
    assert not hops.pydantic("prediction.v1", raw).ok
    assert not hops.json_schema("prediction.v1", raw).ok
    assert [v.field for v in _sink("prediction.v1", [raw])] == ["inputs"]
    for fast in (True, False):
        (v,) = _processor("prediction.v1", [raw], fast)
        assert not v.ok and v.field == "inputs", v
    got = sdk("prediction.v1", raw)
    assert got is not None and not got.ok and got.field == "inputs"
    assert not decode_predictions([raw]).ok[0]


# -- generated events ---------------------------------------------------------------------------------

_names = st.from_regex(r"\A[A-Za-z0-9_.:/@+-]{1,10}\Z")
_text = st.text(max_size=12)
_num = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**70), 2**70))
_feature = st.one_of(_num, st.booleans(), _text, st.none())
_events = st.fixed_dictionaries(
    {"event_id": st.text(min_size=1, max_size=8), "prediction_id": st.text(min_size=1, max_size=8),
     "ts": st.integers(-5, L.TS_MAX_MS + 5), "model": _names, "model_version": _names},
    optional={
        "schema_version": st.just("prediction.v1"),
        "latency_ms": st.one_of(st.floats(-1, 1e6, allow_nan=False), st.integers(-1, 10**6), st.none()),
        "inputs": st.dictionaries(st.one_of(_names, st.sampled_from(["a b", "é", ""])), _feature, max_size=6),
        "outputs": st.one_of(st.none(), st.fixed_dictionaries({}, optional={
            "label": st.one_of(_text, st.none(), st.integers()), "score": st.one_of(_num, st.none(), st.text(max_size=2)),
            "probabilities": st.dictionaries(_text, st.floats(-0.5, 1.5, allow_nan=False), max_size=3),
            "value": st.one_of(_num, st.none())})),
        "segment": st.dictionaries(_names, st.one_of(_text, st.integers()), max_size=3),
        "tags": st.dictionaries(st.one_of(_names, st.just("x y")), _text, max_size=3),
        "error": st.one_of(st.none(), _text),
        "embedding": st.lists(st.floats(-10, 10, allow_nan=False), max_size=4),
        "llm": st.fixed_dictionaries({}, optional={
            "token_logprobs": st.lists(st.floats(-5, 0.5, allow_nan=False), max_size=3),
            "completion_chars": st.integers(-1, 2**33), "refusal": st.one_of(st.booleans(), st.integers(0, 1)),
            "prompt_hash": st.text(max_size=3)}),
        "lineage": st.lists(st.fixed_dictionaries({"model": _names, "model_version": _names},
                                                  optional={"share": st.floats(-0.5, 1.5, allow_nan=False),
                                                            "kind": st.sampled_from(["items", "other", "x"])}),
                            max_size=2),
    },
)


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(st.lists(_events, min_size=60, max_size=60))
def test_every_hop_agrees_on_generated_events(evs: list[dict[str, Any]]) -> None:
    sdk = hops.SDK()
    try:
        cases = [(f"generated[{i}]", _dumps(ev)) for i, ev in enumerate(evs)]
        problems = _run("prediction.v1", cases, sdk)
    finally:
        sdk.close()
    assert not problems, "\n".join(problems) + "\n" + "\n".join(f"{n}: {r[:300]!r}" for n, r in cases)


def test_corpus_file_list_is_current() -> None:
    """Every example file of the two high-volume schemas is in the corpus."""
    names = {n for cases in corpus().values() for n, _ in cases}
    for kind in ("prediction", "feedback"):
        for path in (schemas_dir() / "examples" / kind).glob("*/*.json"):
            assert f"example:{kind}/{path.parent.name}/{path.stem}" in names
    assert Path(hops.__file__).is_file()
