"""The SDK's fast validator: checks an SDK call against the event contract without pydantic.

Pydantic costs ≈5 µs per event, more than the whole budget of ``prediction()``. These functions
check types and shapes by hand, in the same terms as :mod:`inferwatch.contract.events` but never
looser (a unit test with hypothesis checks that whatever is accepted here also validates as
``PredictionV1``/``FeedbackV1``), and raise :class:`EventValidationError` naming the field path.

They return the values to put in the event: the caller's own objects when nothing needs
converting (no copies on the hot path), converted copies when numpy values or tuples were given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from inferwatch.contract import limits as L
from inferwatch.sdk.errors import EventValidationError as _Err

# Every limit is the contract's (inferwatch.contract.limits); these names are the SDK's own spelling.
_NAME_RE = re.compile(L.NAME_FULLMATCH)
_I64_MIN = -(1 << 63)
_U64_MAX = (1 << 64) - 1  # orjson serialises ints in [-2**63, 2**64); a number beyond is sent as a float
SHORT = L.SHORT_TEXT_MAX
MAX_INPUTS = L.MAX_INPUTS
MAX_SEGMENT = L.MAX_SEGMENT
MAX_TAGS = L.MAX_TAGS
MAX_EMBEDDING = L.MAX_EMBEDDING
MAX_LOGPROBS = L.MAX_LOGPROBS
MAX_ERROR = L.ERROR_MAX
MAX_PREDICTION_ID = L.PREDICTION_ID_MAX
LINEAGE_KINDS = frozenset(L.LINEAGE_KINDS)
OUTPUT_FIELDS = ("label", "score", "probabilities", "value")
LLM_FIELDS = frozenset({
    "prompt", "completion", "prompt_hash", "completion_hash", "completion_chars", "refusal",
    "token_logprobs", "top_logprobs", "input_tokens", "output_tokens", "finish_reason",
})

# Names seen valid once are remembered, so the regex runs once per feature name, not per event.
_KNOWN_NAMES: set[str] = set()
_KNOWN_NAMES_MAX = 100_000


#: ``known_names_superset(d)``: whether every key of ``d`` already passed :func:`check_name` as a
#: feature/segment/tag name (a bound C method, so the logger's fast path pays no Python call).
known_names_superset = _KNOWN_NAMES.issuperset


def check_name(value: Any, path: str, max_len: int = L.NAME_MAX) -> str:
    """A model/feature/segment name: 1..max_len chars of the contract's alphabet (``limits.NAME_ALPHABET``)."""
    if type(value) is not str:
        raise _Err(path, f"must be a str, got {type(value).__name__}")
    if not 0 < len(value) <= max_len:
        raise _Err(path, f"must be 1..{max_len} characters, got {len(value)}")
    if _NAME_RE.fullmatch(value) is None:
        raise _Err(path, f"{value!r} has characters outside [{L.NAME_ALPHABET}]")
    return value


def _key(k: Any, path: str) -> None:
    check_name(k, f"{path}[{k!r}]")
    if len(_KNOWN_NAMES) < _KNOWN_NAMES_MAX:
        _KNOWN_NAMES.add(k)


def _as_dict(value: Any, path: str) -> dict[Any, Any]:
    if type(value) is dict:
        return value
    if isinstance(value, Mapping):
        return dict(value)
    raise _Err(path, f"must be a dict, got {type(value).__name__}")


def _numpy_scalar(v: Any) -> Any:
    """Convert a numpy scalar to its Python value; anything else unchanged (numpy not imported)."""
    if type(v).__module__ == "numpy" and hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
        return v.item()
    return v


