"""Redaction: input fields dropped or replaced by a salted hash before an event leaves the process.

A hashed value becomes ``"h:" + blake2b(salt + repr-free text, 8 bytes).hex()``: equal values give
equal hashes (drift and cardinality stay measurable) but the value cannot be read back. LLM prompt
and completion can likewise be replaced by ``prompt_hash``/``completion_hash`` (unsalted, so equal
prompts hash equally across processes — the consistency signal of DESIGN.md), with
``completion_chars`` kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal


def text_hash(text: str, salt: bytes = b"") -> str:
    """A short, stable hex hash of ``text`` (BLAKE2b, 16 bytes)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16, key=salt[:64]).hexdigest()


@dataclass(frozen=True)
class Redaction:
    """What to hide. ``drop``: input fields removed; ``hash``: input fields replaced by a salted hash;
    ``llm_text``: ``"keep"`` or ``"hash"`` (prompt and completion replaced by their hashes)."""

    drop: frozenset[str] = field(default_factory=frozenset)
    hash: frozenset[str] = field(default_factory=frozenset)
    salt: bytes = b""
    llm_text: Literal["keep", "hash"] = "keep"

    @classmethod
    def of(
        cls,
        drop: Iterable[str] = (),
        hash: Iterable[str] = (),  # noqa: A002 - the natural name for the option
        salt: bytes | str = b"",
        llm_text: Literal["keep", "hash"] = "keep",
    ) -> Redaction:
        """Build from plain iterables; a ``str`` salt is UTF-8 encoded."""
        if llm_text not in ("keep", "hash"):
            raise ValueError(f"redact.llm_text: must be 'keep' or 'hash', got {llm_text!r}")
        s = salt.encode() if isinstance(salt, str) else bytes(salt)
        return cls(frozenset(drop), frozenset(hash), s, llm_text)

    @property
    def touches_inputs(self) -> bool:
        """Whether inputs need rewriting at all (the hot path skips redaction otherwise)."""
        return bool(self.drop or self.hash)

    def inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``inputs`` with dropped fields removed and hashed fields hashed (None stays None)."""
        if not (self.drop.intersection(inputs) or self.hash.intersection(inputs)):
            return inputs
        out: dict[str, Any] = {}
        for k, v in inputs.items():
            if k in self.drop:
                continue
            if k in self.hash and v is not None:
                v = "h:" + text_hash(str(v), self.salt)[:16]
            out[k] = v
        return out

    def llm(self, block: dict[str, Any]) -> dict[str, Any]:
        """The LLM block with prompt/completion replaced by hashes when ``llm_text == "hash"``."""
        if self.llm_text == "keep":
            return block
        out = dict(block)
        prompt = out.pop("prompt", None)
        if prompt is not None:
            out["prompt_hash"] = text_hash(prompt)
        completion = out.pop("completion", None)
        if completion is not None:
            out["completion_hash"] = text_hash(completion)
            out.setdefault("completion_chars", len(completion))
        return out


def as_redaction(value: Redaction | dict[str, Any] | Iterable[str] | None) -> Redaction | None:
    """Accept a :class:`Redaction`, a dict of its options, or a list of input fields to drop."""
    if value is None or isinstance(value, Redaction):
        return value
    if isinstance(value, dict):
        unknown = set(value) - {"drop", "hash", "salt", "llm_text"}
        if unknown:
            raise ValueError(f"redact: unknown option(s) {sorted(unknown)}")
        return Redaction.of(**value)
    if isinstance(value, str):
        raise ValueError("redact: give a list of field names, not a single string")
    return Redaction.of(drop=value)
