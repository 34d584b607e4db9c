"""Send the simulated fleet through the real SDK, paced so simulated time runs ``speed``× wall time.

Each model version gets its own :class:`~inferwatch.InferenceLogger`, exactly as one model server
would; events carry their simulated timestamps (``ts_ms=``). The driver reports progress through a
callback every ``progress_every_s`` wall seconds and returns what it sent, so callers (the demo, the
e2e test) can check that every event reached the store.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from inferwatch.config import Settings
from inferwatch.demo.fleet import FleetConfig, generate
from inferwatch.sdk import InferenceLogger


@dataclass
class Progress:
    """Where the simulation is: simulated seconds since its start, events sent so far."""

    sim_s: float
    sent: int
    total: int
    wall_s: float


@dataclass
class SendReport:
    """What the driver sent: counts per (kind, model) and the SDK's own counters per logger."""

    predictions: Counter[str] = field(default_factory=Counter)
    feedback: Counter[str] = field(default_factory=Counter)
    sdk_stats: dict[str, dict[str, int]] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def total(self) -> int:
        """Every SDK call made."""
        return sum(self.predictions.values()) + sum(self.feedback.values())


def send_fleet(
    settings: Settings,
    cfg: FleetConfig,
    total: int,
    speed: float | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    progress_every_s: float = 5.0,
    spool_dir: Path | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> SendReport:
    """Send every event of ``generate(cfg)``; ``speed=None`` sends as fast as the SDK takes them."""
    loggers: dict[tuple[str, str], InferenceLogger] = {}
    rep = SendReport()
    t0 = time.monotonic()
    next_report = t0 + progress_every_s
    sent = 0
    try:
        for ev in generate(cfg):
            lg = loggers.get((ev.model, ev.model_version))
            if lg is None:
                # one spool for the whole fleet: loggers with the same settings share one transport
                # (one producer, one spool whose records carry their model), as a multi-model server's do
                lg = InferenceLogger(ev.model, ev.model_version, settings=settings, spool_dir=spool_dir)
                loggers[(ev.model, ev.model_version)] = lg
            if ev.kind == "prediction":
                lg.prediction(prediction_id=ev.prediction_id, ts_ms=ev.ts_ms, **ev.args)
                rep.predictions[ev.model] += 1
            else:
                lg.feedback(ev.prediction_id, ts_ms=ev.ts_ms, **ev.args)
                rep.feedback[ev.model] += 1
            sent += 1
            if sent % 256 == 0:
                now = time.monotonic()
                sim_s = (ev.ts_ms - cfg.start_ms) / 1000
                if speed is not None:
                    ahead = t0 + sim_s / speed - now
                    if ahead > 0:
                        time.sleep(ahead)
                        now = time.monotonic()
                if on_progress is not None and now >= next_report:
                    next_report = now + progress_every_s
                    on_progress(Progress(sim_s, sent, total, now - t0))
                if should_stop():
                    break
    finally:
        for lg in loggers.values():
            lg.flush(timeout_s=30)
        for key, lg in loggers.items():
            rep.sdk_stats[f"{key[0]}@{key[1]}"] = lg.stats()
            lg.close()
    rep.wall_s = time.monotonic() - t0
    if on_progress is not None:
        on_progress(Progress(cfg.duration_s, sent, total, rep.wall_s))
    return rep
