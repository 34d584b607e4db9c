"""An alert's identity: a stable hash of its sorted labels (same labels, same fingerprint, any process)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping


def fingerprint(labels: Mapping[str, str]) -> str:
    """16 hex characters of SHA-256 over the sorted ``name\\xffvalue\\xff`` pairs."""
    h = hashlib.sha256()
    for k in sorted(labels):
        # \xff cannot occur in UTF-8 text, so no two label sets encode to the same bytes
        h.update(k.encode() + b"\xff" + str(labels[k]).encode() + b"\xff")
    return h.hexdigest()[:16]


def group_key(route_path: str, group_labels: Mapping[str, str]) -> str:
    """Alertmanager's group key: the route's matcher path, then the group labels: ``{}/{a="b"}:{model="m"}``."""
    inner = ", ".join(f'{k}="{group_labels[k]}"' for k in sorted(group_labels))
    return f"{route_path}:{{{inner}}}"
