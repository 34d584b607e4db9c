"""``inferwatch run otlp``: the OTLP/HTTP traces receiver (model-call spans → prediction.v1 events)."""

from __future__ import annotations

from pathlib import Path

import typer

from inferwatch.cli.common import CliError
from inferwatch.config import Settings

DEFAULT_PORT = 4318
"""OTLP/HTTP's registered port: exporters default to it."""


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    """Add ``inferwatch run otlp``."""

    @run_app.command("otlp")
    def run_otlp(
        host: str = typer.Option(None, help="Bind address (default INFERWATCH_API_HOST, 127.0.0.1)."),
        port: int = typer.Option(DEFAULT_PORT, help="Port (4318 is what OTLP/HTTP exporters send to)."),
        config: Path = typer.Option(None, "--config", help="Mapping config (YAML, see docs/otlp.md); defaults otherwise."),  # noqa: B008
    ) -> None:
        """Receive OTLP/HTTP traces on POST /v1/traces; model-call spans become predictions on Kafka."""
        import uvicorn

        from inferwatch.config import check_bind
        from inferwatch.otlp.config import load_mapping
        from inferwatch.otlp.errors import ConfigError
        from inferwatch.otlp.http import create_otlp_app
        from inferwatch.otlp.receiver import OtlpReceiver

        s = Settings()
        bind = host or s.api_host
        check_bind(bind, s.api_token, "otlp")
        try:
            mapping = load_mapping(config)
        except ConfigError as exc:
            raise CliError(str(exc)) from None
        receiver = OtlpReceiver(s, mapping)
        try:
            typer.echo(f"OTLP receiver on http://{bind}:{port}/v1/traces → {s.predictions_topic}", err=True)
            uvicorn.run(create_otlp_app(s, receiver), host=bind, port=port, log_level="warning")
        finally:
            receiver.close()
