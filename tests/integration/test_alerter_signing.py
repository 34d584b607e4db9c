"""Signed means signed, end to end: the alerter refuses to start with a receiver whose secret
variable is unset, and a hot reload with such a receiver is rejected while the running
configuration keeps delivering signed notifications (real broker, real local receivers)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferwatch.alerter.notification.webhook_receiver import LocalReceiver
from inferwatch.alerter.route.routing import load_config
from inferwatch.alerter.service import AlerterService
from inferwatch.config import Settings
from tests.support.alerter import RULES, produce, snapshot

pytestmark = pytest.mark.integration

VAR = "INFERWATCH_IT_SIGNING_KEY"


def write_config(path: Path, url: str, secret_env: str) -> None:
    path.write_text(yaml.safe_dump({
        "http": {"port": 0}, "start_from": "earliest",
        "delivery": {"backoff_initial_s": 0.05, "backoff_max_s": 1, "timeout_s": 2},
        "route": {"receiver": "oncall", "group_by": ["model"], "group_wait": 0, "group_interval": "1s",
                  "repeat_interval": "1h"},
        "receivers": [{"name": "oncall", "url": url, "secret_env": secret_env}],
    }))
    st = path.stat()  # a visibly new mtime even where the clock is coarse
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def wait_until(pred: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_alerter_refuses_to_start_with_an_unset_secret(tmp_path: Path) -> None:
    cfg, rules = tmp_path / "alerter.yaml", tmp_path / "rules.yaml"
    write_config(cfg, "http://127.0.0.1:1/hook", VAR)
    rules.write_text(RULES)
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERWATCH_") and k != VAR}
    env.update(INFERWATCH_DATA_DIR=str(tmp_path / "data"), INFERWATCH_KAFKA_BOOTSTRAP="127.0.0.1:1")
    for value in (None, ""):
        if value is not None:
            env[VAR] = value
        done = subprocess.run([sys.executable, "-m", "inferwatch.cli.main", "run", "alerter", "--config", str(cfg),
                               "--rules", str(rules)], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode != 0
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "receiver 'oncall'" in lines[0] and VAR in lines[0] and ("unset" if value is None else "empty") in lines[0]


def test_run_all_checks_the_alerter_configuration_before_starting_anything(tmp_path: Path) -> None:
    cfg = tmp_path / "alerter.yaml"
    write_config(cfg, "http://127.0.0.1:1/hook", VAR)
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERWATCH_") and k != VAR}
    env.update(INFERWATCH_DATA_DIR=str(tmp_path / "data"), INFERWATCH_KAFKA_BOOTSTRAP="127.0.0.1:1")
    done = subprocess.run([sys.executable, "-m", "inferwatch.cli.main", "run", "all", "--config", str(cfg)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "alerter configuration" in done.stderr and VAR in done.stderr, done.stderr
    assert not (tmp_path / "data" / "run").exists()  # no service was started


@pytest.mark.timeout(180)
def test_hot_reload_with_an_unset_secret_keeps_the_signed_configuration(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VAR, "key-one")
    monkeypatch.delenv(VAR + "_NEW", raising=False)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    cfg = tmp_path / "alerter.yaml"
    with LocalReceiver(secret="key-one") as first, LocalReceiver(secret="key-two") as second:
        write_config(cfg, first.url, VAR)
        svc = AlerterService(settings, rules, load_config(cfg), config_path=cfg).start_in_thread()
        try:
            assert svc.config_watcher is not None
            produce(settings, [("a", snapshot("a", 0, 0.5))])
            assert first.wait_for(lambda rs: len(rs) >= 1, 60)

            # the new file names an unset variable: rejected, the running configuration stays
            write_config(cfg, second.url, VAR + "_NEW")
            assert wait_until(lambda: svc.config_watcher.last_error is not None, 15)
            assert "'oncall'" in svc.config_watcher.last_error and VAR + "_NEW" in svc.config_watcher.last_error
            produce(settings, [("b", snapshot("b", 0, 0.5))])
            assert first.wait_for(lambda rs: any(b'"b"' in r.body for r in rs), 60)
            assert second.requests == []

            # once the variable is set, the same file is accepted and the new key signs
            monkeypatch.setenv(VAR + "_NEW", "key-two")
            write_config(cfg, second.url, VAR + "_NEW")
            assert wait_until(lambda: svc.config_watcher.reloads == 1, 15)
            assert svc.config_watcher.last_error is None
            produce(settings, [("c", snapshot("c", 0, 0.5))])
            assert second.wait_for(lambda rs: len(rs) >= 1, 60)
        finally:
            svc.join()
    assert first.requests and all(r.signature_ok for r in first.requests)
    assert second.requests and all(r.signature_ok for r in second.requests)
    assert all(b'"c"' not in r.body for r in first.requests)
