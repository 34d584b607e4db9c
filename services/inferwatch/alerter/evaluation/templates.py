"""Annotation templates: Jinja2 in a sandbox (no attribute access to internals, no I/O).

Variables: ``model``, ``model_version``, ``segment`` (``key=value`` or ``whole``), ``metric``,
``value``, ``reference``, ``change_pct``, ``zscore``, ``count``, ``window_start``/``window_end``
(ms), ``top_segment``, ``top_segment_value``, ``top_segment_contribution``, ``related_drift``
(metric names that drifted in the same segment), ``labels``, ``severity``, ``rule``.
"""

from __future__ import annotations

from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from inferwatch.alerter.errors import ExpressionError

_ENV = ImmutableSandboxedEnvironment(undefined=jinja2.ChainableUndefined, autoescape=False)


def _pct(v: Any, digits: int = 1) -> str:
    try:
        return f"{float(v) * 100:.{digits}f}%"
    except (TypeError, ValueError):
        return ""


_ENV.filters["pct"] = _pct


def compile_template(src: str) -> jinja2.Template:
    """Compile ``src`` once; raises :class:`ExpressionError` with Jinja's message."""
    try:
        return _ENV.from_string(src)
    except jinja2.TemplateError as exc:
        raise ExpressionError(f"template error: {exc}") from None


def render(tpl: jinja2.Template, context: dict[str, Any], limit: int = 4096) -> str:
    """Render, never raising: a failing template yields a marker text so the alert still goes out."""
    try:
        out = tpl.render(**context)
    except Exception as exc:  # a user's template must not drop the alert
        out = f"<template error: {type(exc).__name__}: {exc}>"
    return out[:limit]
