"""``inferwatch topics apply|list``: create or update the registry's topics on the cluster."""

from __future__ import annotations

import typer

from inferwatch.config import Settings


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    """Add the ``topics`` commands."""
    topics = typer.Typer(help="Kafka topics from the registry in schemas/topics/.", no_args_is_help=True)
    app.add_typer(topics, name="topics")

    @topics.command("apply")
    def apply(
        timeout_s: float = typer.Option(30.0, help="How long to wait for the cluster."),
        environment: str = typer.Option(
            None, "--environment", "-e",
            help="Replication settings to apply: dev or cluster (default: INFERWATCH_KAFKA_ENVIRONMENT, "
                 "else cluster with 3+ brokers, dev otherwise)."),
        strict: bool = typer.Option(
            False, "--strict", help="Exit 1 when the cluster still differs (replication factor, partitions)."),
    ) -> None:
        """Create missing topics, raise partition counts and set configs, idempotently.

        What it cannot change (a replication factor, fewer partitions) is printed, one line per
        topic with how to change it; the exit code is 0 unless --strict.
        """
        from inferwatch.kafka.admin import apply_topics

        s = Settings()
        rep = apply_topics(s, timeout_s=timeout_s, environment=environment)
        typer.echo(f"environment {rep.environment} ({rep.brokers} broker(s))")
        for name in rep.created:
            typer.echo(f"created   {name}")
        for name in rep.updated:
            typer.echo(f"updated   {name}")
        for name in rep.unchanged:
            typer.echo(f"unchanged {name}")
        for w in rep.warnings:
            typer.echo(f"warning   {w}", err=True)
        for m in rep.replication:
            typer.echo(f"not applied {m}", err=True)
        if strict and rep.not_applied:
            typer.echo(f"--strict: {len(rep.not_applied)} difference(s) from the registry left", err=True)
            raise typer.Exit(1)

    @topics.command("list")
    def list_() -> None:
        """Show the registry: topic, partitions, retention, schema."""
        from inferwatch.contract.topics import load_registry

        s = Settings()
        for spec in load_registry().values():
            days = spec.retention_ms / 86_400_000
            rf = "  ".join(f"{env} rf {r.factor}/isr {r.min_insync_replicas}" for env, r in spec.replication.items())
            typer.echo(f"{spec.full_name(s.topic_prefix):<40} {spec.partitions:>3} partitions  {days:>5.1f} d  "
                       f"{spec.schema_:<20} {rf}")
