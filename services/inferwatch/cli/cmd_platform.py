"""``inferwatch up|down|status|demo`` and ``inferwatch run all|api``: the platform as a whole.

* ``up`` starts the native Kafka broker on the configured bootstrap port (unless one answers),
  applies the topics and migrates the store; ``up --brokers 3`` starts a three-node KRaft cluster
  instead (ports bootstrap, +10, +20; controllers one above each). ``down`` stops what ``run all``
  and ``up`` started.
* ``run all`` runs processor, sink (+API) and alerter as child processes in the foreground, with
  pid files and logs under ``<data_dir>/run``; Ctrl-C stops them all.
* ``status`` shows what runs, the consumer lag of each service's group, and the store's size.
* ``demo`` runs the whole platform on a simulated fleet (see :mod:`inferwatch.demo.runner`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import typer

from inferwatch.cli.common import CliError
from inferwatch.config import Settings


def _run_dir(s: Settings) -> Path:
    return Path(s.data_dir) / "run"


def _kafka_dir(s: Settings, port: int) -> Path:
    """The default port shares ``infra/kafka/run`` with ``make up``/``make down``; others live in the data dir."""
    from inferwatch.paths import repo_root

    if port == 9092:
        return repo_root() / "infra" / "kafka" / "run"
    return Path(s.data_dir) / f"kafka-{port}"


def _broker_for(s: Settings) -> Any:
    """The native broker that serves ``s.kafka_bootstrap`` when it is a local port (controller on port + 1)."""
    from inferwatch.infra.kafka_native import NativeKafka

    host, _, port = s.kafka_bootstrap.split(",")[0].rpartition(":")
    if host not in ("127.0.0.1", "localhost") or not port.isdigit():
        raise CliError(f"{s.kafka_bootstrap} is not a local broker: start it yourself, or unset INFERWATCH_KAFKA_BOOTSTRAP")
    return NativeKafka(_kafka_dir(s, int(port)), int(port), int(port) + 1)


def _local_port(s: Settings) -> int:
    host, _, port = s.kafka_bootstrap.split(",")[0].rpartition(":")
    if host not in ("127.0.0.1", "localhost") or not port.isdigit():
        raise CliError(f"{s.kafka_bootstrap} is not a local broker: start it yourself, or unset INFERWATCH_KAFKA_BOOTSTRAP")
    return int(port)


_NODE_STRIDE = 10


def _cluster_dir(s: Settings, port: int) -> Path:
    return Path(s.data_dir) / f"kafka-cluster-{port}"


def _cluster_for(s: Settings, brokers: int | None = None) -> Any:
    """The native cluster whose first node serves the bootstrap port: node i on port + 10(i-1),
    its controller one above (a stride of 10 keeps 9094, the alerter's default port, free).
    ``brokers=None``: the cluster already in the data dir, if any."""
    from inferwatch.infra.kafka_native import NativeCluster

    port = _local_port(s)
    directory = _cluster_dir(s, port)
    if brokers is None:
        brokers = len(list(directory.glob("node-*"))) if directory.is_dir() else 0
        if brokers == 0:
            return None
    ports = [port + _NODE_STRIDE * i for i in range(brokers)]
    return NativeCluster(directory, ports, [p + 1 for p in ports])


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    """Add the platform commands."""

    @app.command("up")
    def up(
        migrate: bool = typer.Option(True, help="Also apply the topics and migrate the store."),
        brokers: int = typer.Option(
            1, "--brokers", min=1, max=9,
            help="Native Kafka nodes to start: 1 = one broker; 3 = a KRaft cluster (topics get the "
                 "registry's cluster replication: 3 replicas, min.insync.replicas 2)."),
    ) -> None:
        """Start Kafka (native broker on the bootstrap port, unless one already answers), apply topics, migrate."""
        from inferwatch.api.status import kafka_answers

        s = Settings()
        if kafka_answers(s):
            typer.echo(f"kafka: already answering at {s.kafka_bootstrap}")
        elif brokers > 1:
            cluster = _cluster_for(s, brokers)
            typer.echo(f"kafka: starting a {brokers}-node native cluster at {cluster.bootstrap} (data in {cluster.data_dir})")
            cluster.start(timeout_s=120)
            typer.echo(f"kafka: up; give clients every node: INFERWATCH_KAFKA_BOOTSTRAP={cluster.bootstrap}")
        else:
            broker = _broker_for(s)
            typer.echo(f"kafka: starting the native broker at {broker.bootstrap} (data in {broker.data_dir})")
            broker.start(timeout_s=90)
            typer.echo("kafka: up")
        if not migrate:
            return
        from inferwatch.kafka.admin import apply_topics
        from inferwatch.processor.settings import ProcessorSettings
        from inferwatch.processor.topics import ensure_topics

        rep = apply_topics(s)
        internal = ensure_topics(s, ProcessorSettings())
        typer.echo(f"topics: {len(rep.created)} created, {len(rep.updated)} updated, {len(rep.unchanged)} unchanged "
                   f"(environment {rep.environment}, {rep.brokers} broker(s))")
        for line in internal.not_applied:
            typer.echo(f"topics: not applied {line}", err=True)
        if not s.clickhouse_url and _api_base_answers(s):
            typer.echo("store: owned by a running sink; it migrates at start")
            return
        from inferwatch.store import open_store
        from inferwatch.store.migrations import migrate as run_migrations
        from inferwatch.store.settings import StoreSettings

        with open_store(s) as store:
            done = run_migrations(store, StoreSettings())
            typer.echo(f"store: {store.kind}, " + (f"applied {', '.join(done)}" if done else "up to date"))

    @app.command("down")
    def down(
        kafka: bool = typer.Option(True, help="Also stop the native Kafka broker."),
    ) -> None:
        """Stop the services started by `inferwatch run all` (pid files) and the native broker; data is kept."""
        from inferwatch.supervisor import running_from_pid_files, stop_process_group

        s = Settings()
        run_dir = _run_dir(s)
        running = running_from_pid_files(run_dir)
        sup_pid = running.pop(_SUPERVISOR, None)
        if sup_pid is not None:
            # `run all` stops its own children in order when it gets SIGTERM
            typer.echo(f"stopping `inferwatch run all` (pid {sup_pid}) and its services")
            _terminate(sup_pid, 60.0)
            running = {k: v for k, v in running_from_pid_files(run_dir).items() if k != _SUPERVISOR}
        for name, pid in running.items():
            typer.echo(f"stopping {name} (pid {pid})")
            stop_process_group(pid, 20.0)
            (run_dir / f"{name}.pid").unlink(missing_ok=True)
        if kafka:
            cluster = _cluster_for(s)
            if cluster is not None and cluster.is_running():
                typer.echo(f"kafka: stopping the native cluster at {cluster.bootstrap}")
                cluster.stop()
                return
            broker = _broker_for(s)
            if broker.is_running():
                typer.echo(f"kafka: stopping the native broker at {broker.bootstrap}")
                broker.stop()
            else:
                typer.echo("kafka: no native broker of ours is running")

    @app.command("status")
    def status(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
        """What runs, consumer lag per service, and the store's size."""
        import json
        import logging

        from inferwatch.api.status import collect

        logging.getLogger("httpx").setLevel(logging.WARNING)

        st = collect(Settings())
        if as_json:
            typer.echo(json.dumps(st, indent=2, default=str))
            return
        typer.echo(f"kafka     {st['kafka']['bootstrap']}: {'up' if st['kafka']['ok'] else 'DOWN'}")
        for name, info in st["services"].items():
            typer.echo(f"{name:<9} {info}")
        typer.echo(f"api       {st['api']['url']}: {'up' if st['api']['ok'] else 'not answering'}")
        if st["lag"]:
            typer.echo("consumer lag (messages behind):")
            for group, row in st["lag"].items():
                typer.echo(f"  {row['service']:<9} {group:<40} {row['lag'] if row['lag'] is not None else '?'}")
        store = st["store"]
        if store.get("error"):
            typer.echo(f"store     {store['error']}")
        else:
            typer.echo(f"store     {store['kind']}: {store['rows']:,} rows, {store['bytes'] / 1e6:.1f} MB")
            for t, (rows, size) in sorted(store["tables"].items()):
                typer.echo(f"  {t:<28} {rows:>12,} rows {size / 1e6:>9.2f} MB")

    @run_app.command("all")
    def run_all(
        config: Path = typer.Option(None, "--config", help="Alerter routing config (default: schemas/rules/routing.example.yaml)."),  # noqa: B008
        rules: Path = typer.Option(None, "--rules", help="Alert rules (default: schemas/rules/defaults.yaml)."),  # noqa: B008
    ) -> None:
        """Run processor, sink (+API) and alerter as child processes; Ctrl-C stops all of them."""
        from inferwatch.paths import repo_root
        from inferwatch.supervisor import ServiceFailed, Supervisor, cli_command, running_from_pid_files

        s = Settings()
        run_dir = _run_dir(s)
        already = running_from_pid_files(run_dir)
        if already:
            raise CliError(f"already running: {', '.join(already)} (see `inferwatch status`; `inferwatch down` stops them)")
        cfg = config or repo_root() / "schemas" / "rules" / "routing.example.yaml"
        from inferwatch.alerter.errors import ConfigError
        from inferwatch.alerter.route.routing import load_config

        try:
            # the alerter would refuse it after the others started (e.g. a receiver's secret_env unset)
            load_config(cfg)
        except ConfigError as exc:
            raise CliError(f"alerter configuration: {exc}") from None
        stop = {"flag": False}

        def handler(*_: Any) -> None:
            stop["flag"] = True

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, handler)
        run_dir.mkdir(parents=True, exist_ok=True)
        own_pid = run_dir / f"{_SUPERVISOR}.pid"
        own_pid.write_text(str(os.getpid()))
        with contextlib.ExitStack() as cleanup, Supervisor(run_dir, stop_timeout_s=20.0) as sup:
            cleanup.callback(own_pid.unlink, missing_ok=True)
            sup.start("processor", cli_command("run", "processor"))
            sup.start("sink", cli_command("run", "sink"))
            sup.start("alerter", cli_command("run", "alerter", "--config", str(cfg),
                                             *(["--rules", str(rules)] if rules else [])))
            typer.echo(f"processor, sink (API http://{s.api_host}:{s.api_port}) and alerter running; "
                       f"logs in {run_dir}; Ctrl-C stops them")
            try:
                while not stop["flag"]:
                    sup.check()
                    time.sleep(0.5)
            except ServiceFailed as exc:
                raise CliError(str(exc)) from None
            typer.echo("stopping...")

    @run_app.command("api")
    def run_api(
        host: str = typer.Option(None, help="Bind address (default INFERWATCH_API_HOST, 127.0.0.1)."),
        port: int = typer.Option(None, help="Port (default INFERWATCH_API_PORT, 8787)."),
    ) -> None:
        """Serve the HTTP API alone: /v1/query (ClickHouse server only), /v1/alerts, /v1/silences, /metrics, /healthz.

        With the embedded store the sink owns the data and serves this same API itself (`inferwatch run sink`);
        here, /v1/query is then left out.
        """
        import uvicorn

        from inferwatch.api.app import create_app
        from inferwatch.config import check_bind

        s = Settings()
        check_bind(host or s.api_host, s.api_token, "api")
        store = None
        if s.clickhouse_url:
            from inferwatch.store import open_store

            store = open_store(s)
        elif _api_base_answers(s) and (port is None or port == s.api_port):
            raise CliError(f"the sink already serves the API at http://{s.api_host}:{s.api_port} (embedded store)")
        else:
            typer.echo("embedded store: /v1/query is served by the sink (`inferwatch run sink`), not here", err=True)
        from inferwatch.api.status import kafka_answers

        checks = {"kafka": lambda: {"ok": kafka_answers(s, timeout_s=1.0), "bootstrap": s.kafka_bootstrap}}
        app = create_app(store, api_token=s.api_token, settings=s, health_checks=checks)
        uvicorn.run(app, host=host or s.api_host, port=port or s.api_port, log_level="warning")

    @app.command("demo")
    def demo(
        wall_s: float = typer.Option(100.0, help="Target wall seconds of the replay (simulated time is sped up to fit)."),
        minutes: int = typer.Option(20, help="Simulated minutes of traffic."),
        incident_at: int = typer.Option(10, help="Simulated minute at which the incidents start."),
        rate_per_min: int = typer.Option(600, help="Predictions per model per simulated minute."),
        data_dir: Path = typer.Option(Path(".inferwatch/demo"), help="Where the demo keeps Kafka, the store and logs (wiped at start)."),  # noqa: B008
        kafka: str = typer.Option(None, help="Use this Kafka instead of starting a native broker of the demo's own."),
        keep_running: bool = typer.Option(False, help="Keep the services and the API running after the replay, until Ctrl-C."),
    ) -> None:
        """Run the whole platform on a simulated fleet: four incidents and a healthy control, alerts as they arrive."""
        from inferwatch.demo.runner import DemoSettings, run_demo

        if incident_at >= minutes:
            raise CliError("--incident-at must be before the end (--minutes)")
        code = run_demo(DemoSettings(data_dir=data_dir, kafka_bootstrap=kafka, duration_s=minutes * 60,
                                    incident_at_s=incident_at * 60, rate_per_min=rate_per_min, wall_s=wall_s,
                                    keep_running=keep_running))
        raise typer.Exit(code)


_SUPERVISOR = "run-all"


def _terminate(pid: int, timeout_s: float) -> None:
    """SIGTERM one process (not its group: `run all` shares the caller's) and wait; SIGKILL after ``timeout_s``."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _api_base_answers(s: Settings) -> bool:
    from inferwatch.store.remote import api_answers

    return api_answers(f"http://{s.api_host}:{s.api_port}")
