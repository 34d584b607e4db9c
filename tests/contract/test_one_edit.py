"""Changing a limit is one edit: every Python hop follows ``contract/limits.py``, the generated files follow.

A copy of the package with one edit of ``contract/limits.py`` (``MAX_INPUTS`` 2000 -> 7, ``NAME_MAX``
128 -> 20) is imported by a fresh interpreter, which asks every hop about an event at the new limit
and one past it: the pydantic models, the msgspec structs of the sink and the processor, the SDK's checks
and its Python encoder, and what ``make schemas`` would write (the JSON Schema and the C header).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from inferwatch.contract import limits

_PROBE = r"""
import json
import msgspec
from inferwatch.contract import header_gen, jsonschema_gen, validate, ContractError
from inferwatch.contract.structs import PredictionV1, names_ok
from inferwatch.processor.core.raw_events import Raw, decode_predictions
from inferwatch.sdk import call_checks as sdk_validate
from inferwatch.sdk.encode import PyEncoder
from inferwatch.sdk.errors import EventValidationError

def event(n, name="f"):
    return {"event_id": "e", "prediction_id": "p", "ts": 0, "model": "m", "model_version": "v",
            "inputs": {f"{name}{i}": 1.0 for i in range(n)}, "outputs": {"label": "a"}}

out = {}
def ok(fn):
    try:
        fn()
        return True
    except (ContractError, msgspec.ValidationError, EventValidationError, ValueError):
        return False

for n in (7, 8):
    raw = json.dumps(event(n)).encode()
    out[f"pydantic/{n}"] = ok(lambda: validate("prediction.v1", raw))
    out[f"msgspec/{n}"] = ok(lambda: msgspec.json.decode(raw, type=PredictionV1))
    out[f"processor/{n}"] = bool(decode_predictions([Raw(raw)])[0])
    out[f"sdk/{n}"] = ok(lambda: sdk_validate.features(event(n)["inputs"]))
    enc = PyEncoder("m", "v")
    import itertools
    enc.use_ids("e", itertools.count())
    out[f"sdk_encoder/{n}"] = enc.prediction(event(n)["inputs"], {"label": "a"}, None, None) is not None
long_name = "k" * 21
raw = json.dumps(event(1, long_name)).encode()
out["pydantic/name21"] = ok(lambda: validate("prediction.v1", raw))
out["structs/name21"] = names_ok(msgspec.json.decode(raw, type=PredictionV1))
out["sdk/name21"] = ok(lambda: sdk_validate.check_name(long_name, "model"))
out["schema/maxProperties"] = jsonschema_gen.schema_for("prediction.v1")["properties"]["inputs"]["maxProperties"]
out["header"] = [l for l in header_gen.render().splitlines() if l.startswith(("#define IW_MAX_INPUTS", "#define IW_NAME_MAX"))]
import inferwatch
out["package"] = inferwatch.__file__
print(json.dumps(out))
"""


def test_a_changed_limit_reaches_every_python_hop_and_the_generated_files(tmp_path: Path) -> None:
    pkg = Path(limits.__file__).resolve().parents[1]
    copy = tmp_path / "inferwatch"
    shutil.copytree(pkg, copy, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    src = (copy / "contract" / "limits.py").read_text()
    for old, new in (("MAX_INPUTS: Final = 2000", "MAX_INPUTS: Final = 7"), ("NAME_MAX: Final = 128", "NAME_MAX: Final = 20")):
        assert src.count(old) == 1, old
        src = src.replace(old, new)
    (copy / "contract" / "limits.py").write_text(src)  # the one edit
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "INFERWATCH_REPO_ROOT": str(pkg.parents[1])}
    res = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=True,
                         cwd=tmp_path, env=env)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["package"].startswith(str(tmp_path)), out["package"]  # the edited copy, not the checkout
    for hop in ("pydantic", "msgspec", "processor", "sdk", "sdk_encoder"):
        assert out[f"{hop}/7"] is True, (hop, out)
        assert out[f"{hop}/8"] is False, (hop, out)
    assert out["pydantic/name21"] is False and out["structs/name21"] is False and out["sdk/name21"] is False, out
    assert out["schema/maxProperties"] == 7
    assert out["header"] == ["#define IW_NAME_MAX 20", "#define IW_MAX_INPUTS 7"]
