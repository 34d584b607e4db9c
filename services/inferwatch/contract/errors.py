"""Errors of the contract package."""

from __future__ import annotations


class ContractError(ValueError):
    """An event violates its schema. ``path`` names the offending field, ``rule`` the broken rule."""

    def __init__(self, schema: str, path: str, rule: str, message: str) -> None:
        self.schema = schema
        self.path = path
        self.rule = rule
        self.message = message
        super().__init__(f"{schema}: {path or '<event>'}: {message} [{rule}]")


class UnknownSchemaError(ValueError):
    """The event names a ``schema_version`` this consumer does not know."""
