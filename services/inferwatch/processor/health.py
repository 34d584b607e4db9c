"""The processor worker's health: failures, crash loops, dead letters, state rebuilds.

Wire format: ``GET /healthz`` answers JSON (:meth:`ProcessorHealth.snapshot`; HTTP 503 while a batch
keeps failing), ``GET /metrics`` the Prometheus text format (version 0.0.4). Served by a small
threaded HTTP server on ``INFERWATCH_PROCESSOR_HEALTH_PORT`` (0: off) of ``INFERWATCH_API_HOST``; the
faust worker updates the counters from its event loop, the server reads them from its own thread.
When a token is set, every path but ``/healthz`` needs ``Authorization: Bearer <INFERWATCH_API_TOKEN>``
(the check of :mod:`inferwatch.bearer`, as at the API's door); ``/healthz`` stays open for liveness
probes and shows only ``{"ok": ...}`` to a caller without the token.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from inferwatch.bearer import token_matches
from inferwatch.config import is_loopback

log = logging.getLogger("inferwatch.processor")


@dataclass
class ProcessorHealth:
    """Counters the worker updates and the health server reads (from another thread, hence the lock)."""

    failures_total: int = 0
    """Tries of a batch (or part of one) that raised."""
    consecutive_failures: int = 0
    """Failed tries since the last batch that was processed (0 when healthy)."""
    last_error: str | None = None
    last_error_ms: int | None = None
    dead_lettered_total: int = 0
    """Records written to the dead-letter topic because their processing kept failing."""
    batches_total: int = 0
    records_total: int = 0
    state_rebuilds_total: int = 0
    """Times the core's in-memory state was rebuilt from the tables (start, rebalance, after a failure)."""
    rebalances_total: int = 0
    assigned_partitions: list[int] = field(default_factory=list)
    """The predictions partitions this worker holds (after the last assignment)."""
    publish_failures_total: int = 0
    started_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def failed(self, exc: BaseException, consecutive: int) -> None:
        """A try failed with ``exc`` (the ``consecutive``-th failure of the current batch)."""
        with self._lock:
            self.failures_total += 1
            self.consecutive_failures = max(self.consecutive_failures, consecutive)
            self.last_error = f"{type(exc).__name__}: {exc}"[:500]
            self.last_error_ms = int(time.time() * 1000)

    def processed(self, records: int) -> None:
        """A batch of ``records`` records is done (processed or dead-lettered)."""
        with self._lock:
            self.batches_total += 1
            self.records_total += records
            self.consecutive_failures = 0

    def dead_lettered(self, records: int) -> None:
        with self._lock:
            self.dead_lettered_total += records

    def rebuilt(self) -> None:
        with self._lock:
            self.state_rebuilds_total += 1

    def rebalanced(self, assigned: list[int] | None = None) -> None:
        """A rebalance step; ``assigned``: the predictions partitions this worker holds from now on."""
        with self._lock:
            self.rebalances_total += 1
            if assigned is not None:
                self.assigned_partitions = sorted(assigned)

    def publish_failed(self, exc: BaseException) -> None:
        with self._lock:
            self.publish_failures_total += 1
            self.last_error = f"publish: {type(exc).__name__}: {exc}"[:500]
            self.last_error_ms = int(time.time() * 1000)

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able view; ``ok`` is False while a batch keeps failing (a crash loop)."""
        with self._lock:
            return {
                "ok": self.consecutive_failures == 0,
                "state": "ok" if self.consecutive_failures == 0 else "failing",
                "consecutive_failures": self.consecutive_failures,
                "failures_total": self.failures_total,
                "last_error": self.last_error,
                "last_error_ms": self.last_error_ms,
                "dead_lettered_total": self.dead_lettered_total,
                "batches_total": self.batches_total,
                "records_total": self.records_total,
                "state_rebuilds_total": self.state_rebuilds_total,
                "rebalances_total": self.rebalances_total,
                "assigned_partitions": list(self.assigned_partitions),
                "publish_failures_total": self.publish_failures_total,
                "started_ms": self.started_ms,
            }

    def prometheus(self) -> str:
        """The counters in Prometheus' text format."""
        s = self.snapshot()
        rows = [
            ("inferwatch_processor_batch_failures_total", "counter", "Tries of a batch that raised.",
             s["failures_total"]),
            ("inferwatch_processor_consecutive_failures", "gauge",
             "Failed tries since the last processed batch (a crash loop when it grows).", s["consecutive_failures"]),
            ("inferwatch_processor_failed_records_deadlettered_total", "counter",
             "Records dead-lettered because their processing kept failing.", s["dead_lettered_total"]),
            ("inferwatch_processor_batches_total", "counter", "Batches done.", s["batches_total"]),
            ("inferwatch_processor_records_total", "counter", "Records in batches done.", s["records_total"]),
            ("inferwatch_processor_state_rebuilds_total", "counter",
             "Rebuilds of the in-memory state from the tables.", s["state_rebuilds_total"]),
            ("inferwatch_processor_rebalances_total", "counter", "Partition assignments seen.",
             s["rebalances_total"]),
            ("inferwatch_processor_assigned_partitions", "gauge", "Predictions partitions this worker holds.",
             len(s["assigned_partitions"])),
            ("inferwatch_processor_publish_failures_total", "counter", "Outputs that could not be sent.",
             s["publish_failures_total"]),
        ]
        out: list[str] = []
        for name, kind, help_, value in rows:
            out += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}", f"{name} {value}"]
        return "\n".join(out) + "\n"


class _Handler(BaseHTTPRequestHandler):
    health: ProcessorHealth
    token: str | None

    def _authenticated(self) -> bool:
        return not self.token or token_matches(self.headers.get("Authorization"), self.token)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        authed = self._authenticated()
        if path == "/healthz":
            snap = self.health.snapshot()
            body = snap if authed else {"ok": snap["ok"]}  # error texts and counters only with the token
            self._send(200 if snap["ok"] else 503, "application/json", json.dumps(body).encode())
        elif not authed:  # like the API's door: without the token nothing else answers, not even a 404
            self._send(401, "application/json", b'{"detail":"missing or wrong bearer token"}')
        elif path == "/metrics":
            self._send(200, "text/plain; version=0.0.4", self.health.prometheus().encode())
        else:
            self._send(404, "application/json", b'{"detail":"not found"}')

    def _not_allowed(self) -> None:
        # http.server answers 501 (a server error) to methods it has no do_* for
        if self._authenticated():
            self._send(405, "application/json", b'{"detail":"method not allowed"}')
        else:
            self._send(401, "application/json", b'{"detail":"missing or wrong bearer token"}')

    do_POST = do_PUT = do_PATCH = do_DELETE = _not_allowed  # noqa: N815 - http.server's names

    def _send(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        pass  # no access log: liveness probes would flood the worker's log


def serve_health(health: ProcessorHealth, host: str, port: int, token: str | None) -> ThreadingHTTPServer | None:
    """Serve ``/healthz`` and ``/metrics`` in a daemon thread; None (with a warning) when the port is taken,
    and when ``host`` is not a loopback address while no token is set (nothing is served unprotected)."""
    if not token and not is_loopback(host):
        log.error("processor health endpoint not served: %s is not a loopback address and INFERWATCH_API_TOKEN "
                  "is not set", host)
        return None
    handler = type("ProcessorHealthHandler", (_Handler,), {"health": health, "token": token})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        log.warning("processor health endpoint not served on %s:%d: %s", host, port, exc)
        return None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="processor-health", daemon=True).start()
    log.info("processor health on http://%s:%d/healthz", host, server.server_address[1])
    return server
