"""A small local webhook receiver: verifies signatures, records requests, answers as scripted.

For trying receivers out locally, the tests and the bench (``http.server`` in a thread on
127.0.0.1). ``respond`` decides each answer: return ``(status, headers)``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from inferwatch.alerter.notification.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify


@dataclass
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int
    signature_ok: bool | None

    @property
    def idempotency_key(self) -> str | None:
        """The ``Idempotency-Key`` header."""
        return self.headers.get(IDEMPOTENCY_HEADER.lower())


class _Server(ThreadingHTTPServer):
    # the default listen backlog (5) resets connections when a sender opens a few dozen at once
    request_queue_size = 256


@dataclass
class LocalReceiver:
    """``with LocalReceiver(port=0, secret="s") as r: ... r.url`` — a recording webhook endpoint."""

    port: int = 0
    secret: str | None = None
    respond: Callable[[Received], tuple[int, dict[str, str]]] = lambda r: (200, {})
    requests: list[Received] = field(default_factory=list)
    on_request: Callable[[Received], None] | None = None
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cond: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self._cond = threading.Condition(self._lock)

    @property
    def url(self) -> str:
        """The endpoint URL."""
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> LocalReceiver:
        """Bind and serve in a daemon thread."""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                headers = {k.lower(): v for k, v in self.headers.items()}
                sig = headers.get(SIGNATURE_HEADER.lower())
                ok = None if outer.secret is None else (sig is not None and verify(outer.secret, sig, body))
                rec = Received(self.path, headers, body, time.time(), 0, ok)
                status, extra = outer.respond(rec)
                rec.status = status
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with outer._cond:
                    outer.requests.append(rec)
                    outer._cond.notify_all()
                if outer.on_request is not None:
                    outer.on_request(rec)

            def log_message(self, *args: object) -> None:
                pass

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LocalReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for(self, pred: Callable[[list[Received]], bool], timeout_s: float) -> bool:
        """Block until ``pred(requests)`` holds or ``timeout_s`` passes; returns whether it held."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not pred(self.requests):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.2))
            return True
