"""Every limit of the event contract, defined once.

The pydantic models (:mod:`inferwatch.contract.events`), the JSON Schemas generated from them, the
msgspec structs of the sink and the processor (:mod:`inferwatch.contract.structs`), the SDK's checks
(:mod:`inferwatch.sdk.call_checks`, :mod:`inferwatch.sdk.encode`) and the C modules (through the
generated header ``services/inferwatch/native/contract_limits.h``, see
:mod:`inferwatch.contract.header_gen`) all take their numbers from here. Changing a limit is one
edit in this file followed by ``make schemas`` (JSON Schemas and the C header); the contract tests
fail until both are regenerated, and the cross-hop test (``tests/contract/test_cross_hop.py``) then
proves that every hop accepts and refuses the same events.

Lengths are in Unicode code points (what pydantic, msgspec and ``len(str)`` count).
"""

from __future__ import annotations

import hashlib
import sys
from typing import Final

# -- names ----------------------------------------------------------------------------------------
# Model names, versions, feature/segment/tag keys end up as ClickHouse map keys and metric-name
# parts, so they are kept to a printable ASCII alphabet that JSON never needs to escape.
NAME_ALPHABET: Final = "A-Za-z0-9_.:/@+-"
"""The characters of a name, as the body of a regex character class."""
NAME_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:/@+-")
"""The same alphabet as a set (what the C modules' tables are generated from)."""
NAME_PATTERN: Final = rf"^[{NAME_ALPHABET}]+$"
"""The pattern in the JSON Schema and the pydantic models (ECMA-262 / Rust regex: ``$`` = end of text)."""
NAME_FULLMATCH: Final = rf"\A[{NAME_ALPHABET}]+\Z"
"""The same pattern for Python's ``re`` (whose ``$`` also matches before a trailing newline)."""
NAME_MAX: Final = 128
"""Model names, feature/segment/tag keys: 1..NAME_MAX characters."""
VERSION_MAX: Final = 64
"""Model versions: 1..VERSION_MAX characters of the same alphabet."""

# -- identifiers and texts ------------------------------------------------------------------------
EVENT_ID_MAX: Final = 64
PREDICTION_ID_MAX: Final = 128
HASH_MAX: Final = 128
"""``prompt_hash``/``completion_hash``: 1..HASH_MAX characters."""
SHORT_TEXT_MAX: Final = 256
"""Labels, categorical feature values, segment/tag values, finish reasons."""
ERROR_MAX: Final = 4096
"""``error`` of a prediction, ``reason`` of a dead letter, alert annotations."""
LLM_TEXT_MAX: Final = 1_000_000
"""``llm.prompt`` and ``llm.completion``."""

# -- counts ---------------------------------------------------------------------------------------
MAX_INPUTS: Final = 2000
MAX_SEGMENT: Final = 32
MAX_TAGS: Final = 64
MAX_PROBABILITIES: Final = 1000
MAX_EMBEDDING: Final = 65536
MAX_LOGPROBS: Final = 100_000
"""``llm.token_logprobs`` and the rows of ``llm.top_logprobs``."""
MAX_TOP_LOGPROBS_PER_TOKEN: Final = 1_000_000
"""The alternatives of one ``llm.top_logprobs`` row (bounded only by the message size in practice)."""
MAX_LINEAGE: Final = 64
LINEAGE_KINDS: Final = ("items", "embedding", "features", "other")

# -- numbers --------------------------------------------------------------------------------------
TS_MIN_MS: Final = 0
TS_MAX_MS: Final = 32503680000000
"""Timestamps are ms since the Unix epoch, UTC, up to 3000-01-01."""
INT_MAX: Final = (1 << 63) - 1
"""Integer fields (token counts, ``completion_chars``) are at most INT_MAX (int64, what the store and
msgspec's bounds hold). Features are numbers, not integers: any JSON number there is a double."""
LLM_COUNT_MAX: Final = (1 << 32) - 1
"""``llm.completion_chars``/``input_tokens``/``output_tokens``: what the store's UInt32 columns hold."""
FLOAT_MAX: Final = sys.float_info.max
"""Floats are finite doubles: |x| <= FLOAT_MAX (``1e400`` and NaN/Infinity are refused)."""

