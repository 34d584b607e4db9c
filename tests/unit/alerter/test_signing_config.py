"""Signed means signed: a receiver's secret must resolve when the configuration is loaded, at
start-up and on hot reload; unsigned delivery needs an explicit ``signing: none``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferwatch.alerter.errors import ConfigError
from inferwatch.alerter.evaluation.rulewatch import ConfigWatcher, apply_config
from inferwatch.alerter.lifecycle.state import AlertStore
from inferwatch.alerter.route.dispatch import Dispatcher
from inferwatch.alerter.route.inhibit import InhibitRule
from inferwatch.alerter.route.routing import compile_route, load_config, parse_config

VAR = "INFERWATCH_TEST_SIGNING_SECRET"


def doc(**receiver: Any) -> dict[str, Any]:
    return {"route": {"receiver": "oncall"}, "receivers": [{"name": "oncall", "url": "http://127.0.0.1:1/", **receiver}]}


@pytest.fixture(autouse=True)
def _no_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(VAR, raising=False)


def test_unset_secret_env_is_an_error_naming_receiver_and_variable() -> None:
    # before: the receiver silently sent unsigned requests
    with pytest.raises(ConfigError) as e:
        parse_config(doc(secret_env=VAR), "alerter.yaml")
    msg = str(e.value)
    assert msg.startswith("alerter.yaml: ") and "'oncall'" in msg and VAR in msg and "unset" in msg
    assert "signing: none" in msg and "Value error" not in msg


def test_empty_secret_env_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VAR, "")
    with pytest.raises(ConfigError, match=f"'oncall': secret_env {VAR} is empty"):
        parse_config(doc(secret_env=VAR))


def test_empty_env_does_not_fall_back_to_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VAR, "")
    with pytest.raises(ConfigError):
        parse_config(doc(secret_env=VAR, secret="inline"))


def test_secret_env_is_read_at_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VAR, "k1")
    cfg = parse_config(doc(secret_env=VAR))
    monkeypatch.setenv(VAR, "k2")
    assert cfg.receivers[0].secret_value() == "k1"
    assert cfg.receivers[0].signing == "hmac-sha256"


def test_no_secret_at_all_needs_signing_none() -> None:
    with pytest.raises(ConfigError, match="'oncall': no secret to sign with"):
        parse_config(doc())
    with pytest.raises(ConfigError, match="no secret"):
        parse_config(doc(secret=""))
    cfg = parse_config(doc(signing="none"))
    assert cfg.receivers[0].secret_value() is None


def test_signing_none_with_a_secret_is_contradictory() -> None:
    with pytest.raises(ConfigError, match="`signing: none` with a secret"):
        parse_config(doc(signing="none", secret="x"))
    with pytest.raises(ConfigError, match="`signing: none` with a secret"):
        parse_config(doc(signing="none", secret_env=VAR))
    with pytest.raises(ConfigError, match="signing"):
        parse_config(doc(signing="md5", secret="x"))


def test_example_configuration_loads_with_its_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    example = Path(__file__).parents[3] / "schemas" / "rules" / "routing.example.yaml"
    for r in yaml.safe_load(example.read_text())["receivers"]:
        if r.get("secret_env"):
            monkeypatch.setenv(r["secret_env"], "x")
    assert load_config(example).receivers


def _write(path: Path, d: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(d))
    # a new mtime even on coarse clocks: the watcher compares (mtime_ns, size)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_hot_reload_rejects_an_unset_secret_and_keeps_the_old_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VAR, "old-key")
    f = tmp_path / "alerter.yaml"
    _write(f, doc(secret_env=VAR))
    cfg = load_config(f)
    w = ConfigWatcher(f, cfg, poll_interval_s=0)
    assert w.poll() is None  # unchanged

    _write(f, doc(secret_env=VAR + "_OTHER", url="http://127.0.0.1:2/new"))
    assert w.poll() is None
    assert w.config is cfg and w.reloads == 0
    assert w.last_error is not None and "'oncall'" in w.last_error and VAR + "_OTHER" in w.last_error
    assert w.poll() is None  # the same bad file is not re-reported every poll

    monkeypatch.setenv(VAR + "_OTHER", "new-key")
    _write(f, doc(secret_env=VAR + "_OTHER", url="http://127.0.0.1:2/new"))
    new = w.poll()
    assert new is not None and w.config is new and w.last_error is None and w.reloads == 1
    assert new.receivers[0].secret_value() == "new-key"


def test_apply_config_swaps_receivers_routes_and_inhibition(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VAR, "k")
    old = parse_config({"route": {"receiver": "a"},
                        "receivers": [{"name": "a", "url": "http://127.0.0.1:1/a", "secret_env": VAR}]})
    receivers = {r.name: r for r in old.receivers}
    store = AlertStore(tmp_path / "s.sqlite")
    try:
        d = Dispatcher(compile_route(old.route), receivers, [], store)
        new = parse_config({
            "route": {"receiver": "b"},
            "receivers": [{"name": "b", "url": "http://127.0.0.1:1/b", "signing": "none"}],
            "inhibit_rules": [{"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"']}],
        })
        apply_config(d, new)
        assert d.receivers is receivers  # shared with the delivery manager: updated in place
        assert set(receivers) == {"a", "b"}  # "a" stays for groups already routed to it
        assert d.route.receiver == "b"
        assert d.inhibit_rules == [InhibitRule.from_config(new.inhibit_rules[0])]
    finally:
        store.close()
