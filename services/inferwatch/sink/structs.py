"""The sink's msgspec structs: the contract's own (:mod:`inferwatch.contract.structs`), shared with the processor.

Kept as a module so existing imports (``inferwatch.sink.structs``) go on working; the definitions,
and every limit in them, live in the contract package.
"""

from inferwatch.contract.structs import (
    NAMES,
    STRUCTS,
    VERSIONS,
    FeedbackV1,
    LineageRef,
    LLMBlock,
    Outputs,
    PredictionV1,
    bad_names,
    names_ok,
)

__all__ = [
    "NAMES",
    "STRUCTS",
    "VERSIONS",
    "FeedbackV1",
    "LLMBlock",
    "LineageRef",
    "Outputs",
    "PredictionV1",
    "bad_names",
    "names_ok",
]
