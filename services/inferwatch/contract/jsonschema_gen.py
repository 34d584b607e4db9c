"""Generate the JSON Schemas in ``schemas/events/`` from the pydantic models.

Run ``python -m inferwatch.contract.jsonschema_gen`` after changing a model; the contract test
fails while the files on disk differ from what this module generates.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from inferwatch.contract.events import EVENT_MODELS
from inferwatch.paths import schemas_dir


def schema_for(name: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of event ``name``, as generated from its model."""
    model = EVENT_MODELS[name]
    schema = model.model_json_schema(mode="validation")
    out: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"inferwatch/{name}.schema.json",
    }
    out.update(schema)
    # v1 consumers ignore unknown fields: say so in the schema too.
    out.setdefault("additionalProperties", True)
    return out


def render(name: str) -> str:
    """The exact file text for event ``name``."""
    return json.dumps(schema_for(name), indent=2, sort_keys=True) + "\n"


def target(name: str) -> Path:
    """Where the schema of event ``name`` lives."""
    return schemas_dir() / "events" / f"{name}.schema.json"


def main(argv: list[str] | None = None) -> int:
    """Write (default) or ``--check`` every generated schema."""
    check = "--check" in (argv if argv is not None else sys.argv[1:])
    stale = []
    for name in EVENT_MODELS:
        text = render(name)
        path = target(name)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("stale JSON Schemas (run `python -m inferwatch.contract.jsonschema_gen`):", *stale, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
