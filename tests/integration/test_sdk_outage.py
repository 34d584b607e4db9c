"""The SDK when Kafka goes away: a 20 s broker outage, and a process killed with a full spool.

Both tests start their OWN native broker (never stopping the session one).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from inferwatch import InferenceLogger
from inferwatch.config import Settings
from inferwatch.infra.kafka_native import NativeKafka, free_port
from inferwatch.kafka.admin import apply_topics
from tests.support.kafka import consume_all, new_prefix

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
# Short timeouts so an unreachable broker turns into spooling (and a probe into a retry) quickly.
FAST_FAIL = {"message.timeout.ms": 4000}


def _event_ids(bootstrap: str, topic: str, expected: int) -> list[str]:
    msgs = consume_all(bootstrap, topic, expected, timeout_s=90)
    return [orjson.loads(m.value())["event_id"] for m in msgs]


def test_a_20s_outage_loses_nothing(own_broker: NativeKafka, tmp_path: Path) -> None:
    s = Settings(kafka_bootstrap=own_broker.bootstrap, topic_prefix=new_prefix(), data_dir=tmp_path / "d")
    apply_topics(s)
    log = InferenceLogger("m", "1", settings=s, spool_dir=tmp_path / "spool", producer_config=FAST_FAIL,
                          replay_timeout_ms=3000)
    sent: list[str] = []

    def log_for(seconds: float, rate_per_s: int = 1000) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for _ in range(rate_per_s // 20):
                sent.append(log.prediction({"x": len(sent)}, {"score": 0.5}))
            time.sleep(0.05)

    log_for(3)
    own_broker.stop()
    log_for(20)  # logging continues while the broker is away
    during = log.stats()
    own_broker.start(timeout_s=120)
    log_for(3)
    deadline = time.monotonic() + 90
    while not log.flush(5) and time.monotonic() < deadline:
        pass
    stats = log.stats()
    log.close()
    assert during["spooled"] > 0, during  # the outage really went through the spool
    assert stats["dropped"] == 0, stats
    ids = _event_ids(own_broker.bootstrap, s.predictions_topic, len(sent))
    assert set(ids) == set(sent), f"missing {len(set(sent) - set(ids))} of {len(sent)}; stats {stats}"
    duplicates = len(ids) - len(set(ids))
    print(f"outage: {len(sent)} events, {duplicates} duplicates, stats {stats}")


CHILD = """
import sys, time
sys.path.insert(0, {root!r})
from inferwatch import InferenceLogger
log = InferenceLogger("m", "1", bootstrap={bootstrap!r}, topic_prefix={prefix!r}, spool_dir={spool!r},
                      producer_config={{"message.timeout.ms": 1000}}, close_timeout_s=0.1)
ids = [log.prediction({{"i": i}}, {{"label": "a"}}) for i in range({n})]
open({ids_file!r}, "w").write("\\n".join(ids))
while log.stats()["spooled"] < {n}:
    time.sleep(0.05)
print("ready", flush=True)
time.sleep(600)
"""


def test_a_killed_process_spool_is_replayed_by_the_next_one(own_broker: NativeKafka, tmp_path: Path) -> None:
    s = Settings(kafka_bootstrap=own_broker.bootstrap, topic_prefix=new_prefix(), data_dir=tmp_path / "d")
    apply_topics(s)
    n, spool, ids_file = 5000, tmp_path / "spool", tmp_path / "ids.txt"
    dead_port = free_port()  # nobody listens: every event ends in the spool
    code = CHILD.format(root=str(ROOT / "services"), bootstrap=f"127.0.0.1:{dead_port}", prefix=s.topic_prefix,
                        spool=str(spool), n=n, ids_file=str(ids_file))
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()  # bounded: the child waits ≤ message.timeout.ms + poll
        assert line.strip() == "ready"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert any(spool.glob("seg-*.spool"))
    sent = ids_file.read_text().split()
    with InferenceLogger("m", "1", settings=s, spool_dir=spool) as log:
        deadline = time.monotonic() + 60
        while log.stats()["replayed"] < n and time.monotonic() < deadline:
            time.sleep(0.2)
        stats: dict[str, Any] = log.stats()
    assert stats["replayed"] == n, stats
    ids = _event_ids(own_broker.bootstrap, s.predictions_topic, n)
    assert set(ids) == set(sent) and len(ids) == n
    assert not any(spool.glob("seg-*.spool"))
