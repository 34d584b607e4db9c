"""Where the project's data files (schemas, migrations, rules, infra scripts) live."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The repository root: ``INFERWATCH_REPO_ROOT`` if set, else found from this file."""
    env = os.environ.get("INFERWATCH_REPO_ROOT")
    if env:
        return Path(env)
    # services/inferwatch/paths.py -> repo root is two folders above services/
    return Path(__file__).resolve().parents[2]


def schemas_dir() -> Path:
    """The ``schemas/`` folder: the contract between hops."""
    return repo_root() / "schemas"
