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
    """The ``schemas/`` folder: the contract between hops.

    From a source checkout (or ``INFERWATCH_REPO_ROOT``) it is ``<root>/schemas``; an installed
    wheel carries a copy as ``inferwatch/_data/schemas`` (see ``setup.py``).
    """
    in_tree = repo_root() / "schemas"
    if in_tree.is_dir() or os.environ.get("INFERWATCH_REPO_ROOT"):
        return in_tree
    packaged = Path(__file__).resolve().parent / "_data" / "schemas"
    if packaged.is_dir():
        return packaged
    raise FileNotFoundError(
        f"Inferwatch's schemas/ folder is missing: neither {in_tree} nor {packaged} exists. "
        "Reinstall Inferwatch, or set INFERWATCH_REPO_ROOT to a checkout of the repository."
    )
