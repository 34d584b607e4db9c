"""``report.build_s``: ``inferwatch report`` for one model-day (the demo's photo-verifier with its
new-camera incident, 24 h of simulated traffic through the processor core, the alerter engine and
the sink's row builders) in the embedded store: queries through the read-only path (the guard) and
the HTML rendering; the median of several runs. Baseline: the same queries run raw on the store
(read-write session, no guard, no rendering). The issue's target: under 5 s."""

from __future__ import annotations

import datetime as dt
import statistics
import time

from bench.context import BenchContext
from inferwatch.demo.fleet import FleetConfig
from inferwatch.report import QUERIES, build_report
from inferwatch.report.build import MAX_ROWS, params_for
from inferwatch.store.embedded import EmbeddedStore
from inferwatch.testing.history import load_fleet_history

MODEL = "photo-verifier"


def run(ctx: BenchContext) -> None:
    hours = 6 if ctx.quick else 24
    start = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    end = start + dt.timedelta(hours=hours)
    cfg = FleetConfig(start_ms=int(start.timestamp() * 1000), duration_s=hours * 3600,
                      incident_at_s=hours * 3600 // 2, rate_per_min=60)
    store = EmbeddedStore(ctx.scratch / "report-chdb", "inferwatch")
    t0 = time.perf_counter()
    stats = load_fleet_history(store, cfg, window_s=300, models=frozenset({MODEL}))
    setup_s = time.perf_counter() - t0

    def guarded(sql, params):  # type: ignore[no-untyped-def]
        return store.query(sql, params, readonly=True, max_rows=MAX_ROWS, timeout_s=60)

    params = params_for(MODEL, None, start, end)
    page = build_report(guarded, MODEL, None, start, end)  # warm-up (and the page's size)
    for sql in QUERIES.values():
        store.query(sql, params, readonly=False, max_rows=MAX_ROWS, timeout_s=60)
    runs = 3 if ctx.quick else 5
    built, raw = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        build_report(guarded, MODEL, None, start, end)
        built.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for sql in QUERIES.values():
            store.query(sql, params, readonly=False, max_rows=MAX_ROWS, timeout_s=60)
        raw.append(time.perf_counter() - t0)
    store.close()
    ctx.record("report.build_s", statistics.median(built), "s", baseline="raw store queries",
               baseline_value=statistics.median(raw), hours=hours, model=MODEL, queries=len(QUERIES),
               predictions=stats.rows.get("predictions", 0), metric_rows=stats.rows.get("metrics", 0),
               alert_rows=stats.rows.get("alerts", 0), window_s=300, html_kib=round(len(page.encode()) / 1024, 1),
               runs=runs, setup_s=round(setup_s, 1), target_s=5.0)
