"""Detection quality: does the processor + alerter decision path flag a drift of known start in the
right segment, how fast, and does it stay quiet on healthy traffic?

Streams: :mod:`inferwatch.testing.streams` (bundled scikit-learn datasets and numpy generators;
each a drifted model with one affected and two clean segment values, plus a control model that
never drifts; the drift starts half-way). Each stream goes, in event-time order and in small
batches (one second of traffic), through the pure processor core
(:class:`~inferwatch.processor.core.state_machine.ProcessorCore`, default :class:`ProcessorSettings`) and
the snapshots it emits through the alerter's :class:`~inferwatch.alerter.evaluation.rule_engine.Engine` with the
default rules (``schemas/rules/defaults.yaml``), its clock at the stream's event time; the core's
sequential detections (``Output.detections``, :mod:`inferwatch.processor.core.detect`) go through the
same engine (``Engine.process_detections``, default rule ``drift_detected``). No Kafka: the decision
logic is what is measured, not transport. Batches are one second of traffic (~15 events per model),
so a delay is resolved to ~5 events of the affected segment.

Per scenario, from the alerts that fire:

* detected: an alert on the drifted model whose first breaching window ended (for a detection: whose
  detector tripped) after the drift start and which is on the affected segment or the whole version;
* segment named: one of those names the affected segment (its ``segment`` label, or its summary
  says ``segment key=value``);
* delay: events of the affected segment (predictions with ``ts >= drift start``) fed in before the
  first detecting alert fired; for label-only drift also the labels of those predictions fed in;
* false alarms: distinct alerts that fire on the control model, on a clean segment of the drifted
  model, or whose first breaching window ended before the drift start.

Peer, same streams, same run: Evidently (its own virtualenv ``.venv-evidently``, see
``bench/detect/evidently_windows.py``) over sliding windows of 200 events, step 50, per model and
segment value, each window compared with the pre-drift part of its series, with Evidently's default
per-column drift test; a window alarms when any column drifted. Labelled scenarios add a window
series over the labels (in arrival order) with the per-event correctness (or absolute error).

Results: ``detect.recall`` (detected AND segment named, share of scenarios), ``detect.false_alarms``
(total), ``detect.median_delay_events`` (over detected scenarios; a missed scenario counts as the
stream's whole post-drift segment length, so misses cannot improve the median), each with the
peer's value as baseline; the per-scenario table is printed and stored in ``params``.

Run alone: ``.venv/bin/python -m bench detect`` (``--quick``: four scenarios), or without the Kafka
broker the other benchmarks start, which this one does not use: ``.venv/bin/python -m bench.bench_detect``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.context import BenchContext, write_results
from inferwatch.alerter.evaluation.rule_engine import Engine
from inferwatch.alerter.evaluation.rules import default_rules_path, load_rules
from inferwatch.alerter.lifecycle.state import AlertStore
from inferwatch.alerter.lifecycle.transitions import AlertRecord
from inferwatch.processor.core.raw_events import Raw
from inferwatch.processor.core.state_machine import ProcessorCore
from inferwatch.processor.settings import ProcessorSettings
from inferwatch.testing import streams
from inferwatch.testing.streams import Stream, Truth

ROOT = Path(__file__).resolve().parents[1]
EVIDENTLY_PY = Path(os.environ.get("INFERWATCH_EVIDENTLY_PYTHON", ROOT / ".venv-evidently" / "bin" / "python"))
PEER_SCRIPT = ROOT / "bench" / "detect" / "evidently_windows.py"
STEP_MS = 1000  # one second of traffic per batch: the delay is resolved to ~5 events
WINDOW_EVENTS, STEP_EVENTS = 200, 50
QUICK = ("input_shift_wine", "concept_delayed_breast_cancer", "embedding_tenant_wine", "llm_confidence_customer")


@dataclass
class Fired:
    """One alert that became firing, and where the stream was when it did."""

    rule: str
    model: str
    segment: str | None
    active_since_ms: int  # end of its first breaching window
    at_ms: int  # stream position (latest event time fed) when it fired
    summary: str
    cause: str = ""  # the metric (ours) or the drifted columns (peer) it names


@dataclass
class Outcome:
    """One detector's verdict on one scenario."""

    detected: bool = False
    segment_named: bool = False
    delay_events: int | None = None
    delay_labels: int | None = None
    false_alarms: int = 0
    alerts_on_drifted: int = 0  # distinct alerts on the drifted model after the drift (noise)
    first: str | None = None  # what fired first
    false: list[str] = field(default_factory=list)
    chance: list[str] = field(default_factory=list)  # alarms on the affected segment for an unmoved signal


