"""Build the shareable HTML report of one model over a time range from the stored history.

Every number comes from a handful of read-only queries (:data:`QUERIES`) that run through the
same query path as ``inferwatch sql`` — the store's guard, or the sink's ``POST /v1/query`` when the
sink owns the embedded store. The page is one file: inline CSS and SVG, no script, no external
reference, and a Content-Security-Policy that forbids loading anything, so it opens from disk,
offline, in a ticket or a post-mortem. Every value from the store is HTML-escaped (model names and
segment values are users' strings).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from inferwatch.report.svg import (
    TEXT,
    Series,
    bar_chart,
    esc,
    fmt_num,
    fmt_time,
    line_chart,
    series_table,
    shade,
    table,
)
from inferwatch.store.base import QueryResult

RunQuery = Callable[[str, Mapping[str, Any]], QueryResult]
"""Runs one read-only statement with ``{name:Type}`` parameters (store or sink API)."""

MAX_ROWS = 200_000
"""Row bound of each report query (the queries aggregate; a bound reached is said on the page)."""
PSI_THRESHOLD = 0.2
MAX_POINTS = 240
"""Time buckets per chart: enough to see an incident, small enough for a light file."""

_RANGE = """model = {model:String}
  AND ({version:String} = '' OR model_version = {version:String})"""

QUERIES: dict[str, str] = {
    # Traffic, errors and latency over time, from the predictions themselves.
    "traffic": f"""
SELECT toUInt32(toUnixTimestamp(toStartOfInterval(ts, INTERVAL {{bucket_s:UInt32}} SECOND))) AS t,
       count() AS predictions,
       countIf(error IS NOT NULL) / count() AS error_rate,
       quantile(0.5)(latency_ms) AS latency_p50_ms,
       quantile(0.95)(latency_ms) AS latency_p95_ms
FROM predictions
WHERE {_RANGE}
  AND ts >= fromUnixTimestamp64Milli({{from_ms:Int64}}) AND ts < fromUnixTimestamp64Milli({{to_ms:Int64}})
GROUP BY t ORDER BY t""",
    "versions": f"""
SELECT model_version, count() AS predictions, countIf(error IS NOT NULL) / count() AS error_rate,
       quantile(0.5)(latency_ms) AS latency_p50_ms, quantile(0.95)(latency_ms) AS latency_p95_ms,
       toUInt32(toUnixTimestamp(min(ts))) AS first_s, toUInt32(toUnixTimestamp(max(ts))) AS last_s
FROM predictions
WHERE {_RANGE}
  AND ts >= fromUnixTimestamp64Milli({{from_ms:Int64}}) AND ts < fromUnixTimestamp64Milli({{to_ms:Int64}})
GROUP BY model_version ORDER BY first_s""",
    # Whole-version metric series (drift, performance, LLM signals), bucketed.
    "series": f"""
SELECT toUInt32(toUnixTimestamp(toStartOfInterval(window_start, INTERVAL {{bucket_s:UInt32}} SECOND))) AS t,
       k AS metric, max(v) AS max_value, avg(v) AS mean_value, avg(reference[k]) AS reference_value
FROM metrics
ARRAY JOIN mapKeys(metrics) AS k, mapValues(metrics) AS v
WHERE {_RANGE} AND segment_key IS NULL
  AND window_start >= fromUnixTimestamp64Milli({{from_ms:Int64}}) AND window_start < fromUnixTimestamp64Milli({{to_ms:Int64}})
  AND (k LIKE 'input.%.psi' OR k LIKE 'output.%.psi' OR k LIKE 'perf.%' OR k LIKE 'llm.%'
       OR k IN ('embedding.drift', 'lineage.self_share', 'error_rate', 'latency_p95_ms'))
GROUP BY t, metric ORDER BY t, metric""",
    # Per segment value: drift of each feature and performance, over the whole range.
    "segments": f"""
SELECT segment_key, segment_value, k AS metric,
       max(v) AS max_value,
       sum(v * count) / sum(count) AS mean_value,
       sumIf(reference[k] * count, mapContains(reference, k)) / nullIf(sumIf(count, mapContains(reference, k)), 0)
           AS reference_value
