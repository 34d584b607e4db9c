"""The console's data: one function per page, each a handful of queries on the aggregated tables.

Where each number comes from (all bounded by the page's time range):

* traffic, errors and latency: ``predictions_1m`` (the per-minute rollup the store fills on every
  insert), never the raw predictions;
* label coverage, the metric series, the drift heat map, embedding and LLM signals, the segments:
  ``metrics`` (the processor's window snapshots; its sort key starts with the model);
* alerts: the alerter's own state (what fires *now*, when this API can read it) merged with the
  ``alerts`` table (every notification the alerter recorded, for history and the notification log);
* the incident's before/after histograms: ``predictions`` of the one model, one segment value and
  one feature, over the hour around the incident (the only raw read; bounded by time and the
  table's sort key);
* accuracy by segment: the saved investigation query ``accuracy_by_segment``, run by the page
  through ``POST /v1/console/sql`` (its SQL is shown and can be edited there).

Every value is a user's string somewhere (model names, segment values, labels): this module only
returns data; the templates escape it, and the page's script only ever sets ``textContent``.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from inferwatch.store.base import QueryResult, Store

MAX_POINTS = 120
"""Time buckets per chart: a point every window for a few hours, coarser beyond."""
PSI_THRESHOLD = 0.2
"""PSI at or above this is drift (the default rules' threshold)."""
MAX_SEGMENT_LINES = 6
"""Segment values drawn beside the whole version (the largest by traffic)."""
MAX_HEAT_FEATURES = 20
HIST_BINS = 20
HIST_SAMPLE = 5_000
"""Predictions per period (before, after) a histogram is drawn from, the nearest to the alert."""
MAX_HISTOGRAMS = 6
"""Drifted inputs shown with before/after histograms (the most drifted first)."""
INCIDENT_WINDOW_S = 3600
"""The incident page compares the inputs of this long before the alert fired with this long after."""
QUERY_TIMEOUT_S = 10.0
SIGNAL_METRICS = ("embedding.drift", "embedding.drift_threshold", "lineage.self_share")

_VERSION = "({version:String} = '' OR model_version = {version:String})"
_VERSION_OR = "({version:String} = '' OR model_version = {version:String})"
_WINDOWS = ("window_start >= fromUnixTimestamp64Milli({from_ms:Int64}) "
            "AND window_start < fromUnixTimestamp64Milli({to_ms:Int64})")

_PERIODS = """FROM
(
    (
        SELECT 0 AS after, {column} FROM predictions
        WHERE model = {{model:String}} AND ({{version:String}} = '' OR model_version = {{version:String}})
          AND ts >= fromUnixTimestamp64Milli({{from_ms:Int64}}) AND ts < fromUnixTimestamp64Milli({{split_ms:Int64}})
          AND segment[{{segment_key:String}}] = {{segment_value:String}}
        LIMIT {{sample:UInt32}}
    )
    UNION ALL
    (
        SELECT 1 AS after, {column} FROM predictions
        WHERE model = {{model:String}} AND ({{version:String}} = '' OR model_version = {{version:String}})
          AND ts >= fromUnixTimestamp64Milli({{split_ms:Int64}}) AND ts < fromUnixTimestamp64Milli({{to_ms:Int64}})
          AND segment[{{segment_key:String}}] = {{segment_value:String}}
        LIMIT {{sample:UInt32}}
    )
)
"""
"""The incident's before and after periods of one segment value, at most ``{sample}`` predictions each,
reading only ``column`` (one input map): the source of the histogram and category queries."""


SQL: dict[str, str] = {
    "latest": "SELECT toUnixTimestamp64Milli(max(window_end)) AS end_ms, count() AS n FROM metrics",
    # Traffic, errors, latency per model and version, and a sparkline of traffic, from the rollup.
    "fleet_traffic": """
SELECT model, model_version, toUInt32(toUnixTimestamp(toStartOfInterval(minute, INTERVAL {bucket_s:UInt32} SECOND))) AS t,
       countMerge(requests) AS predictions, countIfMerge(errors) AS errors,
       quantilesTDigestMerge(0.5, 0.9, 0.99)(latency_ms_q) AS latency_q
FROM predictions_1m
WHERE minute >= toDateTime(intDiv({from_ms:Int64}, 1000)) AND minute < toDateTime(intDiv({to_ms:Int64}, 1000))
GROUP BY model, model_version, t ORDER BY model, model_version, t""",
    "fleet_latency": """
SELECT model, model_version, quantilesTDigestMerge(0.5, 0.9, 0.99)(latency_ms_q) AS latency_q
FROM predictions_1m
WHERE minute >= toDateTime(intDiv({from_ms:Int64}, 1000)) AND minute < toDateTime(intDiv({to_ms:Int64}, 1000))
GROUP BY model, model_version""",
    "fleet_windows": f"""
SELECT model, model_version, sum(count) AS windowed,
       sumIf(metrics['perf.label_coverage'] * count, mapContains(metrics, 'perf.label_coverage'))
         / nullIf(sumIf(count, mapContains(metrics, 'perf.label_coverage')), 0) AS label_coverage,
       toUnixTimestamp64Milli(max(window_end)) AS last_window_ms
FROM metrics
WHERE segment_key IS NULL AND {_WINDOWS}
GROUP BY model, model_version""",
    # One row per alert (fingerprint) notified in the range: its latest state and text.
    "alerts": """
SELECT x_fp AS fingerprint, any(x_rule) AS rule, any(x_sev) AS severity, any(x_m) AS model,
       any(x_mv) AS model_version, any(x_seg) AS segment,
       toUnixTimestamp64Milli(minIf(ts, x_state = 'firing')) AS since_ms,
       toUnixTimestamp64Milli(max(ts)) AS last_ms, argMax(x_state, ts) AS state, argMax(x_val, ts) AS value,
       argMax(x_raw, ts) AS alert_json
FROM alerts
ARRAY JOIN alert_fingerprint AS x_fp, alert_rule AS x_rule, alert_status AS x_state, alert_severity AS x_sev,
           alert_model AS x_m, alert_model_version AS x_mv, alert_segment AS x_seg, alert_value AS x_val,
           JSONExtractArrayRaw(alerts_json) AS x_raw
WHERE ts >= fromUnixTimestamp64Milli({from_ms:Int64}) AND ts < fromUnixTimestamp64Milli({to_ms:Int64})
  AND ({model:String} = '' OR x_m = {model:String})
GROUP BY x_fp ORDER BY state = 'firing' DESC, since_ms DESC LIMIT 500""",
    "metric_names": f"""
SELECT k AS metric, count() AS windows
FROM metrics ARRAY JOIN mapKeys(metrics) AS k
WHERE model = {{model:String}} AND {_VERSION} AND segment_key IS NULL AND {_WINDOWS}
GROUP BY k ORDER BY k""",
    "versions": f"""
SELECT model_version, sum(count) AS predictions, toUnixTimestamp64Milli(max(window_end)) AS last_window_ms
FROM metrics WHERE model = {{model:String}} AND segment_key IS NULL AND {_WINDOWS}
GROUP BY model_version ORDER BY last_window_ms DESC""",
    "segments": f"""
SELECT segment_key, segment_value, sum(count) AS predictions
FROM metrics
WHERE model = {{model:String}} AND {_VERSION} AND segment_key IS NOT NULL AND {_WINDOWS}
GROUP BY segment_key, segment_value ORDER BY segment_key, predictions DESC LIMIT 1000""",
    # The chosen metric per bucket: the whole version and the chosen key's values; the reference band
    # is the lowest and highest reference value of the bucket's windows.
    "series": f"""
SELECT toUInt32(toUnixTimestamp(toStartOfInterval(window_start, INTERVAL {{bucket_s:UInt32}} SECOND))) AS t,
       if(segment_key IS NULL, '', segment_value) AS seg,
       sumIf(metrics[{{metric:String}}] * count, mapContains(metrics, {{metric:String}}))
         / nullIf(sumIf(count, mapContains(metrics, {{metric:String}})), 0) AS value,
       minIfOrNull(reference[{{metric:String}}], mapContains(reference, {{metric:String}})) AS ref_lo,
       maxIfOrNull(reference[{{metric:String}}], mapContains(reference, {{metric:String}})) AS ref_hi
FROM metrics
WHERE model = {{model:String}} AND {_VERSION} AND {_WINDOWS}
  AND (segment_key IS NULL OR (segment_key = {{segment_key:String}} AND has({{segment_values:Array(String)}}, segment_value)))
GROUP BY t, seg ORDER BY t, seg""",
    # Features x buckets, max PSI, for the whole version or one segment value.
    "heatmap": f"""
SELECT toUInt32(toUnixTimestamp(toStartOfInterval(window_start, INTERVAL {{bucket_s:UInt32}} SECOND))) AS t,
       k AS metric, max(v) AS psi
FROM metrics ARRAY JOIN mapKeys(metrics) AS k, mapValues(metrics) AS v
WHERE model = {{model:String}} AND {_VERSION} AND {_WINDOWS}
  AND (k LIKE 'input.%.psi' OR k LIKE 'output.%.psi')
  AND if({{segment_key:String}} = '', segment_key IS NULL,
         segment_key = {{segment_key:String}} AND segment_value = {{segment_value:String}})
GROUP BY t, metric ORDER BY t, metric""",
    "signals": f"""
SELECT toUInt32(toUnixTimestamp(toStartOfInterval(window_start, INTERVAL {{bucket_s:UInt32}} SECOND))) AS t,
       k AS metric, sum(v * count) / nullIf(sum(count), 0) AS value
FROM metrics ARRAY JOIN mapKeys(metrics) AS k, mapValues(metrics) AS v
WHERE model = {{model:String}} AND {_VERSION} AND {_WINDOWS} AND segment_key IS NULL
  AND (k IN ('embedding.drift', 'embedding.drift_threshold', 'lineage.self_share') OR k LIKE 'llm.%')
GROUP BY t, metric ORDER BY t, metric""",
    # The incident: every notification of one alert, with its delivery.
    "notifications": """
SELECT toUnixTimestamp64Milli(ts) AS ts_ms, receiver, status AS group_status, state, idempotency_key,
       delivery_attempt, delivery_outcome, delivery_http_status, delivery_error, raw AS alert_json,
       rule, severity, m AS model, mv AS model_version, seg AS segment, val AS value
FROM alerts
ARRAY JOIN alert_fingerprint AS fp, alert_rule AS rule, alert_status AS state, alert_severity AS severity,
           alert_model AS m, alert_model_version AS mv, alert_segment AS seg, alert_value AS val,
           JSONExtractArrayRaw(alerts_json) AS raw
WHERE has(alert_fingerprint, {fingerprint:String}) AND fp = {fingerprint:String}
ORDER BY ts, delivery_attempt LIMIT 500""",
    # The processor's ranking of segment values behind the alert's metric (whole-version findings).
    "ranked": f"""
SELECT JSONExtractString(s, 'key') AS segment_key, JSONExtractString(s, 'value') AS segment_value,
       max(JSONExtractFloat(s, 'contribution')) AS contribution, count() AS windows,
       max(JSONExtractFloat(s, 'metric_value')) AS metric_value
FROM
(
    SELECT arrayJoin(JSONExtractArrayRaw(f, 'top_segments')) AS s
    FROM metrics ARRAY JOIN JSONExtractArrayRaw(findings_json) AS f
    WHERE model = {{model:String}} AND {_VERSION} AND {_WINDOWS} AND segment_key IS NULL
      AND has(finding_metrics, {{metric:String}}) AND JSONExtractString(f, 'metric') = {{metric:String}}
)
GROUP BY segment_key, segment_value ORDER BY windows DESC, contribution DESC LIMIT 20""",
    # The alert's metric per segment value since it fired, against each value's reference.
    "by_segment": f"""
SELECT segment_key, segment_value, sum(count) AS predictions,
       sumIf(metrics[{{metric:String}}] * count, mapContains(metrics, {{metric:String}}))
         / nullIf(sumIf(count, mapContains(metrics, {{metric:String}})), 0) AS value,
       avgIfOrNull(reference[{{metric:String}}], mapContains(reference, {{metric:String}})) AS reference
FROM metrics
WHERE model = {{model:String}} AND {_VERSION} AND {_WINDOWS} AND segment_key IS NOT NULL
GROUP BY segment_key, segment_value ORDER BY segment_key, predictions DESC LIMIT 200""",
    # Input drift inside the named segment value since the alert fired.
    "segment_drift": f"""
SELECT k AS metric, max(v) AS psi, argMax(reference[k], v) AS reference
FROM metrics ARRAY JOIN mapKeys(metrics) AS k, mapValues(metrics) AS v
WHERE model = {{model:String}} AND {_VERSION} AND {_WINDOWS}
  AND segment_key = {{segment_key:String}} AND segment_value = {{segment_value:String}} AND k LIKE 'input.%.psi'
GROUP BY k ORDER BY psi DESC LIMIT 20""",
    # Before/after histograms of the drifted inputs in one segment value: the only raw read. Each
    # period reads at most {sample} predictions of the segment value (a LIMIT without a sort stops the
    # read early, so a big store costs what a small one does; a histogram needs no more), and only the
    # map it needs (reading the categorical map beside the numeric one tripled the time). Numeric
    # inputs come back as values and are binned here, over both periods' range (in the engine, a
    # window-function query took 0.6-1 s on 300 k predictions, a range query then a bins query twice
    # what one read costs).
    "histogram_values": """
SELECT f AS feature, after, groupArray(inputs_num[f]) AS xs
""" + _PERIODS.format(column="inputs_num") + """ARRAY JOIN {features:Array(String)} AS f
WHERE mapContains(inputs_num, f)
GROUP BY feature, after""",
    # The same for categorical inputs: counts per value.
    "categories": """
SELECT f AS feature, after, inputs_cat[f] AS category, count() AS n
""" + _PERIODS.format(column="inputs_cat") + """ARRAY JOIN {features:Array(String)} AS f
WHERE mapContains(inputs_cat, f)
GROUP BY feature, after, category ORDER BY feature, n DESC LIMIT 30 BY feature, after""",
}
"""Every query of the console, by name; each passes the store's read-only guard."""

# The raw reads name the version outright when they have one: ``{version} = '' OR model_version = …``
# hides the sort key's second column from the engine, which then reads the whole model instead of
# one version's time range and cannot stop early (measured: 0.6-1 s instead of tens of ms).
for _name in ("histogram_values", "categories"):
    SQL[f"{_name}_any_version"] = SQL[_name].replace(_VERSION_OR, "1 = 1")
    SQL[_name] = SQL[_name].replace(_VERSION_OR, "model_version = {version:String}")


class NotFound(LookupError):
    """The page's subject (an incident) is not known."""


@dataclass(frozen=True)
class TimeRange:
    """``[from_ms, to_ms)`` and the chart bucket."""

    from_ms: int
    to_ms: int

    @property
    def bucket_s(self) -> int:
        """Seconds per chart point: a round step giving at most :data:`MAX_POINTS` points."""
        span = (self.to_ms - self.from_ms) / 1000
        for step in (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400):
            if span / step <= MAX_POINTS:
                return step
        return 86400 * max(1, math.ceil(span / 86400 / MAX_POINTS))

    def params(self) -> dict[str, Any]:
        """The queries' time parameters."""
        return {"from_ms": self.from_ms, "to_ms": self.to_ms, "bucket_s": self.bucket_s}

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"from_ms": self.from_ms, "to_ms": self.to_ms, "bucket_s": self.bucket_s}