def run_ours(stream: Stream, scratch: Path, cfg: ProcessorSettings | None = None) -> tuple[list[Fired], int]:
    """Replay ``stream`` through ProcessorCore + alerter Engine: every alert that became firing, and
    how many labels of the drifted model came after their window had closed (dropped as late)."""
    core = ProcessorCore(cfg or ProcessorSettings(detect_enabled=True))
    now = {"ms": streams.T0_MS}
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        engine = Engine(AlertStore(Path(tmp) / "alerts.sqlite"), load_rules(default_rules_path()),
                        clock=lambda: now["ms"])
        fired: list[Fired] = []
        offsets = {"prediction": 0, "feedback": 0}
        detection_rules = {r.name for r in engine.detection_rules()}

        by_alert: dict[tuple[str | None, str | None, str], Any] = {}

        def feed(snaps: list[Any], dets: list[Any]) -> None:
            for d in dets:
                seg = f"{d.segment_key}={d.segment_value}" if d.segment_key is not None else None
                by_alert.setdefault((d.model, seg, f"{d.metric}.{d.detector}"), d)
            out = engine.process(snaps) + engine.process_detections(dets) + engine.tick()
            for a in out:
                if a.state == "firing" and a.starts_at_ms is not None and _new_firing(a, fired):
                    # a detection's alert counts from the event that tripped its detector (its
                    # active_since is the detector's estimate of the change, which may precede it)
                    since = a.starts_at_ms if a.rule in detection_rules else a.active_since_ms
                    cause = a.labels.get("metric", "")
                    d = by_alert.get((a.model, a.segment, cause))
                    if d is not None:  # a joint detector names what moved in its evidence: the top 3 count
                        cause += " " + " ".join(f"{e.name}.cusum" for e in d.evidence[:3])
                    fired.append(Fired(a.rule, a.model or "", a.segment, since, now["ms"],
                                       a.annotations.get("summary", ""), cause))

        evs = stream.events
        i = 0
        while i < len(evs):
            end = evs[i].ts - (evs[i].ts - streams.T0_MS) % STEP_MS + STEP_MS
            j = i
            while j < len(evs) and evs[j].ts < end:
                j += 1
            batch = evs[i:j]
            now["ms"] = batch[-1].ts
            preds: list[Raw] = []
            fbs: list[Raw] = []
            for e in batch:
                raw = Raw(e.value, e.kind, 0, offsets[e.kind])
                offsets[e.kind] += 1
                (preds if e.kind == "prediction" else fbs).append(raw)
            o = core.process_predictions(preds, now=now["ms"] / 1000)
            o.extend(core.process_feedback(fbs, now=now["ms"] / 1000))
            if o.snapshots or o.detections:
                feed(o.snapshots, o.detections)
            i = j
        # the end of the stream is not an alarm: windows still open are not closed here, as a live
        # processor would not have closed them yet either
        late = sum(int(v.get("late_labels", 0)) for v in core._model(stream.truth.model)["versions"].values())
        return fired, late


def _new_firing(a: AlertRecord, fired: list[Fired]) -> bool:
    """A firing transition not yet recorded (``updated`` while firing repeats the same alert)."""
    return not any(f.rule == a.rule and f.model == a.model and f.segment == a.segment
                   and f.active_since_ms == a.active_since_ms for f in fired)


def positions(stream: Stream) -> tuple[list[int], list[int]]:
    """Event times of the affected segment's post-drift predictions, and of their labels."""
    t = stream.truth
    pred_ts, label_ts = [], []
    affected_ids = set()
    for e in stream.events:
        if e.key.decode() != t.model:
            continue
        d = orjson.loads(e.value)
        if e.kind == "prediction":
            if d["ts"] >= t.drift_start_ms and d["segment"].get(t.segment_key) == t.affected:
                pred_ts.append(d["ts"])
                affected_ids.add(d["prediction_id"])
        elif d["prediction_id"] in affected_ids:
            label_ts.append(d["ts"])
    return pred_ts, label_ts


