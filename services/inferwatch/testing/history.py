"""A stored history with the real shapes, for the report's and the Grafana dashboards' tests and bench.

The demo fleet (:mod:`inferwatch.demo.fleet`: the new camera ``nova-x``, the feedback loop, the
confident liar, the bad deploy and a control) is turned into ``prediction.v1``/``feedback.v1``
JSON, run through the pure processor core (real metric snapshots and findings) and the alerter's
engine with the default rules (real alerts), and every row is built by the sink's own column
builders before it goes into the store. No Kafka: the path from JSON to rows is the services' own.

``hostile`` adds a few predictions whose segment value is markup (``<script>…``), so readers of
the history can be tested for escaping.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from inferwatch.demo.fleet import FleetConfig, SimEvent, generate
from inferwatch.store.base import Store

HOSTILE_SEGMENT = "<script>alert(1)</script>"
"""A segment value a user could log; every page that shows it must escape it."""


@dataclass
class HistoryStats:
    """What :func:`load_fleet_history` stored, table by table."""

    rows: dict[str, int] = field(default_factory=dict)
    start_ms: int = 0
    end_ms: int = 0


def _json(ev: SimEvent, i: int, hostile: bool) -> bytes:
    if ev.kind == "feedback":
        body = {"schema_version": "feedback.v1", "event_id": f"f-{ev.prediction_id}", "prediction_id": ev.prediction_id,
                "ts": ev.ts_ms, "model": ev.model, **ev.args}
        return orjson.dumps(body)
    body = {"schema_version": "prediction.v1", "event_id": f"e-{ev.prediction_id}", "prediction_id": ev.prediction_id,
            "ts": ev.ts_ms, "model": ev.model, "model_version": ev.model_version}
    body.update({k: v for k, v in ev.args.items() if v is not None})
    if hostile and ev.model == "photo-verifier" and i % 97 == 0:
        body["segment"] = {**body.get("segment", {}), "device": HOSTILE_SEGMENT}
    return orjson.dumps(body)


def fleet_messages(cfg: FleetConfig, hostile: bool = True, models: frozenset[str] | None = None
                   ) -> Iterator[tuple[str, bytes]]:
    """``(kind, JSON bytes)`` of every event of the simulated fleet (of ``models`` only, when given),
    in simulated time order."""
    for i, ev in enumerate(generate(cfg)):
        if models is None or ev.model in models:
            yield ev.kind, _json(ev, i, hostile)


def load_fleet_history(store: Store, cfg: FleetConfig, hostile: bool = True, window_s: int = 60,
                       models: frozenset[str] | None = None, chunk: int = 20_000) -> HistoryStats:
    """Run the fleet through the processor core and the alerter engine; insert predictions,
    feedback, metric snapshots and alert notifications into ``store`` (migrated here).

    Embedding drift runs with a small sample and few permutations: the history is for readers of
    the store, and the permutation test would otherwise dominate the time it takes to build."""
    from inferwatch.alerter.evaluation.rule_engine import Engine
    from inferwatch.alerter.evaluation.rules import default_rules_path, load_rules
    from inferwatch.alerter.lifecycle.state import AlertStore
    from inferwatch.alerter.notification.payloads import idempotency_key, notification
    from inferwatch.contract.events import Delivery
    from inferwatch.processor.core.raw_events import Raw
    from inferwatch.processor.core.state_machine import ProcessorCore
    from inferwatch.processor.settings import ProcessorSettings
    from inferwatch.sink import arrow_tables as columns
    from inferwatch.sink import batch

    store.migrate()
    core = ProcessorCore(ProcessorSettings(window_s=window_s, lateness_s=5, label_wait_s=int(cfg.label_delay_s) + 5,
                                         baseline_s=min(cfg.incident_at_s, 300),
                                         embedding_sample=64, embedding_permutations=20))
    stats = HistoryStats(start_ms=cfg.start_ms, end_ms=cfg.start_ms + cfg.duration_s * 1000)
    offsets = {"prediction": 0, "feedback": 0}
    snaps = []

    def add(table: str, n: int) -> None:
        stats.rows[table] = stats.rows.get(table, 0) + n

    def flush(buf: list[tuple[str, bytes]]) -> None:
        for kind, schema, topic in (("prediction", "prediction.v1", "inferwatch.predictions"),
                                    ("feedback", "feedback.v1", "inferwatch.feedback")):
            vals = [v for k, v in buf if k == kind]
            if not vals:
                continue
            o0 = offsets[kind]
            offsets[kind] += len(vals)
            raws = [Raw(v, topic, 0, o0 + j) for j, v in enumerate(vals)]
            out = core.process_predictions(raws) if kind == "prediction" else core.process_feedback(raws)
            snaps.extend(out.snapshots)
            pb = batch.process(schema, topic, 0, [batch.RawMessage(o0 + j, None, v) for j, v in enumerate(vals)])
            if pb.dead_letters:
                # Dead-lettered "now" in simulated time, like everything else in the history.
                dls = [d.model_copy(update={"ts": stats.start_ms}) for d in pb.dead_letters]
                dl = columns.deadletter(dls, columns.Kafka("inferwatch.deadletter", 0, [d.source_offset or 0 for d in dls]))
                add("deadletter", store.insert("deadletter", dl))
            if pb.rows is not None:
                add(pb.table, store.insert(pb.table, pb.rows, dedup_token=pb.dedup_token))

    buf: list[tuple[str, bytes]] = []
    if hostile:  # a few messages no service can read: they become the sink's dead letters
        buf += [("prediction", b"{not json"), ("prediction", b'{"schema_version": "prediction.v1"}')]
    for item in fleet_messages(cfg, hostile, models):
        buf.append(item)
        if len(buf) >= chunk:
            flush(buf)
            buf = []
    flush(buf)
    snaps.extend(core.flush_all().snapshots)
    snaps.sort(key=lambda s: (s.window_end, s.model, s.segment_key or "", s.segment_value or ""))
    if snaps:
        add("metrics", store.insert("metrics", columns.metrics(snaps, columns.Kafka("inferwatch.metrics", 0,
                                                                                    list(range(len(snaps)))))))
    with tempfile.TemporaryDirectory() as tmp:
        now = [stats.start_ms]  # the engine's wall clock follows simulated time
        eng = Engine(AlertStore(Path(tmp) / "alerts.sqlite"), load_rules(default_rules_path()), clock=lambda: now[0])
        notes = []
        by_window: dict[int, list] = {}
        for s in snaps:
            by_window.setdefault(s.window_end, []).append(s)
        for end, group in sorted(by_window.items()):
            now[0] = end
            for seq, rec in enumerate(eng.process(group)):
                if rec.state not in ("firing", "resolved"):
                    continue
                gk = f"{rec.model}/{rec.rule}"
                key = idempotency_key("oncall", gk, end + seq, [rec.fingerprint] if rec.state == "firing" else [],
                                      [rec.fingerprint] if rec.state == "resolved" else [])
                note = notification("oncall", gk, {"model": rec.model or "", "rule": rec.rule}, [rec], key, end)
                # As the alerter records it: one row per delivery attempt, with its outcome.
                notes.append(note.model_copy(update={"delivery": Delivery(attempt=1, outcome="delivered", http_status=200,
                                                                          duration_ms=12.5)}))
        if notes:
            add("alerts", store.insert("alerts", columns.alerts(notes, columns.Kafka("inferwatch.alerts", 0,
                                                                                  list(range(len(notes)))))))
    return stats
