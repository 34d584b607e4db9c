"""Uploaded reference profiles at run time: an upload is installed, a tombstone withdraws it, and the
core built over the worker's state sees both (the references agent ignored tombstones before)."""

from __future__ import annotations

import pandas as pd

from inferwatch.config import Settings
from inferwatch.processor.core.state_machine import ProcessorCore
from inferwatch.processor.reference import build_reference_profile
from inferwatch.processor.settings import ProcessorSettings
from inferwatch.processor.worker import ProcessorWorker


def _worker() -> ProcessorWorker:
    w = ProcessorWorker(Settings(), ProcessorSettings(), tables={}, metrics=None, dead=None)
    w.uploaded = {}  # as after the first read of the references topic
    return w


def test_a_tombstone_withdraws_an_uploaded_profile_at_run_time() -> None:
    w = _worker()
    prof = build_reference_profile(pd.DataFrame({"x": [float(i) for i in range(200)]}), "m", "1")
    core = ProcessorCore(ProcessorSettings())
    core.uploaded = w.uploaded  # what ProcessorWorker.core() does: one dict, shared
    w.reference_event(prof.key.encode(), prof.to_bytes())
    assert core.reference("m", "1") is not None
    w.reference_event(prof.key.encode(), None)  # the tombstone
    assert "m@1" not in w.uploaded
    assert core.reference("m", "1") is None
    w.reference_event(prof.key.encode(), b"")  # an empty value is a withdrawal too; no error when absent
    w.reference_event(None, prof.to_bytes())  # no key: ignored
    assert w.uploaded == {}


def test_records_before_the_first_read_are_left_to_that_read() -> None:
    w = ProcessorWorker(Settings(), ProcessorSettings(), tables={}, metrics=None, dead=None)
    w.reference_event(b"m@1", b"profile")  # the first core() reads the whole topic, this record included
    assert w.uploaded is None
