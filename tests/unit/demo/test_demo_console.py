"""How the demo tells a person to open the web console: the URL, the token its login page asks for,
the token file (owner-only, readable through the usual setting), and ``--keep-running`` to keep it up."""

from __future__ import annotations

import stat
from pathlib import Path

from typer.testing import CliRunner

from inferwatch.cli.main import app
from inferwatch.config import Settings
from inferwatch.demo.runner import console_hint, write_token_file
from inferwatch.demo.stack import Stack, StackSettings


def test_token_file_is_owner_only_and_read_by_the_settings(tmp_path: Path) -> None:
    path = write_token_file(tmp_path / "demo", "s3cr3t-token")
    assert path == tmp_path / "demo" / "api-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # what the demo's hint tells CLI users to set
    assert Settings(api_token_file=path).api_token == "s3cr3t-token"
    # a second run overwrites it (the demo's data directory is wiped, but --data-dir may be reused)
    write_token_file(tmp_path / "demo", "other")
    assert path.read_text() == "other\n"


def test_console_hint_names_the_url_the_token_and_its_file(tmp_path: Path) -> None:
    line = console_hint("http://127.0.0.1:8123/console/", "tok-123", tmp_path / "api-token")
    assert "http://127.0.0.1:8123/console/" in line
    assert "log in with the token tok-123" in line
    assert str(tmp_path / "api-token") in line


def test_stack_passes_the_token_to_every_service_and_client(tmp_path: Path) -> None:
    st = Stack(StackSettings(data_dir=tmp_path, api_token="tok-123"))
    st.settings = Settings(data_dir=tmp_path, api_port=8123, api_token="tok-123")
    assert st.console_url == "http://127.0.0.1:8123/console/"
    assert st.auth_headers() == {"Authorization": "Bearer tok-123"}
    assert st.env()["INFERWATCH_API_TOKEN"] == "tok-123"
    open_stack = Stack(StackSettings(data_dir=tmp_path))
    open_stack.settings = Settings(data_dir=tmp_path)
    assert open_stack.auth_headers() == {} and "INFERWATCH_API_TOKEN" not in open_stack.env()


def test_demo_has_keep_running() -> None:
    out = CliRunner().invoke(app, ["demo", "--help"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "--keep-running" in out.output