FROM metrics
ARRAY JOIN mapKeys(metrics) AS k, mapValues(metrics) AS v
WHERE {_RANGE} AND segment_key IS NOT NULL
  AND window_start >= fromUnixTimestamp64Milli({{from_ms:Int64}}) AND window_start < fromUnixTimestamp64Milli({{to_ms:Int64}})
  AND (k LIKE 'input.%.psi' OR k LIKE 'perf.%' OR k IN ('error_rate', 'latency_p95_ms', 'llm.refusal_rate',
       'llm.logprob_mean'))
GROUP BY segment_key, segment_value, metric""",
    "segment_counts": f"""
SELECT segment_key, segment_value, sum(count) AS predictions, count() AS windows
FROM metrics
WHERE {_RANGE} AND segment_key IS NOT NULL
  AND window_start >= fromUnixTimestamp64Milli({{from_ms:Int64}}) AND window_start < fromUnixTimestamp64Milli({{to_ms:Int64}})
GROUP BY segment_key, segment_value ORDER BY segment_key, predictions DESC""",
    # The processor's findings on the whole version, with the segments it ranked first.
    # Aggregated in the engine: a year of one-minute windows stays one row per (metric, kind).
    "findings": f"""
SELECT JSONExtractString(f, 'metric') AS metric, JSONExtractString(f, 'kind') AS kind, count() AS windows,
       toUInt32(toUnixTimestamp(min(window_start))) AS first_s, toUInt32(toUnixTimestamp(max(window_start))) AS last_s,
       arrayElement(topKIf(1)(top, top != ''), 1) AS top_segment
FROM
(
    SELECT window_start, f,
           if(JSONLength(f, 'top_segments') > 0,
              concat(JSONExtractString(f, 'top_segments', 1, 'key'), '=', JSONExtractString(f, 'top_segments', 1, 'value')),
              '') AS top
    FROM metrics
    ARRAY JOIN JSONExtractArrayRaw(findings_json) AS f
    WHERE {_RANGE} AND segment_key IS NULL AND notEmpty(finding_metrics)
      AND window_start >= fromUnixTimestamp64Milli({{from_ms:Int64}}) AND window_start < fromUnixTimestamp64Milli({{to_ms:Int64}})
)
GROUP BY metric, kind ORDER BY windows DESC, metric""",
    # Alerts: one row per alert instance (fingerprint), from its notifications in the range.
    "alerts": """
SELECT fp AS fingerprint, any(rule) AS rule, any(severity) AS severity, any(seg) AS segment,
       any(mv) AS model_version,
       toUInt32(toUnixTimestamp(minIf(ts, state = 'firing'))) AS first_firing_s,
       toUInt32(toUnixTimestamp(maxIf(ts, state = 'resolved'))) AS resolved_s,
       argMax(state, ts) AS last_state, max(val) AS max_value, uniqExact(idempotency_key) AS notifications,
       countIf(delivery_outcome = 'failed') AS failed_deliveries,
       any(JSONExtractRaw(raw, 'labels')) AS labels_json,
       argMax(JSONExtractString(JSONExtractRaw(raw, 'annotations'), 'summary'), ts) AS summary
FROM alerts
ARRAY JOIN alert_fingerprint AS fp, alert_rule AS rule, alert_status AS state, alert_severity AS severity,
           alert_model AS m, alert_model_version AS mv, alert_segment AS seg, alert_value AS val,
           JSONExtractArrayRaw(alerts_json) AS raw
WHERE m = {model:String} AND ({version:String} = '' OR mv = {version:String})
  AND ts >= fromUnixTimestamp64Milli({from_ms:Int64}) AND ts < fromUnixTimestamp64Milli({to_ms:Int64})
GROUP BY fp ORDER BY first_firing_s, rule""",
}
"""The report's queries by section; each is read-only and passes the store's query guard."""


@dataclass
class ReportData:
    """What the queries returned, by name, and how long they took."""

    results: dict[str, QueryResult] = field(default_factory=dict)
    query_s: float = 0.0


def bucket_for(start: dt.datetime, end: dt.datetime) -> int:
    """Seconds per chart bucket: a round step giving at most :data:`MAX_POINTS` points (at least 60 s)."""
    span = (end - start).total_seconds()
    for step in (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400):
        if span / step <= MAX_POINTS:
            return step
    return 86400 * max(1, math.ceil(span / 86400 / MAX_POINTS))


def params_for(model: str, version: str | None, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """The queries' parameters."""
    return {"model": model, "version": version or "", "from_ms": int(start.timestamp() * 1000),
            "to_ms": int(end.timestamp() * 1000), "bucket_s": bucket_for(start, end)}