def judge(truth: Truth, fired: list[Fired], pred_ts: list[int], label_ts: list[int], strict: bool = True) -> Outcome:
    """Score the alerts of one scenario against its known answer.

    ``strict``: an alarm on the drifted model after the drift counts as a detection only when it names
    a signal the drift moved (``truth.signals``); one that names another signal is chance and counts
    as neither detection nor false alarm (``Outcome.chance``)."""
    o = Outcome()
    named = f"segment {truth.segment}"
    first_hit: Fired | None = None
    for f in sorted(fired, key=lambda f: f.at_ms):
        desc = f"{f.rule}@{f.model}[{f.segment or 'whole'}]"
        if f.model == truth.control:
            o.false.append(desc + " (control)")
        elif f.active_since_ms <= truth.drift_start_ms:
            o.false.append(desc + " (before the drift)")
        elif f.segment is not None and f.segment != truth.segment:
            o.false.append(desc + " (clean segment)")
        elif strict and truth.signals and not any(sig in f.cause for sig in truth.signals):
            o.chance.append(f"{desc} on {f.cause}")
        else:
            o.alerts_on_drifted += 1
            o.detected = True
            if f.segment == truth.segment or named in f.summary:
                o.segment_named = True
            if first_hit is None:
                first_hit = f
    o.false_alarms = len(o.false)
    if first_hit is not None:
        o.first = f"{first_hit.rule}[{first_hit.segment or 'whole'}]"
        o.delay_events = sum(1 for ts in pred_ts if ts <= first_hit.at_ms)
        if truth.label_only:
            o.delay_labels = sum(1 for ts in label_ts if ts <= first_hit.at_ms)
    return o


# ---- the peer ---------------------------------------------------------------------------------

def peer_series(stream: Stream) -> dict[str, Any]:
    """The stream as the peer sees it: per model × segment value, the prediction rows and the label rows."""
    t = stream.truth
    preds: dict[str, dict[str, Any]] = {}
    series: dict[str, dict[str, Any]] = {}
    for e in stream.events:
        d = orjson.loads(e.value)
        if e.kind == "prediction":
            row: dict[str, Any] = {}
            for k, v in d.get("inputs", {}).items():
                row[f"in.{k}"] = v
            out = d.get("outputs") or {}
            if "score" in out:
                row["out.score"] = out["score"]
            if "label" in out:
                row["out.label"] = out["label"]
            if "value" in out:
                row["out.value"] = out["value"]
            for k, v in enumerate(d.get("embedding") or []):
                row[f"emb.{k}"] = v
            lps = (d.get("llm") or {}).get("token_logprobs")
            if lps:
                row["llm.logprob_mean"] = sum(lps) / len(lps)
            seg = d["segment"][t.segment_key]
            preds[d["prediction_id"]] = {"seg": seg, "ts": d["ts"], "out": out}
            s = series.setdefault(f"{d['model']}|{seg}", {"model": d["model"], "segment": seg, "pred": [], "label": []})
            s["pred"].append({"ts": d["ts"], "pts": d["ts"], "row": row})
        else:
            p = preds[d["prediction_id"]]
            out = p["out"]
            lrow: dict[str, Any] = ({"label.correct": str(out.get("label") == d["label"])} if "label" in d
                                    else {"label.abs_error": abs(float(out.get("value", 0.0)) - float(d["value"]))})
            series[f"{d['model']}|{p['seg']}"]["label"].append({"ts": d["ts"], "pts": p["ts"], "row": lrow})
    return {"drift_start_ms": t.drift_start_ms, "window": WINDOW_EVENTS, "step": STEP_EVENTS,
            "stop_after_first": {f"{t.model}|{t.affected}": list(t.signals)}, "series": list(series.values())}


