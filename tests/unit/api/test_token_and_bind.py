"""The API token from the environment or a file, and the refusal to listen on a public address
without one: in Settings, and end to end through the CLI (one line on stderr, exit code 1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from inferwatch.config import Settings, SettingsError, check_bind, is_loopback


def test_token_file_is_read_once_without_its_newline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "token"
    f.write_text("abc-123\n")
    monkeypatch.setenv("INFERWATCH_API_TOKEN_FILE", str(f))
    monkeypatch.delenv("INFERWATCH_API_TOKEN", raising=False)
    s = Settings()
    assert s.api_token == "abc-123"
    f.write_text("changed\n")
    assert s.api_token == "abc-123"  # read at start, not per request


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("\n", "is empty"),
        ("two words\n", "printable ASCII without spaces"),
        (None, "cannot read the token"),
    ],
)
def test_bad_token_files_are_refused(tmp_path: Path, content: str | None, message: str) -> None:
    f = tmp_path / "token"
    if content is not None:
        f.write_text(content)
    with pytest.raises(SettingsError, match=message) as e:
        Settings(api_token_file=f)
    assert "\n" not in str(e.value) and str(f) in str(e.value)


def test_token_and_token_file_together_are_refused(tmp_path: Path) -> None:
    f = tmp_path / "token"
    f.write_text("a\n")
    with pytest.raises(SettingsError, match="not both"):
        Settings(api_token="b", api_token_file=f)


def test_empty_token_is_refused() -> None:
    # before: "" was a token, and "Authorization: Bearer " matched it
    with pytest.raises(SettingsError, match="INFERWATCH_API_TOKEN is empty"):
        Settings(api_token="")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_loopback_addresses(host: str) -> None:
    assert is_loopback(host)
    check_bind(host, None, "api")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.7", "example.internal", ""])
def test_public_addresses_need_a_token(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(SettingsError, match="refusing to listen on .* without a token"):
        check_bind(host, None, "api")
    check_bind(host, "t", "api")


def _cli(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("INFERWATCH_")}
    return subprocess.run([sys.executable, "-m", "inferwatch.cli.main", *args], env={**base, **env},
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)


def test_cli_api_refuses_a_public_bind_without_a_token(tmp_path: Path) -> None:
    env = {"INFERWATCH_KAFKA_BOOTSTRAP": "127.0.0.1:1", "INFERWATCH_DATA_DIR": str(tmp_path)}
    done = _cli(["run", "api", "--host", "0.0.0.0", "--port", "1"], env, tmp_path)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to listen on 0.0.0.0 without a token" in lines[0], done.stderr


def test_cli_reports_a_bad_token_file_in_one_line(tmp_path: Path) -> None:
    env = {"INFERWATCH_API_TOKEN_FILE": str(tmp_path / "missing"), "INFERWATCH_DATA_DIR": str(tmp_path)}
    done = _cli(["run", "api", "--port", "1"], env, tmp_path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "INFERWATCH_API_TOKEN_FILE" in lines[0] and "cannot read" in lines[0], done.stderr


def test_cli_alerter_refuses_a_public_bind_without_a_token(tmp_path: Path) -> None:
    cfg = tmp_path / "alerter.yaml"
    cfg.write_text(
        "http: {host: 0.0.0.0, port: 19094}\n"
        "route: {receiver: hook}\n"
        "receivers: [{name: hook, url: 'http://127.0.0.1:1/', signing: none}]\n"
    )
    env = {"INFERWATCH_KAFKA_BOOTSTRAP": "127.0.0.1:1", "INFERWATCH_DATA_DIR": str(tmp_path)}
    done = _cli(["run", "alerter", "--config", str(cfg)], env, tmp_path)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "alerter http: refusing to listen on 0.0.0.0" in lines[0], done.stderr


def test_the_token_is_not_in_the_settings_repr(tmp_path: Path) -> None:
    f = tmp_path / "token"
    f.write_text("zz-file-token-zz\n")
    assert "zz-env-token-zz" not in repr(Settings(api_token="zz-env-token-zz"))
    assert "zz-file-token-zz" not in repr(Settings(api_token_file=f))
