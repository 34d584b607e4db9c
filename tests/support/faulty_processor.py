"""A processor worker whose core raises on any batch holding a prediction with ``model_version`` ``poison-pill``.

Test-only fault injection (``python -m tests.support.faulty_processor``): it lives under ``tests/`` and
patches the core class in this process only, so nothing in the product can switch it on.
"""

from __future__ import annotations

from typing import Any

from inferwatch.config import Settings
from inferwatch.processor.app import run_worker
from inferwatch.processor.core.state_machine import ProcessorCore
from inferwatch.processor.settings import ProcessorSettings

PILL = b'"model_version":"poison-pill"'

_original = ProcessorCore.process_prediction_values


def _faulty(self: ProcessorCore, values: Any, *args: Any, **kwargs: Any) -> Any:
    if any(PILL in v for v in values):
        raise RuntimeError("injected fault: a poison-pill prediction in this batch")
    return _original(self, values, *args, **kwargs)


ProcessorCore.process_prediction_values = _faulty  # type: ignore[method-assign]

if __name__ == "__main__":
    run_worker(Settings(), ProcessorSettings())
