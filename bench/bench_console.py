"""``console.*_p50_s``: each data endpoint of the web console over a store of 10 M predictions (1 M
with --quick), through the real API (uvicorn on 127.0.0.1, the bearer token), the median of
several runs. ``console.model_page_p50_s`` is the issue's headline; the fleet page, the incident
page and the incident's accuracy query (``POST /v1/console/sql``) are recorded beside it. Target:
each under 0.3 s.

Baseline, measured in the same run: the same queries, with the same parameters, through
``POST /v1/query`` one after another — each endpoint's queries are recorded at the store while the
endpoint answers once, then replayed. A ratio near 1 says an endpoint costs what its SQL costs.

The store: the demo fleet's real history (:func:`inferwatch.testing.history.load_fleet_history`:
processor core, alerter engine, the sink's row builders; 2 simulated hours, the new camera halfway)
gives metric snapshots, alerts and the predictions' shapes; then chDB copies the predictions
inside the engine (``INSERT … SELECT`` over ``numbers()``) until the table holds the target, each
copy with new ids and its timestamp moved by under a minute, and the labels of the copies with
them. The per-minute rollup fills itself on insert, as it does for the sink. Building the history
through the core for 10 M predictions would take tens of minutes; the copies take seconds.
"""

from __future__ import annotations

import math
import secrets
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from bench.context import BenchContext
from inferwatch.api.app import create_app
from inferwatch.config import Settings
from inferwatch.demo.fleet import NEW_DEVICE, FleetConfig
from inferwatch.infra.kafka_native import free_port
from inferwatch.store.base import QueryResult
from inferwatch.store.embedded import EmbeddedStore
from inferwatch.testing.history import load_fleet_history

MODEL = "photo-verifier"
OTHER_MODELS = ("home-recommender", "essay-grader", "checkout-ranker", "fraud-scorer")
HISTORY_HOURS = 2
WINDOW_S = 600  # ten-minute windows: enough labels per window in nova-x for accuracy_drop's min_count
TARGET_S = 0.3


