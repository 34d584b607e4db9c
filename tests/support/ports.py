"""Ports for the test's own servers on 127.0.0.1."""

from __future__ import annotations

import random
import socket


def free_port() -> int:
    """A free port BELOW the ephemeral range: a client connecting to a closed ephemeral port on
    localhost can connect to itself (TCP simultaneous open) and then hold the port."""
    for _ in range(200):
        port = random.randint(20_000, 30_000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")
