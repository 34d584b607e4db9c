"""C accelerators of Inferwatch (everything else is declared in pyproject.toml).

Each ``services/inferwatch/native/_*.c`` is one CPython extension module with no dependency but
Python's own headers. They are optional: a machine without a C compiler still installs Inferwatch,
and ``inferwatch.native`` falls back to the pure-Python implementations (same results, slower).
``make install`` builds them in place for the editable install the tests use.
"""

from pathlib import Path

from setuptools import Extension, setup

HERE = Path(__file__).parent
NATIVE = HERE / "services" / "inferwatch" / "native"

ext_modules = [
    Extension(
        f"inferwatch.native.{src.stem}",
        [str(src.relative_to(HERE))],
        extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        optional=True,
    )
    for src in sorted(NATIVE.glob("_*.c"))
]

setup(ext_modules=ext_modules)
