"""Golden outputs of the core: snapshots, dead letters and the bytes of every store after every batch,
for a wide bench-like stream (15 numeric + 5 categorical features, 3 segment keys) and mixed traffic
with labels, on both paths, digested. The digests were recorded with the core as of the columnar
fast path (before the speed work that followed); any change to a metric value (down to the last
bit), to a finding or to the stored state changes them. Only an intended change of outputs may
update them (say so in the commit), never a speed change."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import orjson
import pytest

import inferwatch.processor.core.snapshot as snapshot_mod
from inferwatch.processor.config import ProcessorConfig
from inferwatch.processor.core.engine import Output, ProcessorCore
from inferwatch.processor.scenarios import wide_event
from tests.unit.processor.mixed_traffic import T0, mixed_batches

GOLDEN = {
    "wide": "244aa0c92740e7d6da7b2e43e47b1f1c3051f0086960e929356a4533347ea081",
    "mixed-fast": "a2fc4bba1f1f5f673bc808d69cabe147d19041e65a8762dbd2c2db41008041cc",
    "mixed-exact": "a2fc4bba1f1f5f673bc808d69cabe147d19041e65a8762dbd2c2db41008041cc",
}


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot_mod.time, "time", lambda: 1_800_000_000.0)


class _Digest:
    def __init__(self) -> None:
        self.h = hashlib.sha256()

    def out(self, out: Output) -> None:
        snaps = sorted((s.model_dump(mode="json") for s in out.snapshots),
                       key=lambda s: (s["model"], s["model_version"], s["window_start"], s["segment_key"] or "",
                                      s["segment_value"] or ""))
        self.h.update(orjson.dumps(snaps, option=orjson.OPT_SORT_KEYS))
        self.h.update(orjson.dumps([(r.raw.offset, r.reason, r.schema) for r in out.rejected]))

    def stores(self, *stores: dict[str, bytes]) -> None:
        for st in stores:
            for k in sorted(st):
                self.h.update(k.encode() + b"=" + st[k])


def _wide() -> str:
    rng = np.random.default_rng(7)
    raws = [wide_event(i, T0 + i * 5, rng, shift=0.5 if i > 6000 else 0.0) for i in range(12_000)]
    cfg = ProcessorConfig(window_s=10, lateness_s=0, baseline_s=10, embedding_permutations=10, top_k=5)
    core = ProcessorCore(cfg, fast=True)
    d = _Digest()
    for i in range(0, len(raws), 1500):
        d.out(core.process_prediction_values(raws[i:i + 1500], "p", 0, range(i, i + 1500), now=0.0))
        d.stores(core.windows, core.meta)
    d.out(core.flush_all())
    d.stores(core.windows, core.meta)
    return d.h.hexdigest()


def _mixed(fast: bool) -> str:
    cfg = ProcessorConfig(window_s=30, lateness_s=5, label_wait_s=5, baseline_s=60, max_tracked_values=4, top_k=3)
    w: dict[str, bytes] = {}
    j: dict[str, bytes] = {}
    m: dict[str, bytes] = {}
    core = ProcessorCore(cfg, w, j, m, fast=fast)
    d = _Digest()
    for kind, raws in mixed_batches(3, n=2500, batch=300, bad_share=0.05):
        f: Any = core.process_predictions if kind == "p" else core.process_feedback
        d.out(f(raws, now=0.0))
        d.stores(w, j, m)
    d.out(core.flush_all())
    d.stores(w, j, m)
    return d.h.hexdigest()


def test_wide_stream_golden() -> None:
    assert _wide() == GOLDEN["wide"]


@pytest.mark.parametrize("fast", [True, False])
def test_mixed_traffic_golden(fast: bool) -> None:
    assert _mixed(fast) == GOLDEN["mixed-fast" if fast else "mixed-exact"]
