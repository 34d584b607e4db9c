"""Redaction: fields dropped or replaced by a keyed hash before an event leaves the process.

What can be redacted, each configured per field:

* ``inputs`` — ``drop``/``hash`` lists, or ``inputs={"email": "drop", "*": "hash"}``;
* ``segment`` and ``tags`` — ``{"user_id": "hash", "*": "drop"}`` (``"*"``: every other key);
* ``outputs`` — ``label`` and ``probabilities`` (class names) ``drop``/``hash``; ``score`` and
  ``value`` ``drop`` only (a hashed number would not be a number);
* ``error`` — ``"keep"``, ``"hash"`` or ``"drop"`` (the text becomes ``"redacted"``: the event still
  counts as a failure, so error rates stay right);
* ``llm_text`` — ``"hash"`` replaces prompt and completion by ``prompt_hash``/``completion_hash``
  (``completion_chars`` kept).

Hashing is always keyed (BLAKE2b with the salt as its key): ``"h:" + 16 hex digits`` for field values,
32 hex digits for LLM text. Equal values give equal hashes under one salt, so drift, cardinality and
label joins stay measurable, but without the salt a value cannot be found by hashing guesses. There
is no unsalted hash: the salt is, in order, the ``salt=`` option, ``INFERWATCH_REDACTION_SALT``, or
a random one generated on first use and kept in ``<data_dir>/redaction.salt`` (mode 0600). Model
servers that must produce comparable hashes share the salt (same data dir, or the same env var).
When ``outputs.label`` is redacted, feedback labels are hashed with the same key, so accuracy still
joins; feedback ``tags`` follow the ``tags`` rules.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from inferwatch.sdk.errors import EventValidationError

if TYPE_CHECKING:
    from inferwatch.config import Settings

log = logging.getLogger("inferwatch.sdk")

Mode = Literal["drop", "hash"]
#: Shortest salt accepted: a short key lets low-entropy values (emails, ids) be found by guessing.
MIN_SALT_BYTES = 16
#: The file, in the data dir, that keeps the generated salt.
SALT_FILE = "redaction.salt"
#: What a dropped error text becomes (the event stays a failed prediction).
REDACTED_ERROR = "redacted"
_MODES = ("drop", "hash")
_OUTPUT_MODES: dict[str, tuple[str, ...]] = {"label": _MODES, "probabilities": _MODES, "score": ("drop",),
                                             "value": ("drop",)}
_OPTIONS = frozenset({"drop", "hash", "salt", "llm_text", "inputs", "segment", "tags", "outputs", "error"})


def _key(salt: bytes) -> bytes:
    """BLAKE2b takes keys of up to 64 bytes: a longer salt is first hashed down to 64 (never cut)."""
    return salt if len(salt) <= 64 else hashlib.blake2b(salt, digest_size=64).digest()


def text_hash(text: str, salt: bytes) -> str:
    """A stable hex hash of ``text`` keyed by ``salt`` (BLAKE2b, 16 bytes). ``salt`` must not be empty."""
    if not salt:
        raise ValueError("text_hash: a salt is required (unsalted hashes of guessable values can be reversed)")
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16, key=_key(salt)).hexdigest()


def value_hash(value: Any, salt: bytes) -> str:
    """``"h:"`` + 16 hex digits of the keyed hash of ``str(value)``: what a hashed field becomes."""
    return "h:" + text_hash(str(value), salt)[:16]


def _check_salt(salt: bytes, where: str) -> bytes:
    if len(salt) < MIN_SALT_BYTES:
        raise ValueError(f"{where}: the redaction salt must be at least {MIN_SALT_BYTES} bytes, got {len(salt)}")
    return salt


def load_or_create_salt(data_dir: Path | str) -> bytes:
    """The salt kept in ``<data_dir>/redaction.salt``, generated (32 random bytes, hex) on first use.

    Created with mode 0600 and published with a hard link, so processes starting together agree on
    one salt (the loser of the race reads the winner's). A salt file readable by others is narrowed
    to 0600 with a warning.
    """
    root = Path(data_dir)
    path = root / SALT_FILE
    try:
        return _read_salt(path)
    except FileNotFoundError:
        pass
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{SALT_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # another process published first: use its salt
            os.link(tmp, path)  # atomic
    finally:
        tmp.unlink(missing_ok=True)
    return _read_salt(path)


def _read_salt(path: Path) -> bytes:
    mode = path.stat().st_mode
    if mode & 0o077:
        log.warning("inferwatch: %s was readable by others (mode %o); narrowing it to 0600", path, mode & 0o777)
        try:
            path.chmod(0o600)
        except OSError as exc:
            log.warning("inferwatch: could not chmod %s: %s", path, exc)
    salt = path.read_bytes().strip()
    if len(salt) < MIN_SALT_BYTES:
        raise ValueError(f"{path}: corrupt redaction salt ({len(salt)} bytes); delete the file to generate a new one "
                         "(hashes will change) or restore it")
    return salt


def resolve_salt(settings: Settings) -> bytes:
    """``INFERWATCH_REDACTION_SALT`` if set, else the salt kept in the data dir (made on first use)."""
    secret = settings.redaction_salt
    if secret is not None:
        return _check_salt(secret.get_secret_value().encode(), "INFERWATCH_REDACTION_SALT")
    return load_or_create_salt(settings.data_dir)


def _modes(value: Mapping[str, str] | None, option: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"redact.{option}: must be a mapping of field name to 'drop' or 'hash'")
    out: dict[str, str] = {}
    for k, m in value.items():
        if not isinstance(k, str) or not k:
            raise ValueError(f"redact.{option}: field names must be non-empty strings, got {k!r}")
        if m not in _MODES:
            raise ValueError(f"redact.{option}.{k}: must be 'drop' or 'hash', got {m!r}")
        out[k] = m
    return out


@dataclass(frozen=True, eq=False)
class Redaction:
    """What to hide; see the module docstring. Build it with :meth:`of` (or :func:`as_redaction`).

    ``salt`` empty means "resolve it" (:func:`resolve_salt`) when the logger starts; a redaction
    that hashes refuses to work without one.
    """

    drop: frozenset[str] = field(default_factory=frozenset)
    hash: frozenset[str] = field(default_factory=frozenset)
    salt: bytes = b""
    llm_text: Literal["keep", "hash"] = "keep"
    segment: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)
    error: Literal["keep", "hash", "drop"] = "keep"

    def __post_init__(self) -> None:
        # Bound once: the keyed hasher (copying it costs a third of keying a new one per value) and
        # the input modes as one mapping.
        hasher = hashlib.blake2b(digest_size=16, key=_key(self.salt)) if self.salt else None
        object.__setattr__(self, "_hasher", hasher)
        object.__setattr__(self, "_input_modes", {**dict.fromkeys(self.drop, "drop"), **dict.fromkeys(self.hash, "hash")})

    @classmethod
    def of(
        cls,
        drop: Iterable[str] = (),
        hash: Iterable[str] = (),  # noqa: A002 - the natural name for the option
        salt: bytes | str = b"",
        llm_text: Literal["keep", "hash"] = "keep",
        *,
        inputs: Mapping[str, str] | None = None,
        segment: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        outputs: Mapping[str, str] | None = None,
        error: Literal["keep", "hash", "drop"] = "keep",
    ) -> Redaction:
        """Build and check. ``drop``/``hash`` list input fields (``inputs=`` says the same per field);
        a ``str`` salt is UTF-8 encoded and must have at least :data:`MIN_SALT_BYTES` bytes."""
        if llm_text not in ("keep", "hash"):
            raise ValueError(f"redact.llm_text: must be 'keep' or 'hash', got {llm_text!r}")
        if error not in ("keep", "hash", "drop"):
            raise ValueError(f"redact.error: must be 'keep', 'hash' or 'drop', got {error!r}")
        for name, v in (("drop", drop), ("hash", hash)):
            if isinstance(v, str):
                raise ValueError(f"redact.{name}: give a list of field names, not a single string")
        in_modes = {k: "drop" for k in drop}
        for k in hash:
            if in_modes.get(k) == "drop":
                raise ValueError(f"redact: input field {k!r} is both dropped and hashed")
            in_modes[k] = "hash"
        for k, m in _modes(inputs, "inputs").items():
            if in_modes.get(k, m) != m:
                raise ValueError(f"redact: input field {k!r} is both dropped and hashed")
            in_modes[k] = m
        out_modes = _modes(outputs, "outputs")
        for k, m in out_modes.items():
            allowed = _OUTPUT_MODES.get(k)
            if allowed is None:
                raise ValueError(f"redact.outputs.{k}: unknown output field (expected one of {', '.join(_OUTPUT_MODES)})")
            if m not in allowed:
                raise ValueError(f"redact.outputs.{k}: a number cannot be hashed, only dropped")
        s = salt.encode() if isinstance(salt, str) else bytes(salt)
        if s:
            _check_salt(s, "redact.salt")
        return cls(
            frozenset(k for k, m in in_modes.items() if m == "drop"),
            frozenset(k for k, m in in_modes.items() if m == "hash"),
            s, llm_text, _modes(segment, "segment"), _modes(tags, "tags"), out_modes, error,
        )

    # -- what it needs -----------------------------------------------------------------------------
    @property
    def hashes(self) -> bool:
        """Whether any rule hashes (and so needs the salt)."""
        return bool(
            self.hash or self.llm_text == "hash" or self.error == "hash"
            or "hash" in self.segment.values() or "hash" in self.tags.values() or "hash" in self.outputs.values()
        )

    @property
    def touches_inputs(self) -> bool:
        """Whether inputs need rewriting at all."""
        return bool(self.drop or self.hash)

    def with_salt_from(self, settings: Settings) -> Redaction:
        """This redaction with its salt resolved (:func:`resolve_salt`) when it hashes and has none."""
        if self.salt or not self.hashes:
            return self
        return replace(self, salt=resolve_salt(settings))

    def _digest(self, text: str) -> str:
        """:func:`text_hash` of ``text`` under this redaction's salt."""
        hasher = self._hasher  # type: ignore[attr-defined]
        if hasher is None:
            raise ValueError("redaction hashes but has no salt: build it through as_redaction(value, settings) "
                             "or give salt=")
        h = hasher.copy()
        h.update(text.encode("utf-8", "surrogatepass"))
        return str(h.hexdigest())

    def _value(self, value: Any) -> str:
        """:func:`value_hash` of ``value`` under this redaction's salt."""
        return "h:" + self._digest(str(value))[:16]

    # -- applying it -------------------------------------------------------------------------------
    def inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``inputs`` with dropped fields removed and hashed fields hashed (None stays None)."""
        if not self.touches_inputs:
            return inputs
        return self._labels_like(inputs, self._input_modes, keep_none=True)  # type: ignore[attr-defined]

    def _labels_like(self, values: dict[str, Any], modes: Mapping[str, str], keep_none: bool = False) -> dict[str, Any]:
        default = modes.get("*")
        if default is None and not any(k in modes for k in values):
            return values
        out: dict[str, Any] = {}
        for k, v in values.items():
            m = modes.get(k, default)
            if m == "drop":
                continue
            if m == "hash" and not (keep_none and v is None):
                v = self._value(v)
            out[k] = v
        return out

    def llm(self, block: dict[str, Any]) -> dict[str, Any]:
        """The LLM block with prompt/completion replaced by keyed hashes when ``llm_text == "hash"``."""
        if self.llm_text == "keep":
            return block
        out = dict(block)
        prompt = out.pop("prompt", None)
        if prompt is not None:
            out["prompt_hash"] = self._digest(prompt)
        completion = out.pop("completion", None)
        if completion is not None:
            out["completion_hash"] = self._digest(completion)
            out.setdefault("completion_chars", len(completion))
        return out

    def _outputs(self, outputs: dict[str, Any]) -> dict[str, Any]:
        if not self.outputs or not any(k in self.outputs for k in outputs):
            return outputs
        out: dict[str, Any] = {}
        for k, v in outputs.items():
            m = self.outputs.get(k)
            if m == "drop" or (m is not None and v is None):
                continue
            if m == "hash":  # probabilities: the class names are hashed, the numbers kept
                v = {self._value(c): p for c, p in v.items()} if k == "probabilities" else self._value(v)
            out[k] = v
        return out

    def prediction(self, ev: dict[str, Any]) -> dict[str, Any]:
        """The validated prediction event ``ev`` with every rule applied (a new dict; ``ev`` and the
        caller's nested dicts are left as they were). Raises :class:`EventValidationError` when the
        rules leave a successful prediction without any output field."""
        out = dict(ev)
        if "inputs" in out and self.touches_inputs:
            out["inputs"] = self.inputs(out["inputs"])
        if out.get("outputs") is not None:
            red = self._outputs(out["outputs"])
            if red:
                out["outputs"] = red
            else:
                del out["outputs"]
                if out.get("error") is None:
                    raise EventValidationError("outputs", "redaction dropped every output field of this prediction; "
                                                          "hash the label instead of dropping it")
        if "segment" in out and self.segment:
            out["segment"] = self._labels_like(out["segment"], self.segment)
        if "tags" in out and self.tags:
            out["tags"] = self._labels_like(out["tags"], self.tags)
        if out.get("error") is not None and self.error != "keep":
            out["error"] = REDACTED_ERROR if self.error == "drop" else self._value(out["error"])
        if "llm" in out:
            out["llm"] = self.llm(out["llm"])
        return out

    def feedback(self, ev: dict[str, Any]) -> dict[str, Any]:
        """The feedback event with ``tags`` rules applied and, when ``outputs.label`` is redacted, its
        label hashed with the same key (so it still matches the hashed predicted label)."""
        out = dict(ev)
        if "tags" in out and self.tags:
            out["tags"] = self._labels_like(out["tags"], self.tags)
        if "label" in out and "label" in self.outputs:
            out["label"] = self._value(out["label"])
        return out

    def __repr__(self) -> str:  # never print the salt
        return (f"Redaction(inputs_drop={sorted(self.drop)}, inputs_hash={sorted(self.hash)}, "
                f"segment={dict(self.segment)}, tags={dict(self.tags)}, outputs={dict(self.outputs)}, "
                f"error={self.error!r}, llm_text={self.llm_text!r}, salt={'set' if self.salt else 'unset'})")


def as_redaction(
    value: Redaction | dict[str, Any] | Iterable[str] | None, settings: Settings | None = None
) -> Redaction | None:
    """Accept a :class:`Redaction`, a dict of its options, or a list of input fields to drop.

    With ``settings``, a redaction that hashes and has no salt gets one (:func:`resolve_salt`).
    """
    if value is None:
        return None
    if isinstance(value, Redaction):
        red = value
    elif isinstance(value, dict):
        unknown = set(value) - _OPTIONS
        if unknown:
            raise ValueError(f"redact: unknown option(s) {sorted(unknown)} (known: {', '.join(sorted(_OPTIONS))})")
        red = Redaction.of(**value)
    elif isinstance(value, str):
        raise ValueError("redact: give a list of field names, not a single string")
    else:
        red = Redaction.of(drop=value)
    return red.with_salt_from(settings) if settings is not None else red
