"""The whole platform on one machine: broker, topics, store, processor, sink (+API), alerter, receiver.

:class:`Stack` is what ``inferwatch demo`` and the e2e test start. Services run as subprocesses
(``inferwatch run processor|sink|alerter``) under a :class:`~inferwatch.supervisor.Supervisor`,
with their logs in ``<data_dir>/logs``; the webhook receiver runs in the calling process so it can
print (or collect) each notification as it arrives. The embedded chDB store is owned by the sink,
which serves the HTTP API; everything else reads through that API.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

from inferwatch.alerter.notification.webhook_receiver import LocalReceiver, Received
from inferwatch.config import Settings
from inferwatch.demo.errors import DemoError
from inferwatch.infra.kafka_native import NativeKafka, free_port
from inferwatch.supervisor import Supervisor, cli_command

SECRET_ENV = "INFERWATCH_DEMO_WEBHOOK_SECRET"

#: Processor settings of the demo: two-minute windows (simulated), labels may arrive 20 s late,
#: the first four minutes of each version pin its reference, the last window closes after 5 s idle.
DEMO_PROCESSOR_ENV: dict[str, str] = {
    "INFERWATCH_PROCESSOR_WINDOW_S": "120",
    "INFERWATCH_PROCESSOR_LATENESS_S": "5",
    "INFERWATCH_PROCESSOR_LABEL_WAIT_S": "30",
    "INFERWATCH_PROCESSOR_BASELINE_S": "240",
    "INFERWATCH_PROCESSOR_IDLE_FLUSH_S": "5",
    "INFERWATCH_PROCESSOR_DETECT_ENABLED": "true",  # the sequential detectors (off by default)
}


@dataclass
class StackSettings:
    """Where and how to run. ``kafka_bootstrap=None`` starts a native broker of our own on free ports."""

    data_dir: Path
    kafka_bootstrap: str | None = None
    topic_prefix: str = ""
    api_port: int | None = None
    processor_env: Mapping[str, str] = field(default_factory=lambda: dict(DEMO_PROCESSOR_ENV))
    rules_path: Path | None = None
    # about one processor window of the sped-up replay: findings that start together (inputs now,
    # accuracy once the labels arrived) go out as one incident notification
    group_wait_s: float = 10.0
    on_notification: Callable[[Received], None] | None = None
    start_timeout_s: float = 120.0
    # The bearer token of every service's HTTP door (the API, the console's login); None: no token,
    # which the services accept only because they listen on 127.0.0.1.
    api_token: str | None = None


class Stack:
    """Start with :meth:`start` (or ``with Stack(opts) as st``); :meth:`stop` stops everything it started."""

    def __init__(self, opts: StackSettings) -> None:
        self.opts = opts
        self.data_dir = Path(opts.data_dir).resolve()
        self.log_dir = self.data_dir / "logs"
        self.broker: NativeKafka | None = None
        self.receiver: LocalReceiver | None = None
        self.supervisor = Supervisor(self.log_dir, stop_timeout_s=20.0)
        self.secret = secrets.token_hex(16)
        self.settings: Settings | None = None
        self.started = False

    # --- start --------------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        """The base URL of the HTTP API served by the sink."""
        assert self.settings is not None
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    @property
    def console_url(self) -> str:
        """The web console's fleet page (its login page asks for :attr:`api_token` when one is set)."""
        return f"{self.api_url}/console/"

    @property
    def api_token(self) -> str | None:
        """The bearer token the services require (None: none required)."""
        return self.opts.api_token

    def auth_headers(self) -> dict[str, str]:
        """The ``Authorization`` header a client of this stack's API sends (empty without a token)."""
        return {"Authorization": f"Bearer {self.opts.api_token}"} if self.opts.api_token else {}

    def env(self) -> dict[str, str]:
        """The environment every service and CLI command of this stack runs with."""
        s = self.settings
        assert s is not None
        return {
            "INFERWATCH_KAFKA_BOOTSTRAP": s.kafka_bootstrap,
            "INFERWATCH_TOPIC_PREFIX": s.topic_prefix,
            "INFERWATCH_DATA_DIR": str(s.data_dir),
            "INFERWATCH_API_HOST": s.api_host,
            "INFERWATCH_API_PORT": str(s.api_port),
            SECRET_ENV: self.secret,
            **({"INFERWATCH_API_TOKEN": self.opts.api_token} if self.opts.api_token else {}),
            **dict(self.opts.processor_env),
        }

    def start(self, say: Callable[[str], None] = lambda _m: None) -> Stack:
        """Bring everything up in order; on failure stop what started and raise :class:`DemoError`."""
        if self.started:
            return self
        try:
            self._start(say)
        except BaseException:
            self.stop()
            raise
        self.started = True
        return self

    def _start(self, say: Callable[[str], None]) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        bootstrap = self.opts.kafka_bootstrap
        if bootstrap is None:
            say("starting Kafka (native KRaft broker from the official jars)")
            self.broker = NativeKafka.on_free_ports(self.data_dir / "kafka")
            bootstrap = self.broker.start(timeout_s=90)
            say(f"Kafka answers at {bootstrap}")
        port = self.opts.api_port or free_port()
        self.settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=self.opts.topic_prefix,
                                 data_dir=self.data_dir, api_host="127.0.0.1", api_port=port,
                                 api_token=self.opts.api_token)
        self.supervisor.env = self.env()

        from inferwatch.kafka.admin import apply_topics
        from inferwatch.processor.settings import ProcessorSettings
        from inferwatch.processor.topics import ensure_topics

        rep = apply_topics(self.settings)
        ensure_topics(self.settings, ProcessorSettings.model_validate(_processor_fields(self.opts.processor_env)))
        say(f"topics applied ({len(rep.created)} created, {len(rep.unchanged) + len(rep.updated)} already there)")

        self._migrate()
        say(f"embedded store migrated ({self.data_dir / 'chdb'})")

        self.receiver = LocalReceiver(secret=self.secret, on_request=self.opts.on_notification).start()
        cfg_path = self._alerter_config(self.receiver.url)
        say(f"webhook receiver listening on {self.receiver.url}")

        sup = self.supervisor
        sup.start("processor", cli_command("run", "processor"))
        sup.start("sink", cli_command("run", "sink"))
        rules = self.opts.rules_path
        sup.start("alerter", cli_command("run", "alerter", "--config", str(cfg_path),
                                         *(["--rules", str(rules)] if rules else [])))
        sup.wait_until("the sink's API", self._api_ready, self.opts.start_timeout_s)
        say(f"processor, sink (API on {self.api_url}) and alerter running; logs in {self.log_dir}")

    def _migrate(self) -> None:
        done = subprocess.run(cli_command("migrate"), env={**os.environ, **self.env()}, capture_output=True,
                              text=True, timeout=180, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise DemoError(f"inferwatch migrate failed: {(done.stderr or done.stdout).strip()[-2000:]}")

    def _alerter_config(self, url: str) -> Path:
        doc: dict[str, Any] = {
            "http": {"host": "127.0.0.1", "port": 0},  # the main API serves /v1/alerts from the same state
            "start_from": "earliest",
            "delivery": {"timeout_s": 5, "backoff_initial_s": 0.2, "backoff_max_s": 5, "give_up_after_s": "10m"},
            # one incident per model version: the findings of one cause in one notification
            "route": {"receiver": "demo", "group_by": ["model", "model_version"],
                      "group_wait": f"{self.opts.group_wait_s}s", "group_interval": "5s", "repeat_interval": "4h"},
            "receivers": [{"name": "demo", "url": url, "format": "inferwatch", "secret_env": SECRET_ENV,
                           "send_resolved": True}],
        }
        path = self.data_dir / "alerter.yaml"
        path.write_text("# written by the demo: routes every alert to the local receiver\n" + yaml.safe_dump(doc))
        return path

    def _api_ready(self) -> bool:
        r = httpx.get(f"{self.api_url}/healthz", headers=self.auth_headers(), timeout=2)
        return r.status_code == 200

    # --- stop ---------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop services, the receiver and our own broker; safe to call twice."""
        self.started = False
        self.supervisor.stop_all()
        if self.receiver is not None:
            self.receiver.stop()
            self.receiver = None
        if self.broker is not None:
            with contextlib.suppress(Exception):
                self.broker.stop()
            self.broker = None

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _processor_fields(env: Mapping[str, str]) -> dict[str, str]:
    pre = "INFERWATCH_PROCESSOR_"
    return {k[len(pre):].lower(): v for k, v in env.items() if k.startswith(pre)}
