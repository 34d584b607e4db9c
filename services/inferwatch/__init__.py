"""Inferwatch: watch machine-learning models in production.

The SDK entry point is :class:`inferwatch.InferenceLogger`; it is imported lazily so that
``import inferwatch`` stays cheap for tools that only need the contract.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["InferenceLogger", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from inferwatch.sdk.logger import InferenceLogger


def __getattr__(name: str) -> Any:
    if name == "InferenceLogger":
        from inferwatch.sdk.logger import InferenceLogger

        return InferenceLogger
    raise AttributeError(f"module 'inferwatch' has no attribute {name!r}")
