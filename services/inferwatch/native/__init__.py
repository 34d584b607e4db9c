"""C accelerators of the hot paths, each with a pure-Python twin that gives the same results.

Modules (one C file each, ``services/inferwatch/native/_<name>.c``, built by ``setup.py``; ``make
install`` builds them in place):

* ``_decode``: prediction.v1 messages (JSON bytes) straight into flat columns, for the sink and the
  processor (see :mod:`inferwatch.native.prediction_columns`).
* ``_encode``: the SDK's common prediction event checked and serialised to prediction.v1 JSON bytes
  in one pass (see :mod:`inferwatch.sdk.encode`, its Python twin).

The C code is an accelerator only: every module has a Python twin, and a machine without a C
compiler runs the twins (slower, same results). :func:`require_native` is what ``make install``
and the tests use to insist on the compiled modules.

This module is the one place that chooses between a compiled module and its twin: every caller asks
:func:`load`. ``INFERWATCH_NATIVE=0`` (also ``off``, ``false``, ``python``) in the environment makes
:func:`load` answer None for every module, so the whole process runs the pure-Python twins (to rule
the accelerators out when chasing a bug, or to compare the two paths).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

MODULES: tuple[str, ...] = ("_decode", "_encode")
"""The compiled modules a full install has (names inside ``inferwatch.native``)."""

_loaded: dict[str, ModuleType | None] = {}

#: Values of ``INFERWATCH_NATIVE`` that force the pure-Python twins.
PYTHON_ONLY = frozenset({"0", "off", "false", "no", "python"})


def forced_python() -> bool:
    """Whether ``INFERWATCH_NATIVE`` forces the pure-Python twins."""
    return os.environ.get("INFERWATCH_NATIVE", "").strip().lower() in PYTHON_ONLY


def load(name: str) -> ModuleType | None:
    """The compiled module ``name`` (e.g. ``"_decode"``), or None when it was not built or
    ``INFERWATCH_NATIVE=0`` forces the pure-Python twins."""
    if forced_python():
        return None
    if name not in _loaded:
        try:
            _loaded[name] = importlib.import_module(f"inferwatch.native.{name}")
        except ImportError:
            _loaded[name] = None
    return _loaded[name]


def require_native() -> None:
    """Raise RuntimeError naming every compiled module that cannot be imported, and why."""
    missing = []
    for name in MODULES:
        try:
            importlib.import_module(f"inferwatch.native.{name}")
        except ImportError as exc:
            missing.append(f"inferwatch.native.{name} ({exc})")
    if missing:
        raise RuntimeError(
            "the C accelerators are not built: " + "; ".join(missing)
            + ". Build them with `make install` (needs gcc and the Python headers)."
        )
