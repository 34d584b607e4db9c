"""An installed (non-editable) Inferwatch finds its schemas without the source tree.

``setup.py``'s build_py copies ``schemas/`` into ``inferwatch/_data/schemas``; this builds the
package into a temporary folder (what a wheel contains) and imports it from there, in a process
whose working directory and ``sys.path`` know nothing of the checkout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

PROBE = """
import json
from inferwatch.paths import schemas_dir
from inferwatch.contract.topics import load_registry
from inferwatch.store.migrations import discover, migrations_dir
import inferwatch
assert inferwatch.__file__.startswith(sys.path[0]), inferwatch.__file__
d = schemas_dir()
print(json.dumps({"dir": str(d), "topics": len(load_registry()), "migrations": len(discover(migrations_dir()))}))
"""


def test_built_package_carries_the_schemas(tmp_path: Path) -> None:
    build = tmp_path / "lib"
    subprocess.run([sys.executable, "setup.py", "-q", "build_py", "-d", str(build)], cwd=ROOT, check=True,
                   capture_output=True, timeout=120)
    packaged = build / "inferwatch" / "_data" / "schemas"
    assert (packaged / "clickhouse" / "0001_predictions.sql").is_file()
    assert sorted(p.name for p in (packaged / "topics").iterdir()) == sorted(p.name for p in (ROOT / "schemas" / "topics").iterdir())

    env = {k: v for k, v in os.environ.items() if k not in ("INFERWATCH_REPO_ROOT", "PYTHONPATH")}
    env["PYTHONPATH"] = str(build)
    out = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(build)!r})\n{PROBE}"],
                         cwd=tmp_path, env=env, check=True, capture_output=True, text=True, timeout=120)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(res["dir"]) == packaged
    assert res["topics"] > 0 and res["migrations"] > 0