def fetch(run: RunQuery, model: str, version: str | None, start: dt.datetime, end: dt.datetime) -> ReportData:
    """Run every query of :data:`QUERIES`."""
    p = params_for(model, version, start, end)
    data = ReportData()
    t0 = time.perf_counter()
    for name, sql in QUERIES.items():
        data.results[name] = run(sql, p)
    data.query_s = time.perf_counter() - t0
    return data


# ---- rendering ----------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1000px;padding:16px;color:#111}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ccc}
h3{font-size:15px;margin:18px 0 6px} .meta{color:#444} .note{color:#444;font-size:13px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px} caption{text-align:left;font-weight:600;padding:4px 0}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right} th[scope=row],thead th{text-align:left}
thead th{background:#f2f2f2} .kpis{display:flex;flex-wrap:wrap;gap:12px;margin:8px 0}
.kpi{border:1px solid #ccc;border-radius:6px;padding:8px 12px;min-width:130px}
.kpi b{display:block;font-size:20px} details{margin:4px 0 14px} summary{cursor:pointer;color:#0b4f8a}
svg.chart{max-width:100%;height:auto;display:block;margin:6px 0} td.hot{font-weight:700}
.flag{font-weight:700} @media print{details{display:none}}
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _rows(res: QueryResult) -> list[dict[str, Any]]:
    return res.as_dicts()


def _seg_label(key: Any, value: Any) -> str:
    return f"{key}={value}"


def _feature(metric: str) -> str:
    # input.<feature>.psi -> <feature>; output.score.psi -> output score
    if metric.startswith("input.") and metric.endswith(".psi"):
        return metric[len("input."):-len(".psi")]
    if metric.startswith("output.") and metric.endswith(".psi"):
        return "output " + metric[len("output."):-len(".psi")]
    return metric


def _series(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str], field_: str = "max_value",
            names: Mapping[str, str] | None = None) -> list[Series]:
    by: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in rows:
        if r["metric"] in metrics and r[field_] is not None:
            by[r["metric"]].append((float(r["t"]), float(r[field_])))
    return [Series((names or {}).get(m, m), by[m]) for m in metrics if by.get(m)]


def _describe(series: Sequence[Series], what: str) -> str:
    """A sentence per chart for screen readers: the peak of each series and when."""
    parts = []
    for s in series[:8]:
        if not s.points:
            continue
        t, v = max(s.points, key=lambda p: p[1])
        parts.append(f"{s.name} peaks at {fmt_num(v)} at {fmt_time(t)}")
    return f"{what}. " + "; ".join(parts) + "." if parts else f"{what}: no data."


def _section_summary(d: ReportData, truncated: list[str]) -> str:
    traffic = _rows(d.results["traffic"])
    alerts = _rows(d.results["alerts"])
    n = sum(int(r["predictions"]) for r in traffic)
    errors = sum(float(r["error_rate"]) * int(r["predictions"]) for r in traffic)
    firing = [a for a in alerts if a["first_firing_s"]]
    still = [a for a in alerts if a["last_state"] == "firing"]
    kpis = [("predictions", fmt_num(n)), ("error rate", f"{errors / n:.2%}" if n else "–"),
            ("alerts that fired", fmt_num(len(firing))), ("still firing at the end", fmt_num(len(still)))]
    out = ['<section aria-labelledby="s-summary"><h2 id="s-summary">Summary</h2><div class="kpis">']
    out += [f'<div class="kpi"><b>{esc(v)}</b>{esc(k)}</div>' for k, v in kpis]
    out.append("</div>")
    by_rule: Counter[str] = Counter(str(a["rule"]) for a in firing)
    if by_rule:
        out.append(table(["rule", "alerts fired"], by_rule.most_common(), caption="Alerts by rule"))
    # Findings: what the processor flagged on the whole version, and the segment it named first.
    findings = _rows(d.results["findings"])
    if findings:
        rows = [[f["metric"], f["kind"], f["windows"], fmt_time(f["first_s"]), fmt_time(f["last_s"]),
                 f["top_segment"] or "–"] for f in findings]
        out.append(table(["metric", "kind", "windows flagged", "first", "last", "segment named first (most often)"],
                         rows, caption="Findings of the processor (whole version)"))
    if truncated:
        out.append(f'<p class="note">Row bound reached in: {esc(", ".join(truncated))}; the figures there are partial.</p>')
    out.append("</section>")
    return "".join(out)


_SHOWN_LABELS = {"model", "model_version", "segment", "rule", "severity", "alertname"}


def _extra_labels(labels_json: Any) -> str:
    """The labels that tell alerts of one rule apart (``feature=image_width``), beyond the columns shown."""
    try:
        labels = orjson.loads(labels_json) if labels_json else {}
    except orjson.JSONDecodeError:
        return "–"
    if not isinstance(labels, dict):
        return "–"
    extra = [f"{k}={v}" for k, v in sorted(labels.items()) if k not in _SHOWN_LABELS]
    return ", ".join(extra) or "–"


def _section_incidents(d: ReportData) -> str:
    alerts = _rows(d.results["alerts"])
    out = ['<section aria-labelledby="s-incidents"><h2 id="s-incidents">Alerts and incidents</h2>']
    if not alerts:
        out.append("<p>No alert notifications for this model in the range.</p></section>")
        return "".join(out)
    rows = []
    for a in alerts:
        dur = (a["resolved_s"] - a["first_firing_s"]) if a["resolved_s"] and a["first_firing_s"] else None
        rows.append([a["rule"], _extra_labels(a["labels_json"]), a["severity"], a["segment"] or "whole version",
                     a["model_version"] or "–", fmt_time(a["first_firing_s"] or None), fmt_time(a["resolved_s"] or None),
                     f"{dur / 60:.0f} min" if dur is not None else "–", a["last_state"], a["max_value"],
                     a["notifications"], a["failed_deliveries"], a["summary"] or "–"])
    out.append(table(["rule", "labels", "severity", "segment", "version", "first firing", "resolved", "duration",
                      "last state", "max value", "notifications", "failed deliveries", "summary"], rows,
                     caption="Each alert (one fingerprint) in the range"))
    out.append("</section>")
    return "".join(out)


def _section_traffic(d: ReportData) -> str:
    traffic = _rows(d.results["traffic"])
    versions = _rows(d.results["versions"])
    vol = [Series("predictions per bucket", [(r["t"], float(r["predictions"])) for r in traffic])]
    lat = [Series("latency p50 (ms)", [(r["t"], float(r["latency_p50_ms"])) for r in traffic
                                       if r["latency_p50_ms"] is not None]),
           Series("latency p95 (ms)", [(r["t"], float(r["latency_p95_ms"])) for r in traffic
                                       if r["latency_p95_ms"] is not None])]
    err = [Series("error rate", [(r["t"], float(r["error_rate"])) for r in traffic])]
    out = ['<section aria-labelledby="s-traffic"><h2 id="s-traffic">Traffic, errors and latency</h2>']
    for title, s, unit in (("Predictions over time", vol, "predictions"), ("Error rate over time", err, "ratio"),
                           ("Latency over time", lat, "ms")):
        out.append(f"<h3>{esc(title)}</h3>" + line_chart(title, _describe(s, title), s, y_label=unit)
                   + series_table(s, title))
    if versions:
        out.append(table(["version", "predictions", "error rate", "latency p50 (ms)", "latency p95 (ms)", "first", "last"],
                         [[v["model_version"], v["predictions"], v["error_rate"], v["latency_p50_ms"],
                           v["latency_p95_ms"], fmt_time(v["first_s"]), fmt_time(v["last_s"])] for v in versions],
                         caption="By version"))
    out.append("</section>")
    return "".join(out)


def _section_drift(d: ReportData) -> str:
    series_rows = _rows(d.results["series"])
    seg_rows = _rows(d.results["segments"])
    psi_metrics = sorted({r["metric"] for r in series_rows if str(r["metric"]).endswith(".psi")},
                         key=lambda m: (not m.startswith("input."), m))
    out = ['<section aria-labelledby="s-drift"><h2 id="s-drift">Drift per feature and segment</h2>',
           f'<p class="note">PSI against the reference; {PSI_THRESHOLD} and above is drift (dashed line).</p>']
    peak: dict[str, float] = defaultdict(float)
    over: Counter[str] = Counter()
    for r in series_rows:
        if r["metric"] in psi_metrics and r["max_value"] is not None:
            peak[r["metric"]] = max(peak[r["metric"]], float(r["max_value"]))
            over[r["metric"]] += float(r["max_value"]) >= PSI_THRESHOLD
    ranked = sorted(psi_metrics, key=lambda m: -peak[m])
    shown = ranked[:7]  # the palette's first seven: its yellow is too faint on white for a line
    s = _series(series_rows, shown, names={m: _feature(m) for m in shown})
    title = "Feature drift (PSI) over time, whole version"
    out.append(f"<h3>{esc(title)}</h3>" + line_chart(title, _describe(s, title), s, y_label="PSI",
                                                      threshold=PSI_THRESHOLD) + series_table(s, title))
    if ranked:
        out.append(table(["feature", "max PSI", "buckets at or above threshold"],
                         [[_feature(m), peak[m], over[m]] for m in ranked], caption="Drift per feature (whole version)"))
    emb = _series(series_rows, ["embedding.drift", "lineage.self_share"])
    if emb:
        title = "Embedding drift and feedback-loop share"
        out.append(f"<h3>{esc(title)}</h3>" + line_chart(title, _describe(emb, title), emb) + series_table(emb, title))
    # Heat table: segment value x feature, max PSI over the range.
    cells: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    feats: set[str] = set()
    for r in seg_rows:
        m = str(r["metric"])
        if m.startswith("input.") and m.endswith(".psi") and r["max_value"] is not None:
            cells[(str(r["segment_key"]), str(r["segment_value"]))][_feature(m)] = float(r["max_value"])
            feats.add(_feature(m))
    if cells:
        cols = sorted(feats, key=lambda f: -max(c.get(f, 0.0) for c in cells.values()))[:10]
        ordered = sorted(cells.items(), key=lambda kv: -max(kv[1].values(), default=0.0))
        head = "".join(f'<th scope="col">{esc(f)}</th>' for f in cols)
        body = []
        for (k, v), vals in ordered:
            tds = []
            for f in cols:
                x = vals.get(f)
                hot = x is not None and x >= PSI_THRESHOLD
                mark = " ▲" if hot else ""
                tds.append(f'<td style="background:{shade(x, PSI_THRESHOLD)};color:{TEXT}"'
                           f'{" class=hot" if hot else ""}>{esc(fmt_num(x))}{mark}</td>')
            body.append(f'<tr><th scope="row">{esc(_seg_label(k, v))}</th>{"".join(tds)}</tr>')
        out.append('<table><caption>Max PSI per segment value and feature (▲ at or above '
                   f'{PSI_THRESHOLD}; darker is larger)</caption><thead><tr><th scope="col">segment</th>{head}</tr>'
                   f'</thead><tbody>{"".join(body)}</tbody></table>')
    out.append("</section>")
    return "".join(out)


_PERF = ("perf.accuracy", "perf.f1", "perf.roc_auc", "perf.mae", "perf.rmse", "error_rate", "latency_p95_ms")


def _section_performance(d: ReportData) -> str:
    seg_rows = _rows(d.results["segments"])
    counts = {(str(r["segment_key"]), str(r["segment_value"])): int(r["predictions"])
              for r in _rows(d.results["segment_counts"])}
    series_rows = _rows(d.results["series"])
    vals: dict[tuple[str, str], dict[str, tuple[float | None, float | None]]] = defaultdict(dict)
    for r in seg_rows:
        if r["metric"] in _PERF:
            vals[(str(r["segment_key"]), str(r["segment_value"]))][r["metric"]] = (r["mean_value"], r["reference_value"])
    present = [m for m in _PERF if any(m in v for v in vals.values())]
    out = ['<section aria-labelledby="s-perf"><h2 id="s-perf">Performance by segment</h2>']
    perf_ts = _series(series_rows, [m for m in _PERF if m.startswith("perf.")], field_="mean_value")
    if perf_ts:
        title = "Performance over time, whole version"
        out.append(f"<h3>{esc(title)}</h3>" + line_chart(title, _describe(perf_ts, title), perf_ts)
                   + series_table(perf_ts, title))
    head = present[0] if present else None
    if head and head.startswith("perf."):
        bars = sorted(((_seg_label(*k), float(cur), ref) for k, v in vals.items() if head in v
                       for cur, ref in [v[head]] if cur is not None), key=lambda b: b[1])
        title = f"{head} by segment value (black tick: reference)"
        desc = f"{head} per segment value over the range, lowest first: " + "; ".join(
            f"{b[0]} {fmt_num(b[1])} (reference {fmt_num(b[2])})" for b in bars[:10]) + "."
        out.append(f"<h3>{esc(title)}</h3>" + bar_chart(title, desc, bars, x_label=head))
    rows = []
    for key in sorted(set(counts) | set(vals), key=lambda k: (k[0], -counts.get(k, 0))):
        row: list[Any] = [_seg_label(*key), counts.get(key)]
        for m in present:
            cur, ref = vals[key].get(m, (None, None))
            row += [cur, ref]
        rows.append(row)
    headers = ["segment", "predictions"] + [h for m in present for h in (m, f"{m} (reference)")]
    out.append(table(headers, rows, caption="Per segment value over the range (count-weighted means of the windows)"))
    out.append("</section>")
    return "".join(out)


def _section_llm(d: ReportData) -> str:
    series_rows = _rows(d.results["series"])
    metrics = sorted({str(r["metric"]) for r in series_rows if str(r["metric"]).startswith("llm.")})
    out = ['<section aria-labelledby="s-llm"><h2 id="s-llm">LLM signals</h2>']
    if not metrics:
        out.append("<p>This model logged no LLM signals in the range.</p></section>")
        return "".join(out)
    rates = [m for m in metrics if m.endswith("_rate")]
    other = [m for m in metrics if m not in rates]
    for title, ms in (("LLM rates over time", rates), ("LLM log-probabilities and lengths over time", other)):
        s = _series(series_rows, ms, field_="mean_value")
        if s:
            out.append(f"<h3>{esc(title)}</h3>" + line_chart(title, _describe(s, title), s) + series_table(s, title))
    summary = []
    for m in metrics:
        xs = [float(r["mean_value"]) for r in series_rows if r["metric"] == m and r["mean_value"] is not None]
        refs = [float(r["reference_value"]) for r in series_rows if r["metric"] == m and r["reference_value"] is not None]
        summary.append([m, sum(xs) / len(xs) if xs else None, min(xs, default=None), max(xs, default=None),
                        sum(refs) / len(refs) if refs else None])
    out.append(table(["signal", "mean", "min", "max", "reference"], summary, caption="LLM signals over the range"))
    out.append("</section>")
    return "".join(out)


def render(d: ReportData, model: str, version: str | None, start: dt.datetime, end: dt.datetime,
           generated: dt.datetime | None = None) -> str:
    """The HTML page of the fetched data."""
    generated = generated or dt.datetime.now(dt.UTC)
    truncated = [name for name, r in d.results.items() if r.truncated]
    versions = [str(v["model_version"]) for v in _rows(d.results["versions"])]
    title = f"Inferwatch report: {model}" + (f" {version}" if version else "")
    nav = "".join(f'<li><a href="#{i}">{esc(t)}</a></li>' for i, t in (
        ("s-summary", "Summary"), ("s-incidents", "Alerts and incidents"), ("s-traffic", "Traffic, errors and latency"),
        ("s-drift", "Drift per feature and segment"), ("s-perf", "Performance by segment"), ("s-llm", "LLM signals")))
    head = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{_CSS}</style></head><body><main>")
    meta = (f'<h1>{esc(title)}</h1><p class="meta">From {esc(fmt_time(start.timestamp()))} to '
            f'{esc(fmt_time(end.timestamp()))} · versions: {esc(", ".join(versions) or "none in range")} · '
            f'generated {esc(fmt_time(generated.timestamp()))} from the stored history '
            f'({esc(f"{d.query_s:.2f}")} s of queries)</p><nav aria-label="Sections"><ul>{nav}</ul></nav>')
    body = [_section_summary(d, truncated), _section_incidents(d), _section_traffic(d), _section_drift(d),
            _section_performance(d), _section_llm(d)]
    return head + meta + "".join(body) + "</main></body></html>"


def build_report(run: RunQuery, model: str, version: str | None, start: dt.datetime, end: dt.datetime) -> str:
    """Query the history and render the report (one self-contained HTML page)."""
    return render(fetch(run, model, version, start, end), model, version, start, end)
