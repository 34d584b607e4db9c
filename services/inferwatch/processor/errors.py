"""Errors of the processor package."""

from __future__ import annotations


class ProcessorError(Exception):
    """Base of the processor's errors."""


class ReferenceError_(ProcessorError):
    """A reference profile cannot be built or decoded (bad dataframe, corrupt bytes)."""


class StateError(ProcessorError):
    """Persisted window state cannot be decoded."""
