"""A new version is compared with the version it replaced until its own baseline is pinned: a bad
deploy (slower, failing) shows against the old version from its first window."""

from __future__ import annotations

import orjson

from inferwatch.processor import ProcessorSettings
from inferwatch.processor.core.raw_events import Raw
from inferwatch.processor.core.state_machine import ProcessorCore

T0 = 1_764_140_040_000


def _raws(version: str, start_s: int, n_s: int, latency_ms: float, offset0: int) -> list[Raw]:
    out = []
    for i in range(n_s * 10):
        ts = T0 + start_s * 1000 + i * 100
        ev = {"schema_version": "prediction.v1", "event_id": f"{version}-{i}", "prediction_id": f"{version}-{i}",
              "ts": ts, "model": "ranker", "model_version": version, "latency_ms": latency_ms + (i % 7),
              "outputs": {"value": 0.5}}
        out.append(Raw(orjson.dumps(ev), "p", 0, offset0 + i, b"ranker"))
    return out


def test_new_version_uses_the_previous_reference_until_its_own_is_pinned() -> None:
    core = ProcessorCore(ProcessorSettings(window_s=60, lateness_s=0, baseline_s=120))
    snaps = core.process_predictions(_raws("2.0", 0, 300, 40.0, 0)).snapshots
    snaps += core.process_predictions(_raws("2.1", 300, 300, 260.0, 10_000)).snapshots
    snaps += core.flush_all().snapshots
    new = sorted((s for s in snaps if s.model_version == "2.1" and s.segment_key is None), key=lambda s: s.window_start)
    assert len(new) == 5
    first = new[0]
    assert first.metrics["latency_p95_ms"] > 250
    assert first.reference["latency_p95_ms"] < 50  # 2.0's reference
    assert new[-1].reference["latency_p95_ms"] > 250  # 2.1's own, pinned after its first two windows
    assert [s for s in snaps if s.model_version == "2.0" and s.segment_key is None][0].reference == {}
