"""Loggers of one process share a transport: sharing key, threads, reference counting, per-logger
counters, fork. No broker: the loggers point at a port nobody listens on (librdkafka keeps the
events queued; a short ``message.timeout.ms`` turns them into delivery failures, i.e. the spool).
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from inferwatch.sdk import InferenceLogger, shared
from inferwatch.sdk.logger import CLIENT_ID
from inferwatch.sdk.spool import Spool


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.fixture
def port() -> int:
    return _dead_port()


def _logger(port: int, spool: Path, model: str = "m", version: str = "1", **kw: Any) -> InferenceLogger:
    kw.setdefault("close_timeout_s", 0.2)
    kw.setdefault("replay_timeout_ms", 200)
    return InferenceLogger(model, version, bootstrap=f"127.0.0.1:{port}", spool_dir=spool, **kw)


def _close_all(loggers: list[InferenceLogger]) -> None:
    for lg in loggers:
        lg.close(0.2)


THREADS_CHILD = """
import os, sys, time
from inferwatch.sdk import InferenceLogger
def threads():
    return len(os.listdir("/proc/self/task"))
kw = dict(bootstrap=sys.argv[1], spool_dir=sys.argv[2], close_timeout_s=0.2)
first = InferenceLogger("model-0", "1", **kw)
time.sleep(0.5)  # let librdkafka start its threads
one = threads()
t0 = time.perf_counter()
rest = [InferenceLogger(f"model-{k}", "1", **kw) for k in range(1, 300)]
create_s = time.perf_counter() - t0
time.sleep(0.3)
print(one, threads(), len({lg._transport for lg in [first, *rest]}), first.stats()["transport_loggers"], create_s)
"""


def test_same_settings_share_one_transport_and_no_thread_per_logger(port: int, tmp_path: Path) -> None:
    # In a fresh process: the test process's thread count moves with other tests' producers.
    out = subprocess.run([sys.executable, "-c", THREADS_CHILD, f"127.0.0.1:{port}", str(tmp_path / "sp")],
                         capture_output=True, text=True, timeout=120, check=True)
    one, many, transports, loggers, create_s = out.stdout.split()
    assert int(many) == int(one) and int(transports) == 1 and int(loggers) == 300, out.stdout
    print(f"threads {one} with one logger, {many} with 300; {float(create_s) / 299 * 1e6:.0f} us per logger")


def test_different_settings_get_their_own_transport(port: int, tmp_path: Path) -> None:
    base = _logger(port, tmp_path / "a")
    others = [
        _logger(port, tmp_path / "b"),  # another spool directory
        _logger(_dead_port(), tmp_path / "a"),  # another bootstrap
        _logger(port, tmp_path / "a", topic_prefix="x."),  # other topics
        _logger(port, tmp_path / "a", producer_config={"linger.ms": 50}),  # another librdkafka setting
        _logger(port, tmp_path / "a", spool_max_bytes=1 << 20),
    ]
    same = [_logger(port, tmp_path / "a", "other-model", "2"), _logger(port, tmp_path / "a", producer_config={})]
    assert len({id(lg._transport) for lg in [base, *others]}) == 1 + len(others)
    assert all(lg._transport is base._transport for lg in same)
    assert base._transport.producer is not None and CLIENT_ID == "inferwatch-sdk"
    _close_all([base, *others, *same])


def test_an_unusable_spool_directory_means_no_spool_and_one_warning(
    port: int, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """Both users of :func:`shared.attach_transport` (a logger, the OTLP receiver) get a working
    transport without a spool when the directory cannot be made, and are told once."""
    from inferwatch.config import Settings
    from inferwatch.otlp.receiver import OtlpReceiver

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    caplog.set_level(logging.WARNING, logger="inferwatch.sdk")
    lg = _logger(port, blocker / "spool")
    rec = OtlpReceiver(Settings(kafka_bootstrap=f"127.0.0.1:{port}", data_dir=tmp_path / "d"), spool_dir=blocker / "o",
                       close_timeout_s=0.2)
    try:
        assert lg._transport.spool is None and rec.transport.spool is None
        assert lg._transport is not rec.transport  # another client id: another producer
        assert lg.prediction({"a": 1.0}, {"score": 0.5}) and lg.stats()["logged"] == 1
        warned = [r.getMessage() for r in caplog.records if "running without a spool" in r.getMessage()]
        assert len(warned) == 2 and all(str(blocker) in w for w in warned), warned
    finally:
        lg.close(0.2)
        rec.close()


def test_close_of_one_logger_leaves_the_others_the_last_closes(port: int, tmp_path: Path) -> None:
    loggers = [_logger(port, tmp_path / "sp", f"model-{k}") for k in range(10)]
    t = loggers[0]._transport
    for lg in loggers[:9]:
        lg.close(5.0)  # not the last: returns at once, whatever the timeout (the broker is away)
    assert not t.closed and t in shared.transports()
    assert loggers[9].prediction({"a": 1.0}, {"score": 0.5})
    assert loggers[9].stats()["logged"] == 1 and loggers[9].stats()["transport_loggers"] == 1
    loggers[9].close(0.2)
    assert t.closed and t not in shared.transports()
    # A logger created afterwards gets a fresh transport that owns the same spool directory again.
    again = _logger(port, tmp_path / "sp")
    assert again._transport is not t
    assert again._transport.spool is not None and again._transport.spool.directory == (tmp_path / "sp").absolute()
    again.close(0.2)


def _wait_for(cond: Any, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.02)
    return bool(cond())


def test_a_garbage_collected_logger_releases_its_lane(port: int, tmp_path: Path) -> None:
    keep = _logger(port, tmp_path / "sp")
    gone = _logger(port, tmp_path / "sp", "other")
    assert keep.stats()["transport_loggers"] == 2
    del gone
    assert _wait_for(lambda: keep.stats()["transport_loggers"] == 1)  # by the delivery thread
    keep.close(0.2)


def test_the_last_collected_logger_closes_the_transport(port: int, tmp_path: Path) -> None:
    lg = _logger(port, tmp_path / "sp")
    t = lg._transport
    del lg
    assert _wait_for(lambda: t.closed) and t not in shared.transports()


def test_a_finalizer_run_while_the_thread_holds_the_registry_lock_does_not_deadlock(
    port: int, tmp_path: Path
) -> None:
    """The cyclic GC runs finalizers inside any allocation, also inside the SDK's own critical
    sections; a finalizer that took the registry's lock there would wait for itself forever."""
    keep = _logger(port, tmp_path / "sp")
    lg = _logger(port, tmp_path / "sp", "other")
    fin = lg._finalizer
    done = threading.Event()

    def collect_inside_critical_section() -> None:
        with shared._lock:  # as if the GC ran while this thread was inside shared.attach()
            fin()
        done.set()

    threading.Thread(target=collect_inside_critical_section, daemon=True).start()
    assert done.wait(5.0), "the finalizer deadlocked on the registry lock"
    assert _wait_for(lambda: keep.stats()["transport_loggers"] == 1)
    keep.close(0.2)


