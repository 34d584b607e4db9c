"""``GET /metrics``: the platform's own health in the Prometheus text exposition format (0.0.4).

Series (all gauges or counters, names prefixed ``inferwatch_``):

* ``events_in_total{topic}`` — messages ever written to each registry topic (sum of high watermarks);
* ``consumer_lag{service,group}`` — messages the processor, sink and alerter groups are behind;
* ``sink_rows_written_total{table}``, ``sink_rows_per_second``, ``sink_messages_consumed_total``,
  ``sink_dead_letters_total``, ``sink_deadletter_failures_total``, ``sink_store_ok`` — from the sink,
  when this API is served by it;
* ``alerts{state,severity}`` — the alerter's alerts by state; ``silences_active``;
* ``spool_bytes`` — bytes in SDK spools under ``<data_dir>/spool`` (events waiting for Kafka).

Kafka lookups are cached for ``cache_s`` so a scrape storm does not become a broker storm.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from inferwatch.config import Settings

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Exposition:
    """Builds one exposition text: ``HELP``/``TYPE`` once per metric, then its samples."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._declared: set[str] = set()

    def add(self, name: str, value: float | None, labels: Mapping[str, str] | None = None,
            kind: str = "gauge", help_: str = "") -> None:
        """One sample; ``None`` values are skipped (unknown is not zero)."""
        full = f"inferwatch_{name}"
        if full not in self._declared:
            self._declared.add(full)
            self.lines.append(f"# HELP {full} {help_ or name}")
            self.lines.append(f"# TYPE {full} {kind}")
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return
        lab = ""
        if labels:
            lab = "{" + ",".join(f'{k}="{_esc(str(v))}"' for k, v in sorted(labels.items())) + "}"
        num = repr(float(value)) if isinstance(value, float) else str(int(value))
        self.lines.append(f"{full}{lab} {num}")

    def text(self) -> str:
        """The exposition, newline-terminated."""
        return "\n".join(self.lines) + "\n"


def spool_bytes(data_dir: Path) -> int:
    """Total size of the files under ``<data_dir>/spool``."""
    root = Path(data_dir) / "spool"
    if not root.is_dir():
        return 0
    total = 0
    for p in root.rglob("*"):
        try:
            if p.is_file():
                total += p.stat().st_size
        except OSError:
            continue
    return total


class MetricsCollector:
    """Collects every series; ``sink_health`` is the sink's health snapshot when the sink serves this API."""

    def __init__(self, settings: Settings, alert_store: Any = None,
                 sink_health: Callable[[], Mapping[str, Any]] | None = None, cache_s: float = 5.0) -> None:
        self.settings = settings
        self.alert_store = alert_store
        self.sink_health = sink_health
        self.cache_s = cache_s
        self._lock = threading.Lock()
        self._kafka_at = 0.0
        self._kafka: dict[str, Any] = {}
        self._rate: tuple[float, int] | None = None  # (monotonic time, rows written) of the last scrape
        self._rows_per_s: float | None = None

    def _kafka_numbers(self) -> dict[str, Any]:
        from inferwatch.api.lag import consumer_lag, topic_end_offsets

        with self._lock:
            if time.monotonic() - self._kafka_at < self.cache_s and self._kafka:
                return self._kafka
            out: dict[str, Any] = {"ok": True}
            try:
                out["ends"] = topic_end_offsets(self.settings, timeout_s=3.0)
                out["lag"] = consumer_lag(self.settings, timeout_s=3.0)
            except Exception as exc:  # Kafka down: say so in a gauge rather than failing the scrape
                out = {"ok": False, "error": str(exc)}
            self._kafka, self._kafka_at = out, time.monotonic()
            return out

    def _sink_rate(self, rows: int, started_ms: int | None) -> float | None:
        now = time.monotonic()
        with self._lock:
            prev = self._rate
            if prev is None:
                # first scrape: the average since the sink started
                if started_ms:
                    up_s = max(1.0, time.time() - started_ms / 1000)
                    self._rows_per_s = rows / up_s
            elif now - prev[0] >= 1.0:
                self._rows_per_s = max(0.0, (rows - prev[1]) / (now - prev[0]))
            if prev is None or now - prev[0] >= 1.0:
                self._rate = (now, rows)
            return self._rows_per_s

    def render(self) -> str:
        """The exposition text of one scrape."""
        e = Exposition()
        k = self._kafka_numbers()
        e.add("kafka_up", 1 if k.get("ok") else 0, help_="1 when Kafka answered the last lookup")
        for topic, n in sorted(k.get("ends", {}).items()):
            e.add("events_in_total", n, {"topic": topic}, "counter", "Messages ever written to the topic")
        for g in k.get("lag", []):
            e.add("consumer_lag", g.lag, {"service": g.service, "group": g.group},
                  help_="Messages the service's consumer group is behind")
        if self.sink_health is not None:
            h = dict(self.sink_health())
            written = {str(t): int(n) for t, n in (h.get("rows_written") or {}).items()}
            for t, n in sorted(written.items()):
                e.add("sink_rows_written_total", n, {"table": t}, "counter", "Rows the sink inserted")
            e.add("sink_rows_per_second", self._sink_rate(sum(written.values()), h.get("started_ms")),
                  help_="Rows inserted per second since the previous scrape")
            e.add("sink_messages_consumed_total", h.get("messages_consumed"), kind="counter",
                  help_="Messages the sink consumed")
            e.add("sink_dead_letters_total", h.get("dead_letters"), kind="counter",
                  help_="Messages the sink sent to the dead-letter topic")
            store_ok = (h.get("store") or {}).get("ok", h.get("ok", True))
            e.add("sink_store_ok", 1 if store_ok else 0, help_="1 while the store accepts writes")
            dl = h.get("deadletters") or {}
            e.add("sink_deadletter_failures_total", dl.get("failures_total"), kind="counter",
                  help_="Dead letters Kafka refused or did not confirm (each attempt; nothing committed meanwhile)")
        if self.alert_store is not None:
            counts: dict[tuple[str, str], int] = {}
            try:
                for rec in self.alert_store.list_alerts(("pending", "firing", "resolved")):
                    key = (rec.state, rec.severity)
                    counts[key] = counts.get(key, 0) + 1
                silences = len(self.alert_store.silences())
            except Exception:
                silences = None
            for (state, sev), n in sorted(counts.items()):
                e.add("alerts", n, {"state": state, "severity": sev}, help_="Alerts of the alerter by state")
            if not counts:
                e.add("alerts", None, help_="Alerts of the alerter by state")
            e.add("silences_active", silences, help_="Silences in force")
        e.add("spool_bytes", spool_bytes(self.settings.data_dir),
              help_="Bytes in SDK spools under the data dir (events waiting for Kafka)")
        return e.text()
