"""Credentials never appear in a log line or an error message (masking helpers and their callers)."""

from __future__ import annotations

import logging
import socket

import pytest

from inferwatch.config import Settings
from inferwatch.redact import mask_secrets, redact_config, redact_dsn, settings_secrets
from inferwatch.store import open_store
from inferwatch.store.errors import StoreError
from inferwatch.store.server import ServerStore

PW = "S3cr3t-Pw_42"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: connections are refused


@pytest.mark.parametrize(("url", "expected"), [
    (f"http://alice:{PW}@db:8123/x", "http://alice:***@db:8123/x"),
    (f"https://alice:{PW}@db", "https://alice:***@db"),
    ("http://alice@db:8123", "http://alice@db:8123"),
    ("http://db:8123", "http://db:8123"),
    (f"http://db:8123/?user=a&password={PW}", "http://db:8123/?user=a&password=***"),
    (f"clickhouse://u:{PW}@h:9000/db?secure=1", "clickhouse://u:***@h:9000/db?secure=1"),
    (f"http://u:{PW.replace('-', '%2F')}@h", "http://u:***@h"),  # percent-encoded password
])
def test_redact_dsn(url: str, expected: str) -> None:
    assert redact_dsn(url) == expected


def test_redact_dsn_hostile_inputs_never_raise_nor_leak() -> None:
    for url in [f"http://u:{PW}@[::1", f"http://u:{PW}@h:notaport", f"u:{PW}@h", "", "://", f"http://u:{PW}@",
                f"http://u:{PW}@h@evil", "\x00\udcff"]:
        out = redact_dsn(url)
        assert out is not None and PW not in out, (url, out)
    assert redact_dsn(None) is None


def test_mask_secrets_in_free_text() -> None:
    text = (f"cannot reach http://alice:{PW}@db:8123 (password={PW}; token: 'abc123xyz'); "
            f"also {PW} alone and sasl.password={PW}")
    out = mask_secrets(text, [PW])
    assert PW not in out and "abc123xyz" not in out
    assert "http://alice:***@db:8123" in out
    assert mask_secrets("nothing secret here", ["", None, "ab"]) == "nothing secret here"


def test_redact_config_masks_every_credential_and_keeps_the_rest() -> None:
    conf = {"bootstrap.servers": "k:9092", "security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN",
            "sasl.username": "bob", "sasl.password": PW, "ssl.key.password": PW, "ssl.key.pem": "-----BEGIN",
            "sasl.oauthbearer.client.secret": PW, "url": f"http://u:{PW}@h"}
    out = redact_config(conf)
    assert PW not in repr(out) and "BEGIN" not in repr(out)
    assert out["bootstrap.servers"] == "k:9092" and out["sasl.username"] == "bob" and out["sasl.mechanism"] == "PLAIN"


def test_settings_secrets_lists_every_credential() -> None:
    s = Settings(kafka_security={"sasl.username": "bob", "sasl.password": PW}, clickhouse_password=PW,
                 clickhouse_url=f"http://alice:{PW}x@h:8123", api_token=PW + "t")
    assert set(settings_secrets(s)) == {PW, PW + "x", PW + "t"}


def test_bad_dsn_never_shows_the_password_in_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    port = _closed_port()
    caplog.set_level(logging.DEBUG)
    cases = [
        (f"http://alice:{PW}@127.0.0.1:{port}", "default", ""),  # password in the DSN
        (f"http://127.0.0.1:{port}", "alice", PW),  # password apart
        (f"http://alice:{PW}@127.0.0.1:notaport", "default", ""),  # unparsable DSN
        (f"http://127.0.0.1:{port}/?password={PW}", "default", ""),  # password as a parameter
    ]
    for url, user, password in cases:
        with pytest.raises(StoreError) as info:
            ServerStore(url, user, password)
        msg = str(info.value)
        assert PW not in msg and PW not in repr(info.value), msg
        assert "127.0.0.1" in msg  # still says where it failed
    with pytest.raises(StoreError) as info:
        open_store(Settings(clickhouse_url=f"http://alice:{PW}@127.0.0.1:{port}"))
    assert PW not in str(info.value)
    assert PW not in caplog.text


def test_settings_repr_never_shows_a_credential() -> None:
    s = Settings(kafka_security={"sasl.username": "bob", "sasl.password": PW, "ssl.key.password": PW},
                 clickhouse_password=PW, clickhouse_url=f"http://alice:{PW}@h:8123")
    for text in (repr(s), str(s), f"{s!r}"):
        assert PW not in text, text
    assert "bob" in repr(s) and "alice" in repr(s) and "h:8123" in repr(s)  # only the credentials are masked
    assert s.kafka_security["sasl.password"] == PW and s.clickhouse_password == PW  # the values are intact
