"""Shared CLI plumbing: the verbose flag, logging set-up, and one-line errors."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import NoReturn


class CliError(Exception):
    """An error to show the user as one line, exit code 1."""


@dataclass
class _State:
    verbose: bool = False


STATE = _State()


def setup_logging(verbose: bool) -> None:
    """Log to stderr: INFO by default, DEBUG with --verbose."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)
