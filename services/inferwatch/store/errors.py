"""Errors of the store."""

from __future__ import annotations


class StoreError(RuntimeError):
    """The store failed to run a statement (bad SQL, engine error)."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached or opened right now (server down, directory locked); retry later."""


class ReadOnlyViolation(StoreError):
    """A read-only query tried to write or change the schema."""


class QueryRefused(ReadOnlyViolation):
    """The query guard refused a statement: it names what was refused (a statement kind, a table, a
    table function, a function, a clause or a setting). Served as HTTP 400."""


class MigrationError(StoreError):
    """A migration file is malformed or failed to apply."""
