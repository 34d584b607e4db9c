"""``inferwatch run alerter``, ``inferwatch alerts list``, ``inferwatch silence add|list|expire``.

The alerts and silence commands work on the alerter's state database under ``INFERWATCH_DATA_DIR``
directly, so they work whether or not the alerter is running (it picks changes up within a tick).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer

from inferwatch.cli.common import CliError


def _ts(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    """Add the alerter commands."""
    from inferwatch.config import Settings

    @run_app.command("alerter")
    def run_alerter(
        rules: Path = typer.Option(None, "--rules", help="Rule file or directory (default: schemas/rules/defaults.yaml)."),
        config: Path = typer.Option(..., "--config", help="Routing/receiver configuration YAML."),
        http_port: int = typer.Option(
            None, "--http-port", min=0, max=65535,
            help="Port of the alerter's API instead of the configuration's http.port (0 = off): lets "
                 "several alerters share one configuration file."),
        data_dir: Path = typer.Option(
            None, "--data-dir", help="Local state directory instead of INFERWATCH_DATA_DIR (one per alerter)."),
    ) -> None:
        """Run the alerter in the foreground (Ctrl-C stops it; pending notifications resume next start).

        Several alerters may run at once in one consumer group (same INFERWATCH_TOPIC_PREFIX): Kafka
        splits the metrics partitions between them, and each holds the alert state of its partitions."""
        from inferwatch.alerter.errors import ConfigError
        from inferwatch.alerter.evaluation.rules import RuleErrors, default_rules_path
        from inferwatch.alerter.route.routing import load_config
        from inferwatch.alerter.service import AlerterService
        from inferwatch.config import check_bind

        try:
            cfg = load_config(config)  # a receiver's unset or empty secret_env stops the start here
            if http_port is not None:
                cfg = cfg.model_copy(update={"http": cfg.http.model_copy(update={"port": http_port})})
            s = Settings() if data_dir is None else Settings(data_dir=data_dir)
            if cfg.http.port != 0:
                check_bind(cfg.http.host, s.api_token, "alerter http")
            svc = AlerterService(s, rules or default_rules_path(), cfg, config_path=config)
        except (ConfigError, RuleErrors) as exc:
            raise CliError(str(exc)) from None
        # the alerter's own topics (its state changelog and the silences), as the processor makes its
        # internal ones: an alerter upgraded in place finds them without a separate `topics apply`
        from inferwatch.contract.topics import INTERNAL_TOPICS, load_registry
        from inferwatch.kafka.admin import apply_topics
        from inferwatch.kafka.errors import KafkaUnavailableError, TopicApplyError

        try:
            reg = load_registry()
            apply_topics(s, {name: reg[name] for name in INTERNAL_TOPICS if name.startswith("inferwatch.alerter")})
        except (KafkaUnavailableError, TopicApplyError) as exc:
            raise CliError(f"alerter topics: {exc}") from None
        typer.echo(f"alerter: {len(svc.watcher.rules)} rules, {len(cfg.receivers)} receivers, "
                   f"http {cfg.http.host}:{cfg.http.port}", err=True)
        try:
            svc.run_forever()
        except KeyboardInterrupt:
            svc.stop()

    def _store():  # type: ignore[no-untyped-def]
        from inferwatch.alerter.lifecycle.state import AlertStore, state_path

        return AlertStore(state_path(Settings().data_dir))

    alerts = typer.Typer(help="Alerts of the alerter.", no_args_is_help=True)
    app.add_typer(alerts, name="alerts")

    @alerts.command("list")
    def alerts_list(
        state: list[str] = typer.Option(["pending", "firing"], "--state", help="pending, firing, resolved"),  # noqa: B008
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Show the current alerts."""
        from inferwatch.alerter.http import alerts_view

        rows = alerts_view(_store(), state)
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        if not rows:
            typer.echo("no alerts")
        for a in rows:
            muted = " (silenced)" if a["silenced_by"] else ""
            typer.echo(f"{a['state']:<8} {a['severity']:<8} {a['rule']:<28} {a['model']}@{a['model_version']} "
                       f"{a['segment'] or 'whole'}  since {_ts(a['starts_at_ms'] or a['active_since_ms'])}{muted}")
            summary = a["annotations"].get("summary")
            if summary:
                typer.echo(f"         {summary}")

    silence = typer.Typer(help="Silences: mute matching alerts for a while.", no_args_is_help=True)
    app.add_typer(silence, name="silence")

    @silence.command("add")
    def silence_add(
        matchers: list[str] = typer.Argument(..., help='Matchers, e.g. model="photo-verifier" severity!="critical"'),  # noqa: B008
        duration: str = typer.Option("2h", "--duration", "-d", help="How long, e.g. 30m, 2h."),
        created_by: str = typer.Option(..., "--created-by", "-a"),
        comment: str = typer.Option("", "--comment", "-c"),
    ) -> None:
        """Create a silence; prints its id."""
        from inferwatch.alerter.errors import MatcherError
        from inferwatch.alerter.evaluation.durations import parse_duration_s
        from inferwatch.alerter.silence.silences import new_silence
        from inferwatch.clock import now_ms

        try:
            s = new_silence(matchers, now_ms() + int(parse_duration_s(duration) * 1000), created_by, comment)
        except (MatcherError, ValueError) as exc:
            raise CliError(str(exc)) from None
        _store().add_silence(s)
        typer.echo(s.id)

    @silence.command("list")
    def silence_list(
        include_expired: bool = typer.Option(False, "--expired", help="Include expired silences."),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """List silences."""
        rows = [s.as_dict() for s in _store().silences(include_expired=include_expired)]
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        if not rows:
            typer.echo("no silences")
        for s in rows:
            typer.echo(f"{s['id']}  {s['status']:<8} until {_ts(s['ends_at'])}  by {s['created_by']}  "
                       f"{' '.join(s['matchers_text'])}  {s['comment']}")

    @silence.command("expire")
    def silence_expire(silence_id: str = typer.Argument(...)) -> None:
        """End a silence now."""
        from inferwatch.alerter.errors import SilenceNotFound

        try:
            _store().expire_silence(silence_id)
        except SilenceNotFound:
            raise CliError(f"no silence {silence_id}") from None
        typer.echo(f"expired {silence_id}")