def run_peer(streams_: list[Stream], scratch: Path) -> dict[str, Any] | None:
    """Evidently over every stream's windows in its own virtualenv; None when it is not installed."""
    if not EVIDENTLY_PY.exists():
        print(f"  (peer skipped: {EVIDENTLY_PY} does not exist; `make bench` creates it)")
        return None
    path = scratch / "detect-peer.json"
    path.write_bytes(orjson.dumps({s.name: peer_series(s) for s in streams_}))
    out = subprocess.run([str(EVIDENTLY_PY), str(PEER_SCRIPT), str(path)], capture_output=True, text=True,
                         timeout=1800, check=True)
    res: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return res


def judge_peer(truth: Truth, alarms: list[dict[str, Any]], pred_ts: list[int], label_ts: list[int],
               strict: bool = True) -> Outcome:
    """Score the peer's window alarms (``{"model", "segment", "view", "at_ms", "columns"}``) like ours.

    The peer raises one alarm per drifting window; per series, the first alarm counts (a series that
    keeps drifting is one alert, as ours would be), and under ``strict`` the first alarm that names
    a moved signal on the affected series (earlier ones there are chance)."""
    fired = [Fired(f"evidently:{a['view']}", a["model"], f"{truth.segment_key}={a['segment']}", a["first_pts"],
                   a["at_ms"], f"segment {truth.segment_key}={a['segment']}", ",".join(a["columns"]))
             for a in alarms]
    seen: set[tuple[str, str | None]] = set()
    kept = []
    for f in sorted(fired, key=lambda f: f.at_ms):
        on_target = f.model == truth.model and f.segment == truth.segment
        moved = not truth.signals or any(sig in f.cause for sig in truth.signals)
        if (f.model, f.segment) in seen or (on_target and strict and not moved):
            continue
        seen.add((f.model, f.segment))
        kept.append(f)
    return judge(truth, kept, pred_ts, label_ts, strict)


# ---- the report --------------------------------------------------------------------------------

def _median_delay(outs: list[Outcome], misses_as: list[int]) -> float:
    vals = [o.delay_events if o.detected and o.delay_events is not None else m for o, m in zip(outs, misses_as, strict=True)]
    return float(statistics.median(vals)) if vals else float("nan")


def misses_of(built: list[Stream], pos: dict[str, tuple[list[int], list[int]]]) -> list[int]:
    """What a miss counts as in the median delay: every post-drift event of the affected segment."""
    return [len(pos[s.name][0]) for s in built]


def _fmt(o: Outcome | None) -> str:
    if o is None:
        return "-"
    if not o.detected:
        return f"MISSED fa={o.false_alarms}"
    lab = f"/{o.delay_labels}lab" if o.delay_labels is not None else ""
    return f"{'named' if o.segment_named else 'UNNAMED'} {o.delay_events}ev{lab} fa={o.false_alarms}"


