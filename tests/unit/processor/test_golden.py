"""Golden outputs of the core: snapshots, dead letters and the bytes of every store after every batch,
for a wide bench-like stream (15 numeric + 5 categorical features, 3 segment keys) and mixed traffic
with labels, on both paths. Only an intended change of outputs may update the golden files (say so in
the commit), never a speed change.

What is compared, and how exactly:
- the stored state (every key and byte of every store) and the dead letters (offset, reason, schema)
  after every batch: a SHA-256 per batch, bit for bit;
- the snapshots: every field, key and count exactly; every float to 1e-9 relative (1e-12 absolute).

Why floats are not compared to the last bit: the last bits of some metrics depend on the machine, not
on our code. KS p-values come from scipy's Kolmogorov distribution (a matrix power, i.e. BLAS) and
the embedding drift from a Gram matrix (``x @ x.T``); OpenBLAS picks its kernel for the CPU at run
time, and numpy picks AVX-512 or plain libm code for ``log``/``log2``/``exp``. The same code and
packages give values a few units in the last place apart from one CPU to another (seen: at most
3e-13 relative, 2e-15 absolute), which broke a whole-stream digest on a new machine. A real change
of a metric (a wrong bin, a lost event, a different formula) moves it by far more than 1e-9.
The fast and exact paths must still agree with each other bit for bit on one machine.

Record again (only for an intended output change): ``python -m tests.unit.processor.test_golden``.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import math
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

import inferwatch.processor.core.snapshot as snapshot_mod
from inferwatch.processor.core.state_machine import Output, ProcessorCore
from inferwatch.processor.settings import ProcessorSettings
from inferwatch.testing.scenarios import wide_event
from tests.unit.processor.mixed_traffic import T0, mixed_batches

GOLDEN_DIR = Path(__file__).parent / "golden"
REL_TOL = 1e-9
ABS_TOL = 1e-12
CLOCK = 1_800_000_000.0

# One golden stream: per batch, the sorted snapshots (JSON form) and the digest of dead letters + stores.
Stream = list[dict[str, Any]]


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot_mod.time, "time", lambda: CLOCK)


class _Recorder:
    def __init__(self) -> None:
        self.steps: Stream = []

    def step(self, out: Output, *stores: MutableMapping[str, bytes]) -> None:
        snaps = sorted((s.model_dump(mode="json") for s in out.snapshots),
                       key=lambda s: (s["model"], s["model_version"], s["window_start"], s["segment_key"] or "",
                                      s["segment_value"] or ""))
        h = hashlib.sha256(orjson.dumps([(r.raw.offset, r.reason, r.schema) for r in out.rejected]))
        for st in stores:
            for k in sorted(st):
                if k.startswith(("det|", "detref|")):
                    continue  # the sequential detectors' state: pinned by tests/unit/processor/test_detect_*.py
                h.update(k.encode() + b"=" + st[k])
        self.steps.append({"snapshots": snaps, "state_sha256": h.hexdigest()})


def _wide() -> Stream:
    rng = np.random.default_rng(7)
    raws = [wide_event(i, T0 + i * 5, rng, shift=0.5 if i > 6000 else 0.0) for i in range(12_000)]
    cfg = ProcessorSettings(window_s=10, lateness_s=0, baseline_s=10, embedding_permutations=10, top_k=5)
    core = ProcessorCore(cfg, fast=True)
    rec = _Recorder()
    for i in range(0, len(raws), 1500):
        rec.step(core.process_prediction_values(raws[i:i + 1500], "p", 0, range(i, i + 1500), now=0.0),
                 core.windows, core.meta)
    rec.step(core.flush_all(), core.windows, core.meta)
    return rec.steps


@functools.cache
def _mixed(fast: bool) -> Stream:
    cfg = ProcessorSettings(window_s=30, lateness_s=5, label_wait_s=5, baseline_s=60, max_tracked_values=4, top_k=3)
    w: dict[str, bytes] = {}
    j: dict[str, bytes] = {}
    m: dict[str, bytes] = {}
    core = ProcessorCore(cfg, w, j, m, fast=fast)
    rec = _Recorder()
    for kind, raws in mixed_batches(3, n=2500, batch=300, bad_share=0.05):
        f: Any = core.process_predictions if kind == "p" else core.process_feedback
        rec.step(f(raws, now=0.0), w, j, m)
    rec.step(core.flush_all(), w, j, m)
    return rec.steps


def _golden(name: str) -> Stream:
    return orjson.loads(gzip.decompress((GOLDEN_DIR / f"{name}.json.gz").read_bytes()))  # type: ignore[no-any-return]


def _diff(got: Any, want: Any, path: str) -> str | None:
    """Where ``got`` first differs from ``want`` (floats within the tolerances), or None."""
    if isinstance(want, float) and isinstance(got, float):
        if math.isclose(got, want, rel_tol=REL_TOL, abs_tol=ABS_TOL):
            return None
        return f"{path}: {got!r} != {want!r}"
    if type(got) is not type(want):
        return f"{path}: {got!r} ({type(got).__name__}) != {want!r} ({type(want).__name__})"
    if isinstance(want, dict):
        if got.keys() != want.keys():
            return f"{path}: keys {sorted(got.keys() ^ want.keys())} only on one side"
        for k in want:
            d = _diff(got[k], want[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(want, list):
        if len(got) != len(want):
            return f"{path}: {len(got)} items != {len(want)}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            d = _diff(g, w, f"{path}[{i}]")
            if d:
                return d
        return None
    return None if got == want else f"{path}: {got!r} != {want!r}"


def _check(got: Stream, name: str) -> None:
    # a normalised round trip, so both sides hold what the file can hold (JSON types)
    got = orjson.loads(orjson.dumps(got))
    d = _diff(got, _golden(name), name)
    assert d is None, f"golden output changed at {d}"


def test_wide_stream_golden() -> None:
    _check(_wide(), "wide")


@pytest.mark.parametrize("fast", [True, False])
def test_mixed_traffic_golden(fast: bool) -> None:
    _check(_mixed(fast), "mixed")


def test_mixed_fast_and_exact_paths_bit_identical() -> None:
    assert orjson.dumps(_mixed(True)) == orjson.dumps(_mixed(False))


@pytest.mark.parametrize("got, want, same", [
    (0.5254039154396699, 0.5254039154396727, True),     # a KS p-value on two OpenBLAS kernels
    (0.0035925624372562526, 0.0035925624372563636, True),  # embedding drift, idem
    (0.5254, 0.5255, False),
    (1.0, 1, False),                                     # a float where an int was recorded
    ({"a": 1.0}, {"a": 1.0, "b": 2.0}, False),
    ([1.0], [1.0, 2.0], False),
    ("x", "y", False),
])
def test_comparison_tolerates_last_bits_only(got: Any, want: Any, same: bool) -> None:
    assert (_diff(got, want, "v") is None) is same


def _record() -> None:  # pragma: no cover - run by hand for an intended output change
    import inferwatch.processor.core.snapshot as sm

    sm.time.time = lambda: CLOCK  # type: ignore[assignment]
    GOLDEN_DIR.mkdir(exist_ok=True)
    streams = {"wide": _wide(), "mixed": _mixed(True)}
    assert orjson.dumps(streams["mixed"]) == orjson.dumps(_mixed(False)), "fast and exact paths differ"
    for name, stream in streams.items():
        (GOLDEN_DIR / f"{name}.json.gz").write_bytes(gzip.compress(orjson.dumps(stream, option=orjson.OPT_SORT_KEYS),
                                                                   mtime=0))


if __name__ == "__main__":  # pragma: no cover
    _record()
