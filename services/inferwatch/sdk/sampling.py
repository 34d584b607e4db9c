"""Deterministic sampling by a hash of ``prediction_id``.

The decision depends only on the id and the rate, so the feedback for a prediction (logged days
later, maybe by another process) is kept exactly when its prediction was kept. CRC-32 is used
because it is in the standard library, in C, and uniform enough on ids for this purpose.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

_SPACE = 1 << 32


def resolve_rate(sample_rate: float | Mapping[str, float] | None, model: str) -> float:
    """The rate for ``model``: a float for every model, or a per-model mapping (``"*"`` = default)."""
    if sample_rate is None:
        return 1.0
    if isinstance(sample_rate, Mapping):
        rate = sample_rate.get(model, sample_rate.get("*", 1.0))
    else:
        rate = sample_rate
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= float(rate) <= 1.0:
        raise ValueError(f"sample_rate: must be a number in [0, 1], got {rate!r}")
    return float(rate)


class Sampler:
    """Keeps a ``rate`` share of prediction ids, always the same ones."""

    __slots__ = ("keep_all", "rate", "_threshold")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.keep_all = rate >= 1.0
        self._threshold = int(rate * _SPACE)

    def keep(self, prediction_id: str) -> bool:
        """Whether events of ``prediction_id`` are logged."""
        if self.keep_all:
            return True
        return zlib.crc32(prediction_id.encode("utf-8", "surrogatepass")) < self._threshold