def features(inputs: Any, path: str = "inputs") -> dict[str, Any]:
    """``dict[Name, number|bool|str(≤SHORT)|None]`` with finite numbers, at most ``MAX_INPUTS`` entries."""
    if type(inputs) is not dict:
        inputs = _as_dict(inputs, path)
    if len(inputs) > MAX_INPUTS:
        raise _Err(path, f"at most {MAX_INPUTS} features, got {len(inputs)}")
    # The common case in two tight loops: every key already known, every value a plain scalar.
    if not _KNOWN_NAMES.issuperset(inputs):
        for k in inputs:
            if k not in _KNOWN_NAMES:
                _key(k, path)
    for val in inputs.values():
        t = type(val)
        if t is float:
            if val - val != 0.0:  # inf - inf and nan - nan are nan
                return _features_slow(inputs, path)
        elif t is str:
            if len(val) > SHORT:
                return _features_slow(inputs, path)
        elif t is int:
            if not _I64_MIN <= val <= _U64_MAX:
                return _features_slow(inputs, path)
        elif val is not None and t is not bool:
            return _features_slow(inputs, path)
    return inputs


def _features_slow(inputs: dict[Any, Any], path: str) -> dict[str, Any]:
    """Name the offending feature, or convert numpy scalars and subclasses into a copy."""
    fixed: dict[str, Any] | None = None
    for k, val in inputs.items():
        t = type(val)
        if t is float:
            if val - val != 0.0:
                raise _Err(f"{path}.{k}", f"must be finite, got {val!r}")
        elif t is str:
            if len(val) > SHORT:
                raise _Err(f"{path}.{k}", f"strings are at most {SHORT} characters, got {len(val)}")
        elif t is int:
            if not _I64_MIN <= val <= _U64_MAX:  # a number like any other, sent as the double it is
                conv = _big_int(val, f"{path}.{k}")
                if fixed is None:
                    fixed = dict(inputs)
                fixed[k] = conv
        elif val is None or t is bool:
            pass
        else:
            conv = _feature_slow(val, f"{path}.{k}")
            if fixed is None:
                fixed = dict(inputs)
            fixed[k] = conv
    return inputs if fixed is None else fixed


def _feature_slow(v: Any, path: str) -> Any:
    """Subclasses of float/int/str and numpy scalars, converted to plain Python values."""
    v = _numpy_scalar(v)
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, int):
        if not _I64_MIN <= v <= _U64_MAX:
            return _big_int(int(v), path)
        return int(v)
    if isinstance(v, float):
        return finite(float(v), path)
    if isinstance(v, str):
        return short_text(str(v), path)
    raise _Err(path, f"a feature must be a number, bool, str or None, got {type(v).__name__}")


def finite(v: Any, path: str, lo: float | None = None, hi: float | None = None) -> float | int:
    """A finite float or int (not bool), optionally within [lo, hi]."""
    t = type(v)
    if t is not float and t is not int:
        v = _numpy_scalar(v)
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise _Err(path, f"must be a number, got {type(v).__name__}")
        v = float(v) if isinstance(v, float) else int(v)
    if type(v) is int and not _I64_MIN <= v <= _U64_MAX:
        v = _big_int(v, path)
    if v - v != 0:
        raise _Err(path, f"must be finite, got {v!r}")
    if lo is not None and v < lo:
        raise _Err(path, f"must be ≥ {lo}, got {v!r}")
    if hi is not None and v > hi:
        raise _Err(path, f"must be ≤ {hi}, got {v!r}")
    return v


def _big_int(v: int, path: str) -> float:
    """An integer beyond what orjson writes: the contract reads any number as a double, so send it as one."""
    try:
        f = float(v)
    except OverflowError:
        raise _Err(path, f"must be finite (|x| ≤ {L.FLOAT_MAX!r}), got an integer of {len(str(abs(v)))} digits") from None
    return f


