"""``inferwatch``: the command line. Each ``cmd_*.py`` module adds its commands with ``register``.

Errors are one clear line on stderr and a non-zero exit code; ``--verbose`` shows the traceback.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from inferwatch.cli import common

app = typer.Typer(
    name="inferwatch",
    help="Inferwatch: watch machine-learning models in production.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
run_app = typer.Typer(help="Run one service in the foreground (processor, sink, alerter, api, all).", no_args_is_help=True)
app.add_typer(run_app, name="run")


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks and debug logs.")) -> None:
    common.STATE.verbose = verbose
    common.setup_logging(verbose)


def _register_all() -> None:
    import inferwatch.cli as pkg

    for mod in sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if m.name.startswith("cmd_")):
        importlib.import_module(f"inferwatch.cli.{mod}").register(app, run_app)


_register_all()


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except common.CliError as exc:
        common.fail(str(exc))
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # one clear line unless --verbose
        if common.STATE.verbose:
            raise
        common.fail(f"{type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main()
