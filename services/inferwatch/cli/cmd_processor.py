"""``inferwatch run processor`` and ``inferwatch reference upload``: the stream processor's commands."""

from __future__ import annotations

from pathlib import Path

import typer

from inferwatch.cli.common import CliError
from inferwatch.config import Settings


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    """Add the processor commands."""

    @run_app.command("processor")
    def run_processor() -> None:
        """Run one processor worker (faust) in the foreground; settings from INFERWATCH_PROCESSOR_* env vars."""
        from inferwatch.processor.app import run_worker
        from inferwatch.processor.settings import ProcessorSettings

        run_worker(Settings(), ProcessorSettings())

    ref = typer.Typer(help="Reference profiles that drift is measured against.", no_args_is_help=True)
    app.add_typer(ref, name="reference")

    @ref.command("upload")
    def upload(
        model: str = typer.Option(..., help="Model name."),
        version: str = typer.Option(..., help="Model version."),
        file: Path = typer.Option(..., exists=True, dir_okay=False, help="Training data: .parquet or .csv."),
        features: str = typer.Option("", help="Comma-separated feature columns (default: all other columns)."),
        segments: str = typer.Option("", help="Comma-separated segment columns."),
        label: str = typer.Option("", help="True label column."),
        prediction: str = typer.Option("", help="Predicted label column."),
        score: str = typer.Option("", help="Score column."),
    ) -> None:
        """Build a reference profile from a dataframe and publish it (key model@version)."""
        import pandas as pd
        from confluent_kafka import Producer

        from inferwatch.kafka.clientconf import base_config
        from inferwatch.processor.reference import build_reference_profile
        from inferwatch.processor.settings import ProcessorSettings
        from inferwatch.processor.topics import ensure_topics, references_topic

        if file.suffix == ".parquet":
            df = pd.read_parquet(file)
        elif file.suffix == ".csv":
            df = pd.read_csv(file)
        else:
            raise CliError(f"{file}: expected a .parquet or .csv file")
        split = lambda s: [x.strip() for x in s.split(",") if x.strip()]  # noqa: E731
        prof = build_reference_profile(
            df, model, version, features=split(features) or None, segment_columns=split(segments),
            label_column=label or None, prediction_column=prediction or None, score_column=score or None)
        s = Settings()
        ensure_topics(s, ProcessorSettings())
        p = Producer({**base_config(s), "message.max.bytes": 16_000_000})
        p.produce(references_topic(s), key=prof.key.encode(), value=prof.to_bytes())
        if p.flush(30) != 0:
            raise CliError("the reference profile was not acknowledged by Kafka within 30 s")
        typer.echo(f"uploaded reference {prof.key}: {len(df)} rows")