def _feature(metric: str) -> str:
    if metric.startswith("input.") and metric.endswith(".psi"):
        return metric[len("input."):-len(".psi")]
    if metric.startswith("output.") and metric.endswith(".psi"):
        return "output " + metric[len("output."):-len(".psi")]
    return metric


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _alert_json(raw: Any) -> dict[str, Any]:
    try:
        out = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        return {}
    return out if isinstance(out, dict) else {}


def _split_segment(seg: str | None) -> tuple[str, str] | None:
    if not seg or seg == "whole" or "=" not in seg:
        return None
    k, _, v = seg.partition("=")
    return k, v


class ConsoleData:
    """The console pages' data over a store and (when this API reads it) the alerter's state."""

    def __init__(self, store: Store, alert_store: Any = None) -> None:
        self.store = store
        self.alert_store = alert_store

    # -- plumbing ---------------------------------------------------------------------------------

    def q(self, name: str, params: Mapping[str, Any], max_rows: int = 10_000) -> QueryResult:
        """Run the console query ``name``."""
        return self.store.query(SQL[name], dict(params), readonly=True, max_rows=max_rows, timeout_s=QUERY_TIMEOUT_S)

    def time_range(self, range_s: int, end_ms: int | None) -> TimeRange:
        """The page's range: ``range_s`` before ``end_ms`` (default: the latest window in the store,
        so a history loaded for another day opens where its data is; now when the store is empty)."""
        if end_ms is None:
            res = self.q("latest", {})
            n = int(res.rows[0][1]) if res.rows else 0
            end_ms = int(res.rows[0][0]) + 1 if n else int(time.time() * 1000)
        return TimeRange(max(0, end_ms - range_s * 1000), end_ms)

    def _live_alerts(self) -> dict[str, Any]:
        """The alerter's alert records by fingerprint ({} when this API cannot read its state)."""
        if self.alert_store is None:
            return {}
        try:
            return {r.fingerprint: r for r in self.alert_store.list_alerts(("pending", "firing", "resolved"))}
        except Exception:  # no state file yet, or it is being rewritten: the history still answers
            return {}

    def _silences(self) -> list[Any]:
        if self.alert_store is None:
            return []
        try:
            return list(self.alert_store.silences())
        except Exception:
            return []

    def alerts(self, tr: TimeRange, model: str = "") -> list[dict[str, Any]]:
        """Every alert of the range, newest first: the history's rows, with the alerter's live state
        where it has the alert (the alerter knows what fires now; the history what was notified)."""
        out: dict[str, dict[str, Any]] = {}
        for r in self.q("alerts", {**tr.params(), "model": model}).as_dicts():
            a = _alert_json(r["alert_json"])
            out[r["fingerprint"]] = {
                "fingerprint": r["fingerprint"], "rule": r["rule"], "severity": r["severity"], "model": r["model"],
                "model_version": r["model_version"], "segment": r["segment"], "state": r["state"],
                "since_ms": int(r["since_ms"]) if r["since_ms"] and r["since_ms"] > 0 else None,
                "last_ms": int(r["last_ms"]), "value": _num(r["value"]),
                "labels": a.get("labels") or {}, "summary": (a.get("annotations") or {}).get("summary", ""),
            }
        silences = self._silences()
        now = int(time.time() * 1000)
        for fp, rec in self._live_alerts().items():
            if model and rec.model != model:
                continue
            cur = out.get(fp)
            if cur is None and rec.state == "resolved":
                continue  # resolved and not notified in this range: not the page's business
            out[fp] = {
                **(cur or {}), "fingerprint": fp, "rule": rec.rule, "severity": rec.severity, "model": rec.model,
                "model_version": rec.model_version, "segment": rec.segment, "state": rec.state,
                "since_ms": rec.starts_at_ms or rec.active_since_ms or (cur or {}).get("since_ms"),
                "last_ms": max(rec.last_eval_ms or 0, (cur or {}).get("last_ms") or 0), "value": _num(rec.value),
                "labels": dict(rec.labels), "summary": rec.annotations.get("summary", (cur or {}).get("summary", "")),
            }
        for a in out.values():
            labels = a.get("labels") or {}
            a["silenced_by"] = [s.id for s in silences if labels and s.mutes(labels, now)]
        order = {"firing": 0, "pending": 1, "resolved": 2}
        return sorted(out.values(), key=lambda a: (order.get(a["state"], 3), -(a.get("since_ms") or 0)))

    # -- pages --------------------------------------------------------------------------------------

    def fleet(self, tr: TimeRange) -> dict[str, Any]:
        """Every model and version with traffic in the range; the one in trouble first."""
        p = tr.params()
        rows: dict[tuple[str, str], dict[str, Any]] = {}

        def row(m: str, v: str) -> dict[str, Any]:
            return rows.setdefault((m, v), {"model": m, "model_version": v, "predictions": 0, "errors": 0,
                                            "error_rate": None, "latency_p95_ms": None, "label_coverage": None,
                                            "firing": 0, "pending": 0, "spark_t": [], "spark": [],
                                            "last_window_ms": None})

        for r in self.q("fleet_traffic", p, max_rows=200_000).as_dicts():
            x = row(r["model"], r["model_version"])
            x["predictions"] += int(r["predictions"])
            x["errors"] += int(r["errors"])
            x["spark_t"].append(int(r["t"]))
            x["spark"].append(int(r["predictions"]))
        for r in self.q("fleet_latency", p).as_dicts():
            q = r["latency_q"] or []
            # the rollup keeps p50, p90, p99: p95 lies between the last two (linear in rank)
            if len(q) == 3 and _num(q[1]) is not None and _num(q[2]) is not None:
                row(r["model"], r["model_version"])["latency_p95_ms"] = float(q[1]) + (float(q[2]) - float(q[1])) * 5 / 9
        for r in self.q("fleet_windows", p).as_dicts():
            x = row(r["model"], r["model_version"])
            x["label_coverage"] = _num(r["label_coverage"])
            x["last_window_ms"] = r["last_window_ms"]
        alerts = self.alerts(tr)
        for a in alerts:
            if a["state"] in ("firing", "pending") and a["model"]:
                key = (a["model"], a["model_version"] or "")
                # an alert on the model as a whole (no version) counts on each of its versions
                keys = [key] if key in rows else [k for k in rows if k[0] == a["model"]] or [key]
                for k in keys:
                    row(*k)[a["state"]] += 1
        for x in rows.values():
            x["error_rate"] = x["errors"] / x["predictions"] if x["predictions"] else None
        models = sorted(rows.values(), key=lambda x: (-x["firing"], -x["pending"], -(x["error_rate"] or 0.0),
                                                      x["model"], x["model_version"]))
        severity = {"critical": 0, "warning": 1, "info": 2}
        firing = sorted((a for a in alerts if a["state"] == "firing"),
                        key=lambda a: (severity.get(a["severity"], 3), -(a.get("since_ms") or 0)))
        return {"range": tr.as_dict(), "models": models, "incidents": firing,
                "stamp": self._stamp(models, alerts)}

    def model(self, tr: TimeRange, model: str, version: str = "", metric: str = "", segment_key: str = "",
              heat_segment: str = "") -> dict[str, Any]:
        """The model page: a metric's series (whole and per segment value, reference band), the
        drift heat map of the whole version or one segment value, embedding and LLM signals."""
        base = {**tr.params(), "model": model, "version": version}
        versions = self.q("versions", base).as_dicts()
        names = [str(r["metric"]) for r in self.q("metric_names", base).as_dicts()]
        segs = self.q("segments", base).as_dicts()
        seg_values: dict[str, list[str]] = defaultdict(list)
        for r in segs:
            seg_values[str(r["segment_key"])].append(str(r["segment_value"]))
        alerts = self.alerts(tr, model)
        if not metric:
            firing = [a for a in alerts if a["state"] == "firing" and (a.get("labels") or {}).get("metric") in names]
            metric = (firing[0]["labels"]["metric"] if firing else
                      next((m for m in ("perf.accuracy", "error_rate", "latency_p95_ms") if m in names),
                           names[0] if names else "error_rate"))
        if not segment_key and seg_values:
            # the key with the most values (a device model rather than a two-valued app version)
            segment_key = max(sorted(seg_values), key=lambda k: len(seg_values[k]))
        shown = seg_values.get(segment_key, [])[:MAX_SEGMENT_LINES]
        times: set[int] = set()
        cells: dict[str, dict[int, float | None]] = defaultdict(dict)
        ref_lo: dict[int, float | None] = {}
        ref_hi: dict[int, float | None] = {}
        for r in self.q("series", {**base, "metric": metric, "segment_key": segment_key,
                                   "segment_values": shown}).as_dicts():
            t = int(r["t"])
            times.add(t)
            cells[r["seg"]][t] = _num(r["value"])
            if r["seg"] == "":
                ref_lo[t], ref_hi[t] = _num(r["ref_lo"]), _num(r["ref_hi"])
        ts = sorted(times)
        series = {"t": ts, "whole": [cells[""].get(t) for t in ts],
                  "reference_lo": [ref_lo.get(t) for t in ts], "reference_hi": [ref_hi.get(t) for t in ts],
                  "segments": [{"key": segment_key, "value": v, "values": [cells[v].get(t) for t in ts]}
                               for v in shown if v in cells]}
        hk, _, hv = heat_segment.partition("=")
        heat_rows = self.q("heatmap", {**base, "segment_key": hk if heat_segment else "",
                                       "segment_value": hv}).as_dicts()
        heat_t = sorted({int(r["t"]) for r in heat_rows})
        heat: dict[str, dict[int, float]] = defaultdict(dict)
        for r in heat_rows:
            if _num(r["psi"]) is not None:
                heat[_feature(str(r["metric"]))][int(r["t"])] = float(r["psi"])
        feats = sorted(heat, key=lambda f: -max(heat[f].values(), default=0.0))[:MAX_HEAT_FEATURES]
        sig_rows = self.q("signals", base).as_dicts()
        sig_t = sorted({int(r["t"]) for r in sig_rows})
        sig: dict[str, dict[int, float | None]] = defaultdict(dict)
        for r in sig_rows:
            sig[str(r["metric"])][int(r["t"])] = _num(r["value"])
        return {
            "range": tr.as_dict(), "model": model, "version": version,
            "versions": [{"model_version": v["model_version"], "predictions": int(v["predictions"])} for v in versions],
            "metrics": names, "metric": metric, "segment_key": segment_key,
            "segment_keys": {k: v[:200] for k, v in seg_values.items()},
            "series": series,
            "heatmap": {"segment": heat_segment, "t": heat_t, "features": feats, "threshold": PSI_THRESHOLD,
                        "psi": [[heat[f].get(t) for t in heat_t] for f in feats]},
            "signals": {"t": sig_t, "metrics": {m: [vals.get(t) for t in sig_t] for m, vals in sorted(sig.items())}},
            "incidents": alerts, "stamp": self._stamp(ts[-1:], alerts),
        }

    def incident(self, fingerprint: str, tr: TimeRange | None = None) -> dict[str, Any]:
        """One alert: what fired and since when, the segment, what is behind it, the notifications."""
        notes = self.q("notifications", {"fingerprint": fingerprint}).as_dicts()
        live = self._live_alerts().get(fingerprint)
        if not notes and live is None:
            raise NotFound(f"no alert with fingerprint {fingerprint!r}")
        last = _alert_json(notes[-1]["alert_json"]) if notes else {}
        labels: dict[str, str] = dict(live.labels) if live is not None else dict(last.get("labels") or {})
        annotations: dict[str, str] = dict(live.annotations) if live is not None else dict(last.get("annotations") or {})
        first = notes[0] if notes else {}
        model = (live.model if live is not None else None) or first.get("model") or labels.get("model", "")
        version = (live.model_version if live is not None else None) or first.get("model_version") or ""
        segment = (live.segment if live is not None else None) or (notes[-1]["segment"] if notes else None)
        fired = [n for n in notes if n["state"] == "firing"]
        since_ms = ((live.starts_at_ms or live.active_since_ms) if live is not None else None) or (
            int(fired[0]["ts_ms"]) if fired else (int(notes[0]["ts_ms"]) if notes else None))
        state = live.state if live is not None else notes[-1]["state"]
        resolved = [n for n in notes if n["state"] == "resolved"]
        ended_ms = int(resolved[-1]["ts_ms"]) if state == "resolved" and resolved else None
        metric = labels.get("metric", "")
        anchor = since_ms or int(time.time() * 1000)
        after_end = ended_ms or max(anchor + INCIDENT_WINDOW_S * 1000, int(notes[-1]["ts_ms"]) + 1 if notes else 0)
        after = TimeRange(anchor, min(after_end, anchor + INCIDENT_WINDOW_S * 1000))
        before = TimeRange(anchor - INCIDENT_WINDOW_S * 1000, anchor)
        base = {"model": model, "version": version, "metric": metric}
        ranked = [dict(r) for r in self.q("ranked", {**base, **after.params()}).as_dicts()] if metric else []
        named = _split_segment(segment)
        if named is None and ranked:
            named = (str(ranked[0]["segment_key"]), str(ranked[0]["segment_value"]))
        by_segment = [dict(r) for r in self.q("by_segment", {**base, **after.params()}).as_dicts()] if metric else []
        if not ranked:
            # no findings named segments: rank the values by how far the metric moved from their reference
            ranked = sorted(({"segment_key": r["segment_key"], "segment_value": r["segment_value"],
                              "contribution": None, "windows": None, "metric_value": _num(r["value"]),
                              "change": (_num(r["value"]) or 0.0) - (_num(r["reference"]) or 0.0)}
                             for r in by_segment if _num(r["value"]) is not None and _num(r["reference"]) is not None),
                            key=lambda r: -abs(r["change"]))[:20]
        drifted: list[dict[str, Any]] = []
        if named is not None:
            rows = self.q("segment_drift", {**base, **after.params(), "segment_key": named[0],
                                            "segment_value": named[1]}).as_dicts()
            drifted = [{"feature": _feature(str(r["metric"])), "psi": float(r["psi"])} for r in rows
                       if _num(r["psi"]) is not None and float(r["psi"]) >= PSI_THRESHOLD][:MAX_HISTOGRAMS]
            hists = self._histograms(model, version, named, [str(x["feature"]) for x in drifted], before, after)
            for x in drifted:
                x["histogram"] = hists.get(str(x["feature"]), {"kind": "none", "bins": [], "before": [], "after": []})
        for r in ranked:
            r["label"] = f"{r['segment_key']}={r['segment_value']}"
        silences = self._silences()
        now = int(time.time() * 1000)
        return {
            "fingerprint": fingerprint, "rule": (live.rule if live is not None else first.get("rule")) or labels.get("alertname"),
            "state": state, "severity": live.severity if live is not None else first.get("severity"),
            "model": model, "model_version": version, "metric": metric, "labels": labels, "annotations": annotations,
            "summary": annotations.get("summary", ""), "since_ms": since_ms, "ended_ms": ended_ms,
            "value": _num(live.value) if live is not None else _num(notes[-1]["value"]),
            "segment": f"{named[0]}={named[1]}" if named else None,
            "segment_source": "alert" if _split_segment(segment) else ("processor findings" if named else None),
            "ranked_segments": ranked, "by_segment": by_segment, "drifted_inputs": drifted,
            "before": before.as_dict(), "after": after.as_dict(),
            "notifications": [{"ts_ms": int(n["ts_ms"]), "receiver": n["receiver"], "state": n["state"],
                               "group_status": n["group_status"], "attempt": n["delivery_attempt"],
                               "outcome": n["delivery_outcome"], "http_status": n["delivery_http_status"],
                               "error": n["delivery_error"], "idempotency_key": n["idempotency_key"]} for n in notes],
            "silenced_by": [s.id for s in silences if labels and s.mutes(labels, now)],
            "accuracy_query": {"saved": "accuracy_by_segment",
                               "params": {"model": model, "segment_key": named[0] if named else "device",
                                          "bucket_minutes": "10", "model_version": version,
                                          "since_hours": str(_hours_back(before.from_ms))}},
            "stamp": self._stamp([len(notes)], [{"state": state}]),
        }

    def _histograms(self, model: str, version: str, seg: tuple[str, str], features: list[str],
                    before: TimeRange, after: TimeRange) -> dict[str, dict[str, Any]]:
        """Before/after counts of each feature in the segment value: equal-width bins over the
        feature's range for numbers, the most frequent values for categories."""
        if not features:
            return {}
        p = {"model": model, "version": version, "features": features, "segment_key": seg[0],
             "segment_value": seg[1], "from_ms": before.from_ms, "to_ms": after.to_ms, "split_ms": before.to_ms,
             "sample": HIST_SAMPLE}
        out: dict[str, dict[str, Any]] = {}
        suffix = "" if version else "_any_version"
        values: dict[str, dict[bool, np.ndarray]] = defaultdict(dict)
        for r in self.q("histogram_values" + suffix, p).as_dicts():
            xs = np.asarray(r["xs"], dtype=float)
            values[r["feature"]][bool(r["after"])] = xs[np.isfinite(xs)]
        for f, per in values.items():
            both = np.concatenate([per.get(False, np.empty(0)), per.get(True, np.empty(0))])
            if not both.size:
                continue
            lo, hi = float(both.min()), float(both.max())
            edges = np.linspace(lo, hi if hi > lo else lo + 1.0, HIST_BINS + 1)
            out[f] = {"kind": "numeric", "bins": [float(e) for e in edges[:-1]],
                      "before": [int(n) for n in np.histogram(per.get(False, np.empty(0)), edges)[0]],
                      "after": [int(n) for n in np.histogram(per.get(True, np.empty(0)), edges)[0]]}
        cats = [f for f in features if f not in out]
        if cats:
            counts: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
            for r in self.q("categories" + suffix, {**p, "features": cats}).as_dicts():
                counts[r["feature"]][str(r["category"])][1 if r["after"] else 0] = int(r["n"])
            for f, by in counts.items():
                top = sorted(by, key=lambda c: -sum(by[c]))[:HIST_BINS]
                out[f] = {"kind": "categorical", "bins": top, "before": [by[c][0] for c in top],
                          "after": [by[c][1] for c in top]}
        return out

    @staticmethod
    def _stamp(*parts: Sequence[Any]) -> str:
        """A short digest of what the live poll compares: new windows or alert changes move it."""
        import hashlib

        return hashlib.sha256(orjson.dumps(parts, default=str)).hexdigest()[:16]


def _hours_back(from_ms: int) -> int:
    """``since_hours`` of a saved query that must reach back to ``from_ms`` (it counts from now)."""
    hours = math.ceil((time.time() * 1000 - from_ms) / 3_600_000) + 1
    return max(1, min(hours, 366 * 24))


def fmt_time_ms(ms: int | None) -> str:
    """``2026-12-01 06:00:00Z`` for a time in ms (``–`` when missing)."""
    if not ms:
        return "–"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
