"""The producer SDK: ``from inferwatch import InferenceLogger``.

See ``docs/sdk.md`` for usage (model servers, FastAPI, asyncio) and the delivery guarantees.
"""

from __future__ import annotations

from inferwatch.sdk.errors import EventValidationError, SpoolError
from inferwatch.sdk.logger import InferenceLogger, TimedRecord
from inferwatch.sdk.redaction import Redaction

__all__ = ["EventValidationError", "InferenceLogger", "Redaction", "SpoolError", "TimedRecord"]