def test_failures_are_counted_for_the_logger_that_logged_them(port: int, tmp_path: Path) -> None:
    # Same model, two versions (an A/B pair): same message key, so only the event id tells them apart.
    a = _logger(port, tmp_path / "sp", "ranker", "a", producer_config={"message.timeout.ms": 300})
    b = _logger(port, tmp_path / "sp", "ranker", "b", producer_config={"message.timeout.ms": 300})
    assert a._transport is b._transport
    for _ in range(3):
        a.prediction({"x": 1.0}, {"score": 0.5})
    for _ in range(5):
        b.prediction({"x": 1.0}, {"score": 0.5})
    b.feedback("p1", label="y")
    deadline = time.monotonic() + 20
    while a.stats()["transport_spooled"] < 9 and time.monotonic() < deadline:
        time.sleep(0.05)
    sa, sb = a.stats(), b.stats()
    assert (sa["logged"], sa["failed"], sa["spooled"], sa["delivered"]) == (3, 3, 3, 0), sa
    assert (sb["logged"], sb["failed"], sb["spooled"], sb["delivered"]) == (6, 6, 6, 0), sb
    assert sa["transport_spooled"] == sa["transport_failed"] == 9 and sa["transport_logged"] == 9
    a.close(0.2)
    b.prediction({"x": 1.0}, {"score": 0.5})  # a closed: b still logs
    b.close(0.2)  # the last one: the queued event is purged into the spool
    assert b.stats()["spooled"] == 7
    # One spool for both loggers, each record still naming its model version.
    sp = Spool(tmp_path / "sp", max_bytes=0)
    batch = sp.read_batch(max_records=100)
    sp.close()
    versions = [orjson.loads(r.value).get("model_version") for r in batch.records]
    assert versions.count("a") == 3 and versions.count("b") == 6


