"""``inferwatch topics apply|list``: create or update the registry's topics on the cluster."""

from __future__ import annotations

import typer

from inferwatch.config import Settings


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    """Add the ``topics`` commands."""
    topics = typer.Typer(help="Kafka topics from the registry in schemas/topics/.", no_args_is_help=True)
    app.add_typer(topics, name="topics")

    @topics.command("apply")
    def apply(timeout_s: float = typer.Option(30.0, help="How long to wait for the cluster.")) -> None:
        """Create missing topics, raise partition counts and set configs, idempotently."""
        from inferwatch.kafka.admin import apply_topics

        s = Settings()
        rep = apply_topics(s, timeout_s=timeout_s)
        for name in rep.created:
            typer.echo(f"created   {name}")
        for name in rep.updated:
            typer.echo(f"updated   {name}")
        for name in rep.unchanged:
            typer.echo(f"unchanged {name}")
        for w in rep.warnings:
            typer.echo(f"warning   {w}", err=True)

    @topics.command("list")
    def list_() -> None:
        """Show the registry: topic, partitions, retention, schema."""
        from inferwatch.contract.topics import load_registry

        s = Settings()
        for spec in load_registry().values():
            days = spec.retention_ms / 86_400_000
            typer.echo(f"{spec.full_name(s.topic_prefix):<40} {spec.partitions:>3} partitions  {days:>5.1f} d  {spec.schema_}")
