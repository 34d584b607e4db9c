"""One switch chooses between the C accelerators and their twins: ``INFERWATCH_NATIVE=0`` forces Python."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = (
    "from inferwatch import native\n"
    "from inferwatch.processor.core.state_machine import ProcessorCore\n"
    "print(native.load('_decode') is not None, native.load('_encode') is not None, ProcessorCore()._columnar())\n"
)


def _probe(value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "INFERWATCH_NATIVE"}
    if value is not None:
        env["INFERWATCH_NATIVE"] = value
    return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True,
                          timeout=120).stdout.strip()


def test_the_compiled_modules_by_default_and_the_twins_when_forced() -> None:
    assert _probe(None) == "True True True"
    for off in ("0", "off", "python", " FALSE "):
        assert _probe(off) == "False False False", off
    assert _probe("1") == "True True True"


def test_nothing_in_native_imports_upwards() -> None:
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[3] / "services" / "inferwatch" / "native"
    for f in root.glob("*.py"):
        for line in f.read_text().splitlines():
            s = line.strip()
            if s.startswith(("from inferwatch", "import inferwatch")):
                mod = s.split()[1]
                assert mod.startswith(("inferwatch.native", "inferwatch.contract", "inferwatch.testing")), (f.name, s)