def test_an_outage_is_reported_once_per_transport_not_per_logger(
    port: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    loggers = [_logger(port, tmp_path / "sp", f"model-{k}", producer_config={"message.timeout.ms": 300})
               for k in range(100)]
    for r in range(3):
        for lg in loggers:
            lg.prediction({"round": float(r)}, {"score": 0.5})
    deadline = time.monotonic() + 20
    while loggers[0].stats()["transport_spooled"] < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    st = loggers[0].stats()
    _close_all(loggers)
    assert st["transport_spooled"] == 300 and st["transport_outages"] == 1, st
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    text = "\n".join(r.getMessage() for r in lines)
    assert len(lines) == 2, text  # down, spooling
    assert "unreachable" in lines[0].getMessage() and "100 loggers share this transport" in lines[0].getMessage()
    assert "spooling events to" in lines[1].getMessage()
    assert st["transport_warnings"] == 2


def test_loggers_poll_at_staggered_points(port: int, tmp_path: Path) -> None:
    """With events spread round-robin over many loggers, the logging thread still serves delivery
    reports about once per 256 events of the transport (not 1,000 polls in one round, then none)."""
    loggers = [_logger(port, tmp_path / "sp", f"model-{k}") for k in range(512)]
    t = loggers[0]._transport
    polls = []
    for _ in range(8):
        before = t._hot_polls
        for lg in loggers:
            lg.prediction({"x": 1.0}, {"score": 0.5})
        polls.append(t._hot_polls - before)
    _close_all(loggers)
    assert sum(polls) == 16  # 4096 events / 256
    assert max(polls) <= 4, polls  # spread: never all 512 loggers in one round


def test_settings_from_the_environment_are_read_again_when_it_changes(
    port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFERWATCH_KAFKA_BOOTSTRAP", f"127.0.0.1:{port}")
    monkeypatch.setenv("INFERWATCH_TOPIC_PREFIX", "one.")
    a = InferenceLogger("m", "1", spool_dir=tmp_path / "sp", close_timeout_s=0.2)
    monkeypatch.setenv("INFERWATCH_TOPIC_PREFIX", "two.")
    b = InferenceLogger("m", "1", spool_dir=tmp_path / "sp", close_timeout_s=0.2)
    assert a.predictions_topic.startswith("one.") and b.predictions_topic.startswith("two.")
    assert a._transport is not b._transport
    _close_all([a, b])


def test_a_forked_child_gets_its_own_transport(port: int, tmp_path: Path) -> None:
    parent_logger = _logger(port, tmp_path / "sp")
    parent_t = parent_logger._transport
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what it sees through the pipe, then leave without cleanup
        code = 1
        try:
            inherited_empty = shared.transports() == []
            t0 = time.monotonic()
            parent_logger.close(5.0)  # inherited: must not flush or close the parent's producer
            quick = time.monotonic() - t0 < 1.0
            child_logger = _logger(port, tmp_path / "sp")
            fresh = child_logger._transport is not parent_t and child_logger._transport.pid == os.getpid()
            child_logger.prediction({"a": 1.0}, {"score": 0.5})
            logged = child_logger.stats()["logged"] == 1
            child_logger.close(0.2)
            os.write(w, orjson.dumps([inherited_empty, quick, fresh, logged]))
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    got = orjson.loads(os.read(r, 1000))
    os.close(r)
    assert os.waitstatus_to_exitcode(status) == 0
    assert got == [True, True, True, True]
    # The parent's transport is untouched by the child.
    assert not parent_t.closed and parent_t in shared.transports()
    assert parent_logger.prediction({"a": 1.0}, {"score": 0.5})
    parent_logger.close(0.2)