def run(ctx: BenchContext) -> None:
    """``detect.recall``, ``detect.false_alarms``, ``detect.median_delay_events`` against the peer."""
    names = list(QUICK if ctx.quick else streams.SCENARIOS)
    built: list[Stream] = []
    rows: list[dict[str, Any]] = []
    ours: list[Outcome] = []
    pos: dict[str, tuple[list[int], list[int]]] = {}
    t_ours = 0.0
    late_labels: dict[str, int] = {}
    ours_loose: list[Outcome] = []  # any alarm on the affected segment counts, whatever it names
    for name in names:
        s = streams.build(name)
        built.append(s)
        pos[name] = positions(s)
        t = time.perf_counter()
        fired, late_labels[name] = run_ours(s, ctx.scratch)
        t_ours += time.perf_counter() - t
        ours.append(judge(s.truth, fired, *pos[name]))
        ours_loose.append(judge(s.truth, fired, *pos[name], strict=False))
    t = time.perf_counter()
    peer = run_peer(built, ctx.scratch)
    t_peer = time.perf_counter() - t
    theirs: list[Outcome] | None = None
    if peer is not None:
        theirs = [judge_peer(s.truth, peer["alarms"].get(s.name, []), *pos[s.name]) for s in built]
        theirs_loose = [judge_peer(s.truth, peer["alarms"].get(s.name, []), *pos[s.name], strict=False)
                        for s in built]
    print(f"  {'scenario':<32} {'kind':<12} {'inferwatch':<34} {'evidently windows':<30}")
    for k, s in enumerate(built):
        o = ours[k]
        p = theirs[k] if theirs else None
        print(f"  {s.name:<32} {s.truth.kind:<12} {_fmt(o):<34} {_fmt(p):<30}")
        rows.append({"scenario": s.name, "kind": s.truth.kind, "segment": s.truth.segment,
                     "drift_start_s": (s.truth.drift_start_ms - streams.T0_MS) / 1000,
                     "affected_post_drift_events": len(pos[s.name][0]), "description": s.truth.description,
                     "late_labels_dropped": late_labels[s.name],
                     "ours": asdict(o), "peer": asdict(p) if p else None})
        for why in o.false:
            print(f"      false alarm (ours): {why}")
        if late_labels[s.name]:
            print(f"      {late_labels[s.name]} labels came after their window closed (late for the window "
                  "metrics; the detectors take them)")
    misses = misses_of(built, pos)
    recall = sum(o.detected and o.segment_named for o in ours) / len(ours)
    fa = sum(o.false_alarms for o in ours)
    delay = _median_delay(ours, misses)
    common: dict[str, Any] = dict(
        scenarios=len(built), table=rows, processor_config=("ProcessorSettings() defaults (window_s=60, baseline_s=300, detect_false_alarm_rate="
                          f"{ProcessorSettings().detect_false_alarm_rate:g} per event of a version)"),
        rules="schemas/rules/defaults.yaml", rate_per_s_per_model=streams.RATE_PER_S, duration_s=streams.DURATION_S,
        detected_any=sum(o.detected for o in ours), ours_seconds=round(t_ours, 1),
        delay_note="events of the affected segment since the drift start; a miss counts as all of them",
        detection_rule=("an alarm on the affected segment (or the whole version) after the drift start that "
                        "names a signal the drift moved; *_any_alarm: any alarm there counts"),
        recall_any_alarm=sum(o.detected and o.segment_named for o in ours_loose) / len(ours_loose),
        median_delay_events_any_alarm=_median_delay(ours_loose, misses_of(built, pos)),
        peer_definition=("Evidently default per-column drift test, sliding windows of 200 events step 50 per "
                         "model x segment value vs that series' pre-drift events; alarm = any column drifted"))
    if theirs is None:
        ctx.record("detect.recall", recall, "share", **common)
        ctx.record("detect.false_alarms", fa, "alerts", **common)
        ctx.record("detect.median_delay_events", delay, "events", **common)
        return
    assert peer is not None
    base = f"evidently {peer['evidently']} sliding windows 200/50"
    p_recall = sum(o.detected and o.segment_named for o in theirs) / len(theirs)
    p_fa = sum(o.false_alarms for o in theirs)
    p_delay = _median_delay(theirs, misses)
    hw, ha = peer.get("healthy_windows", 0), peer.get("healthy_windows_alarming", 0)
    print(f"  peer: {ha} of {hw} windows of never-drifting series alarmed ({ha / hw if hw else 0:.0%})")
    common.update(peer_seconds=round(t_peer, 1), peer_reports=peer.get("reports"), peer_method=peer.get("method"),
                  peer_healthy_windows=hw, peer_healthy_windows_alarming=ha,
                  peer_recall_any_alarm=sum(o.detected and o.segment_named for o in theirs_loose) / len(theirs_loose),
                  peer_median_delay_events_any_alarm=_median_delay(theirs_loose, misses))
    ctx.record("detect.recall", recall, "share", baseline=base, baseline_value=p_recall,
               ratio=recall / p_recall if p_recall else None, **common)
    ctx.record("detect.false_alarms", fa, "alerts", baseline=base, baseline_value=p_fa,
               ratio=fa / p_fa if p_fa else None, **common)
    ctx.record("detect.median_delay_events", delay, "events", baseline=base, baseline_value=p_delay,
               ratio=delay / p_delay if p_delay else None, **common)


def main() -> None:
    """Run this benchmark alone, without a broker; merges its results into ``.bench/results.json``."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m bench.bench_detect", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="four scenarios")
    ap.add_argument("--out", default=str(ROOT / ".bench" / "results.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="inferwatch-detect-") as tmp:
        ctx = BenchContext(kafka_bootstrap="", scratch=Path(tmp), quick=args.quick)
        run(ctx)
    write_results(ctx.results, Path(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