class RecordingStore:
    """The store as the API sees it, noting every query (SQL and parameters) while ``recording``."""

    def __init__(self, store: EmbeddedStore) -> None:
        self._store = store
        self.recording: list[tuple[str, dict[str, Any]]] | None = None

    def query(self, sql: str, params: Mapping[str, Any] | None = None, **kw: Any) -> QueryResult:
        if self.recording is not None:
            self.recording.append((sql, dict(params or {})))
        return self._store.query(sql, params, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def build_store(store: EmbeddedStore, predictions: int) -> dict[str, Any]:
    """The fleet's history, then its predictions copied inside the engine up to ``predictions`` rows."""
    # ending just before now: the incident's saved accuracy query looks back from now (since_hours)
    start_ms = int(time.time() * 1000) - HISTORY_HOURS * 3600_000 - 600_000
    t0 = time.perf_counter()
    base = 0
    # The new camera's model dense enough for the rules' min_count in its nova-x segment (a third of
    # its traffic), the other four sparser: the processor core's time is most of the build.
    for models, rate in ((frozenset({MODEL}), 150), (frozenset(OTHER_MODELS), 30)):
        cfg = FleetConfig(start_ms=start_ms - start_ms % 600_000, duration_s=HISTORY_HOURS * 3600,
                          incident_at_s=HISTORY_HOURS * 3600 // 2, rate_per_min=rate)
        base += load_fleet_history(store, cfg, window_s=WINDOW_S, models=models).rows.get("predictions", 0)
    history_s = time.perf_counter() - t0
    copies = max(0, math.ceil(predictions / base) - 1)
    t0 = time.perf_counter()
    if copies:
        # One statement per table: chDB streams it block by block. The copy's ts moves by under a minute
        # (so the copies do not pile on the same milliseconds) and stays inside the original hour's data.
        store.execute(f"""
            INSERT INTO predictions
            SELECT p.* REPLACE (
                       concat(p.event_id, '~', toString(n.number)) AS event_id,
                       concat(p.prediction_id, '~', toString(n.number)) AS prediction_id,
                       p.ts - toIntervalMillisecond(cityHash64(p.event_id, n.number) % 60000) AS ts,
                       now64(3) AS inserted_at)
            FROM predictions AS p CROSS JOIN numbers(1, {copies}) AS n
            WHERE p.event_id NOT LIKE '%~%'
            LIMIT {predictions - base}""")
        store.execute(f"""
            INSERT INTO feedback
            SELECT f.* REPLACE (
                       concat(f.event_id, '~', toString(n.number)) AS event_id,
                       concat(f.prediction_id, '~', toString(n.number)) AS prediction_id)
            FROM feedback AS f CROSS JOIN numbers(1, {copies}) AS n
            WHERE f.event_id NOT LIKE '%~%'""")
    copy_s = time.perf_counter() - t0
    counts = {t: int(store.query(f"SELECT count() FROM {t}", readonly=False, max_rows=1, timeout_s=60).rows[0][0])
              for t in ("predictions", "feedback", "metrics", "alerts")}
    return {"history_s": round(history_s, 1), "copy_s": round(copy_s, 1), "history_predictions": base,
            "copies": copies, **{f"{t}_rows": n for t, n in counts.items()}}


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """``app`` under uvicorn on a free loopback port, in a thread, for the duration of the block."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the API did not start within 30 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _median_s(fn: Callable[[], None], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(ctx: BenchContext) -> None:
    n = 1_000_000 if ctx.quick else 10_000_000
    runs = 5 if ctx.quick else 9
    store = EmbeddedStore(ctx.scratch / "console-chdb", "inferwatch")
    t0 = time.perf_counter()
    built = build_store(store, n)
    setup_s = time.perf_counter() - t0
    token = secrets.token_urlsafe(18)
    rec = RecordingStore(store)
    settings = Settings(data_dir=ctx.scratch / "console-data", api_token=token)
    app = create_app(rec, api_token=token, settings=settings, metrics=False)  # type: ignore[arg-type]
    auth = {"Authorization": f"Bearer {token}"}
    try:
        with serve(app) as url, httpx.Client(base_url=url, headers=auth, timeout=60) as http:
            def get(path: str, **params: Any) -> Any:
                r = http.get(path, params=params)
                r.raise_for_status()
                return r.json()

            model = get(f"/v1/console/models/{MODEL}")
            # the new camera's incident: an alert in its segment, accuracy_drop first where the history
            # has one (its windows rarely hold enough labels for that rule's min_count), else input drift
            camera = sorted((a for a in model["incidents"] if a.get("segment") == f"device={NEW_DEVICE}"),
                            key=lambda a: (a["rule"] != "accuracy_drop", a["rule"] != "input_drift"))
            if not camera:
                raise RuntimeError(f"no alert in device={NEW_DEVICE} in the history: "
                                   f"{[(a['rule'], a.get('segment')) for a in model['incidents']][:20]}")
            incident = camera[0]
            fp = incident["fingerprint"]
            try:
                acc_params = get(f"/v1/console/incidents/{fp}")["accuracy_query"]["params"]
            except httpx.HTTPStatusError:  # measured (and its failure recorded) below
                acc_params = {"model": MODEL, "segment_key": "device", "bucket_minutes": "10",
                              "since_hours": str(HISTORY_HOURS + 1), "model_version": incident.get("model_version") or ""}

            def post_sql() -> None:
                http.post("/v1/console/sql", json={"saved": "accuracy_by_segment",
                                                   "params": acc_params}).raise_for_status()

            endpoints: dict[str, tuple[str, Callable[[], None]]] = {
                "console.fleet_page_p50_s": ("GET /v1/console/fleet", lambda: get("/v1/console/fleet")),
                "console.model_page_p50_s": (f"GET /v1/console/models/{MODEL}",
                                             lambda: get(f"/v1/console/models/{MODEL}")),
                "console.incident_page_p50_s": ("GET /v1/console/incidents/{fingerprint}",
                                                lambda: get(f"/v1/console/incidents/{fp}")),
                "console.incident_accuracy_p50_s": ("POST /v1/console/sql (accuracy_by_segment)", post_sql),
            }
            for name, (what, call) in endpoints.items():
                rec.recording = []
                t0 = time.perf_counter()
                error = None
                try:
                    call()  # warm-up, and the queries it runs
                except httpx.HTTPStatusError as exc:  # e.g. a query over the console's time limit
                    error = f"HTTP {exc.response.status_code}: {exc.response.text[:300]}"
                warm_s = time.perf_counter() - t0
                queries, rec.recording = rec.recording, None
                n_runs = runs if warm_s < 2.0 else 3  # a slow endpoint is measured fewer times

                def replay(queries: list[tuple[str, dict[str, Any]]] = queries) -> None:
                    for sql, params in queries:
                        http.post("/v1/query", json={"sql": sql, "params": params, "max_rows": 10_000,
                                                     "timeout_s": 30}).raise_for_status()

                baseline: float | None = None
                try:
                    replay()  # warm-up of the baseline path
                    baseline = _median_s(replay, n_runs)
                except httpx.HTTPStatusError as exc:
                    error = (error or "") + f"; baseline HTTP {exc.response.status_code}: {exc.response.text[:300]}"
                # a failing endpoint: the time until it failed, and why (the value is then no p50)
                value = warm_s if error else _median_s(call, n_runs)
                ctx.record(name, value, "s", baseline="the same queries through POST /v1/query",
                           baseline_value=baseline, endpoint=what, queries=len(queries), predictions=n,
                           incident_rule=incident["rule"], runs=1 if error else n_runs, target_s=TARGET_S,
                           setup_s=round(setup_s, 1), **({"failed": error} if error else {}), **built)
    finally:
        store.close()


if __name__ == "__main__":
    import argparse
    import json
    import tempfile
    from pathlib import Path

    ap = argparse.ArgumentParser(description="python -m bench.bench_console (no broker needed)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="inferwatch-bench-console-") as tmp:
        c = BenchContext(kafka_bootstrap="", scratch=Path(tmp), quick=args.quick)
        run(c)
    rows = [r.as_dict() for r in c.results]
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(rows, indent=2))
    for r in rows:
        base = "failed" if r["baseline_value"] is None else f"{r['baseline_value']:.3f} s"
        print(f"{r['name']:<36} {r['value']:.3f} s  (baseline {base}, {r['params']['queries']} queries)"
              + (f"  FAILED: {r['params']['failed']}" if "failed" in r["params"] else ""))
