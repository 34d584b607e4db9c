"""The build steps pyproject.toml cannot declare: the C accelerators and the packaged schemas.

Each ``services/inferwatch/native/_*.c`` is one CPython extension module with no dependency but
Python's own headers. They are optional: a machine without a C compiler still installs Inferwatch,
and ``inferwatch.native`` falls back to the pure-Python implementations (same results, slower).
``make install`` builds them in place for the editable install the tests use.

``schemas/`` (the contract: event JSON Schemas, topic registry, ClickHouse migrations and saved
queries, alert rules) lives at the repository root, beside the code of every hop. A wheel copies it
into the package as ``inferwatch/_data/schemas`` so that an installed Inferwatch finds its
migrations and topics without the source tree (see ``inferwatch.paths.schemas_dir``).
"""

import shutil
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent
NATIVE = HERE / "services" / "inferwatch" / "native"

ext_modules = [
    Extension(
        f"inferwatch.native.{src.stem}",
        [str(src.relative_to(HERE))],
        # the contract's limits, generated from inferwatch/contract/limits.py: a change rebuilds
        depends=[str((NATIVE / "contract_limits.h").relative_to(HERE))],
        extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        optional=True,
    )
    for src in sorted(NATIVE.glob("_*.c"))
]



class build_py_with_schemas(build_py):  # noqa: N801 - setuptools command naming
    """build_py that also copies ``schemas/`` into ``inferwatch/_data/schemas`` of the build."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads schemas/ from the source tree
            return
        target = Path(self.build_lib) / "inferwatch" / "_data" / "schemas"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(HERE / "schemas", target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(ext_modules=ext_modules, cmdclass={"build_py": build_py_with_schemas})
