"""The sink's test-only crash hook cannot be switched on by the environment of a normal run."""

from __future__ import annotations

import inspect

import pytest

from inferwatch.sink import Sink, SinkSettings


def test_no_environment_variable_turns_the_crash_hook_on(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("INFERWATCH_SINK_CRASH_AFTER_INSERT", "INFERWATCH_CRASH_AFTER_INSERT"):
        monkeypatch.setenv(name, "1")
    opts = SinkSettings()
    assert not any("crash" in f for f in SinkSettings.model_fields)  # not an option an operator can set
    assert not any("crash" in f for f in opts.model_dump())
    # Only a keyword-only constructor argument (passed by the kill -9 test's helper) enables it.
    param = inspect.signature(Sink.__init__).parameters["crash_after_insert"]
    assert param.kind is inspect.Parameter.KEYWORD_ONLY and param.default is False
