"""Errors of the producer SDK.

Only programming errors of the caller raise (:class:`EventValidationError`); transport trouble
(broker away, queue full, disk full) never raises into a model server: it is counted in
``InferenceLogger.stats()`` and logged.
"""

from __future__ import annotations


class EventValidationError(ValueError):
    """An SDK call got a value the event contract does not allow. ``field`` is its path (``inputs.age``)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.reason = message
        super().__init__(f"{field}: {message}")


class SpoolError(OSError):
    """The on-disk spool could not be opened (permissions, lock held by another process)."""
