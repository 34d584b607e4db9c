"""The embedded store has one owner: a second sink on the same data directory is refused clearly.

chDB locks its data directory to one process (issue #13: "the embedded store stays single-owner and
says so clearly when a second sink tries to open it"). The first owner here is this test process
(what ``inferwatch run sink`` holds); the second is a real ``inferwatch run sink`` process on the
same data directory. It must exit non-zero at once with one line that names the cause and the way
out (query through the owner's HTTP API, or use a ClickHouse server for several sinks), not a
traceback, and without having touched the owner's data.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from inferwatch.store.embedded import EmbeddedStore

pytestmark = pytest.mark.integration


def test_a_second_sink_on_the_same_embedded_store_is_refused_with_one_clear_line(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "chdb") as owner:  # closed after: chDB keeps one store per process
        _refuse_second_owner(owner, tmp_path)


def _refuse_second_owner(owner: EmbeddedStore, tmp_path: Path) -> None:
    owner.migrate()
    before = owner.query("SELECT count() AS n FROM predictions").rows
    env = {
        **os.environ,
        "INFERWATCH_DATA_DIR": str(tmp_path),
        # A broker address nobody listens on: the refusal must come from the store, before Kafka.
        "INFERWATCH_KAFKA_BOOTSTRAP": "127.0.0.1:1",
    }
    env.pop("INFERWATCH_CLICKHOUSE_URL", None)
    proc = subprocess.run(
        [sys.executable, "-m", "inferwatch.cli.main", "run", "sink", "--no-serve"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    last = out.strip().splitlines()[-1]
    assert "owned by another process" in last and "INFERWATCH_CLICKHOUSE_URL" in last, out
    assert "Traceback" not in out, out
    assert owner.query("SELECT count() AS n FROM predictions").rows == before