# -- metric snapshots and alerts (events our own services write) ----------------------------------
METRIC_NAME_MAX: Final = 64 + SHORT_TEXT_MAX
"""A metric name is a prefix of under 64 characters and a feature name, model name or label
(``output.class_share.<label>``: a 256-character label, valid in a prediction, made a 275-character
metric name that the snapshot refused, and the processor crashed on the valid event)."""
MAX_TOP_SEGMENTS: Final = 100
WINDOW_S_MAX: Final = 86400
FINGERPRINT_MAX: Final = 64
RULE_NAME_MAX: Final = 256
LABEL_KEY_MAX: Final = 128
ALERT_SEGMENT_MAX: Final = 300
IDEMPOTENCY_KEY_MAX: Final = 128
RECEIVER_MAX: Final = 128
GROUP_KEY_MAX: Final = 1024
MAX_ALERTS: Final = 10_000

# -- detections (detection.v1, written by the processor's sequential detectors) ----------------------
MAX_EVIDENCE: Final = 20
"""The ``evidence`` of a detection: the features or metrics that moved most, ranked (the rest are left out)."""
DETECTION_SIGNALS: Final = ("input", "output", "performance", "estimated_performance", "embedding", "llm",
                            "errors", "latency")
"""What a detector watches: the ``signal`` of a detection."""
DETECTORS: Final = ("cusum", "sprt", "window")
"""How it decided: the ``detector`` of a detection."""
DETECTION_STATUSES: Final = ("detected", "cleared")
"""``detected``: the detector tripped; ``cleared``: it has been back within the reference since (the alert resolves)."""

# -- dead letters ---------------------------------------------------------------------------------
STAGES: Final = ("sdk", "processor", "sink", "alerter", "otlp")
"""Who wrote a dead letter: a hop of the pipeline, or ``otlp`` (the OTLP receiver, for spans it cannot map)."""
REASON_MAX: Final = ERROR_MAX
ERROR_PATH_MAX: Final = 512
TOPIC_NAME_MAX: Final = 256
SCHEMA_NAME_MAX: Final = 64


def deadletter_id(stage: str, topic: str, partition: int, offset: int) -> str:
    """The ``event_id`` of the dead letter that ``stage`` writes for the message at ``topic[partition]@offset``.

    Derived from the message's coordinates, so a replay after a crash writes the same dead letter
    (the table keeps one), and readable when it fits: ``dl:<stage>:<topic>:<partition>:<offset>``.
    A longer one (long topic names) becomes ``dl:<stage>:<sha1 of that text>``, which stays within
    ``EVENT_ID_MAX`` and cannot equal a readable id (it has two colons, a readable one four).
    """
    if stage not in STAGES:
        raise ValueError(f"unknown dead-letter stage {stage!r}; known: {', '.join(STAGES)}")
    text = f"dl:{stage}:{topic}:{partition}:{offset}"
    if len(text) <= EVENT_ID_MAX:
        return text
    return f"dl:{stage}:{hashlib.sha1(text.encode()).hexdigest()}"


C_LIMITS: Final = {
    "IW_NAME_MAX": NAME_MAX,
    "IW_VERSION_MAX": VERSION_MAX,
    "IW_EVENT_ID_MAX": EVENT_ID_MAX,
    "IW_PREDICTION_ID_MAX": PREDICTION_ID_MAX,
    "IW_SHORT_TEXT_MAX": SHORT_TEXT_MAX,
    "IW_ERROR_MAX": ERROR_MAX,
    "IW_MAX_INPUTS": MAX_INPUTS,
    "IW_MAX_SEGMENT": MAX_SEGMENT,
    "IW_MAX_TAGS": MAX_TAGS,
    "IW_MAX_PROBABILITIES": MAX_PROBABILITIES,
    "IW_TS_MIN_MS": TS_MIN_MS,
    "IW_TS_MAX_MS": TS_MAX_MS,
}
"""The limits the C modules use, by the macro name the generated header gives them."""