def non_negative_int(v: Any, path: str, hi: int = L.INT_MAX) -> int:
    """An int in ``0..hi`` (not bool)."""
    if type(v) is not int:
        v = _numpy_scalar(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise _Err(path, f"must be an int, got {type(v).__name__}")
        v = int(v)
    if not 0 <= v <= hi:
        raise _Err(path, f"must be in 0..{hi}, got {v}")
    return v


def short_text(v: Any, path: str, max_len: int = SHORT, min_len: int = 0) -> str:
    """A str of ``min_len..max_len`` characters."""
    if type(v) is not str:
        if not isinstance(v, str):
            raise _Err(path, f"must be a str, got {type(v).__name__}")
        v = str(v)
    if not min_len <= len(v) <= max_len:
        raise _Err(path, f"must be {min_len}..{max_len} characters, got {len(v)}")
    return v


def labels(value: Any, path: str, max_items: int) -> dict[str, str]:
    """``dict[Name, str(≤256)]`` (segment, tags)."""
    if type(value) is not dict:
        value = _as_dict(value, path)
    if len(value) > max_items:
        raise _Err(path, f"at most {max_items} entries, got {len(value)}")
    if not _KNOWN_NAMES.issuperset(value):
        for k in value:
            if k not in _KNOWN_NAMES:
                _key(k, path)
    for k, v in value.items():
        if type(v) is not str or len(v) > SHORT:
            short_text(v, f"{path}.{k}")
            if type(v) is not str:  # a str subclass: give orjson a plain str
                value = {kk: str(vv) for kk, vv in value.items()}
    return value


def outputs(value: Any, path: str = "outputs") -> dict[str, Any]:
    """``{"label"?, "score"?, "probabilities"?, "value"?}`` with at least one set; other keys are an error."""
    if type(value) is not dict:
        if hasattr(value, "model_dump"):  # a contract Outputs model
            value = value.model_dump(exclude_none=True)
        else:
            raise _Err(path, f"must be a dict with {'/'.join(OUTPUT_FIELDS)}, got {type(value).__name__}")
    fixed: dict[str, Any] | None = None
    any_set = False
    for k, v in value.items():
        if v is None:
            continue
        any_set = True
        if k == "label":
            if type(v) is not str or len(v) > SHORT:
                c: Any = short_text(v, f"{path}.label")
            else:
                continue
        elif k == "score" or k == "value":
            if type(v) is float and v - v == 0.0:
                continue
            c = finite(v, f"{path}.{k}")
        elif k == "probabilities":
            c = _probabilities(v, f"{path}.probabilities")
            if c is v:
                continue
        else:
            raise _Err(f"{path}.{k}", f"unknown output field (expected one of {', '.join(OUTPUT_FIELDS)})")
        if fixed is None:
            fixed = dict(value)
        fixed[k] = c
    if not any_set:
        raise _Err(path, f"needs at least one of {', '.join(OUTPUT_FIELDS)}")
    return value if fixed is None else fixed


def _probabilities(v: Any, path: str) -> dict[str, float | int]:
    if type(v) is not dict:
        v = _as_dict(v, path)
    if len(v) > L.MAX_PROBABILITIES:
        raise _Err(path, f"at most {L.MAX_PROBABILITIES} classes, got {len(v)}")
    fixed = None
    for k, p in v.items():
        short_text(k, f"{path}[{k!r}]")
        if type(p) is float and 0.0 <= p <= 1.0:
            continue
        c = finite(p, f"{path}.{k}", 0.0, 1.0)
        if fixed is None:
            fixed = dict(v)
        fixed[k] = c
    return v if fixed is None else fixed


def float_list(v: Any, path: str, min_len: int, max_len: int, hi: float | None = None) -> list[float | int]:
    """A list (or 1-d numpy array) of finite numbers, optionally ≤ ``hi``."""
    if type(v).__module__ == "numpy":
        if getattr(v, "ndim", None) != 1 or v.dtype.kind not in "fiu":
            raise _Err(path, "must be a 1-d numeric array")
        v = v.tolist()
    elif type(v) is tuple:
        v = list(v)
    elif type(v) is not list:
        raise _Err(path, f"must be a list of numbers, got {type(v).__name__}")
    if not min_len <= len(v) <= max_len:
        raise _Err(path, f"must have {min_len}..{max_len} items, got {len(v)}")
    fixed = None
    for i, x in enumerate(v):
        if type(x) is float and x - x == 0.0 and (hi is None or x <= hi):
            continue
        c = finite(x, f"{path}[{i}]", None, hi)
        if fixed is None:
            fixed = list(v)
        fixed[i] = c
    return v if fixed is None else fixed


def llm_block(v: Any, path: str = "llm") -> dict[str, Any]:
    """The LLM block: texts, hashes, token log-probabilities (≤ 0), token counts, finish reason."""
    if type(v) is not dict:
        v = v.model_dump(exclude_none=True) if hasattr(v, "model_dump") else _as_dict(v, path)
    out: dict[str, Any] = {}
    for k, x in v.items():
        p = f"{path}.{k}"
        if k not in LLM_FIELDS:
            raise _Err(p, f"unknown LLM field (expected one of {', '.join(sorted(LLM_FIELDS))})")
        if x is None:
            continue
        if k in ("prompt", "completion"):
            out[k] = short_text(x, p, L.LLM_TEXT_MAX)
        elif k in ("prompt_hash", "completion_hash"):
            out[k] = short_text(x, p, L.HASH_MAX, 1)
        elif k in ("completion_chars", "input_tokens", "output_tokens"):
            out[k] = non_negative_int(x, p, L.LLM_COUNT_MAX)
        elif k == "refusal":
            x = _numpy_scalar(x)
            if not isinstance(x, bool):
                raise _Err(p, f"must be a bool, got {type(x).__name__}")
            out[k] = bool(x)
        elif k == "token_logprobs":
            out[k] = float_list(x, p, 0, MAX_LOGPROBS, hi=0.0)
        elif k == "top_logprobs":
            if type(x) is not list and type(x) is not tuple and type(x).__module__ != "numpy":
                raise _Err(p, f"must be a list of lists of numbers, got {type(x).__name__}")
            rows = list(x)
            if len(rows) > MAX_LOGPROBS:
                raise _Err(p, f"at most {MAX_LOGPROBS} tokens, got {len(rows)}")
            out[k] = [float_list(r, f"{p}[{i}]", 0, L.MAX_TOP_LOGPROBS_PER_TOKEN, hi=0.0) for i, r in enumerate(rows)]
        else:  # finish_reason
            out[k] = short_text(x, p)
    return out


def lineage(v: Any, path: str = "lineage") -> list[dict[str, Any]]:
    """A list (≤ 64) of ``{kind, model, model_version, share}``."""
    if type(v) is not list and type(v) is not tuple:
        raise _Err(path, f"must be a list of dicts, got {type(v).__name__}")
    if len(v) > L.MAX_LINEAGE:
        raise _Err(path, f"at most {L.MAX_LINEAGE} entries, got {len(v)}")
    out = []
    for i, ref in enumerate(v):
        p = f"{path}[{i}]"
        if hasattr(ref, "model_dump"):
            ref = ref.model_dump()
        ref = _as_dict(ref, p)
        unknown = set(ref) - {"kind", "model", "model_version", "share"}
        if unknown:
            raise _Err(f"{p}.{sorted(unknown)[0]}", "unknown lineage field (expected kind, model, model_version, share)")
        item: dict[str, Any] = {}
        kind = ref.get("kind", "items")
        if kind not in LINEAGE_KINDS or type(kind) is not str:
            raise _Err(f"{p}.kind", f"must be one of {sorted(LINEAGE_KINDS)}, got {kind!r}")
        item["kind"] = kind
        if "model" not in ref:
            raise _Err(f"{p}.model", "is required")
        item["model"] = check_name(ref["model"], f"{p}.model")
        if "model_version" not in ref:
            raise _Err(f"{p}.model_version", "is required")
        item["model_version"] = check_name(ref["model_version"], f"{p}.model_version", L.VERSION_MAX)
        item["share"] = finite(ref.get("share", 1.0), f"{p}.share", 0.0, 1.0)
        out.append(item)
    return out
