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


def _map_keys(node: Any) -> Any:
    """Say a map's key pattern with ``propertyNames`` instead of ``patternProperties``.

    pydantic writes ``dict[Name, V]`` as ``patternProperties: {NAME_PATTERN: V}``, which only
    constrains the keys that match: a key outside the alphabet (``"a b"``) would pass with a value
    of any type. Every hop refuses such a key, so the schema must too: the pattern moves to
    ``propertyNames`` and the value schema to ``additionalProperties`` (every value).
    """
    if isinstance(node, list):
        return [_map_keys(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _map_keys(v) for k, v in node.items()}
    pats = out.get("patternProperties")
    if isinstance(pats, dict) and len(pats) == 1 and "properties" not in out:
        (pattern, value), = pats.items()
        del out["patternProperties"]
        out["propertyNames"] = {**out.get("propertyNames", {}), "pattern": pattern}
        out["additionalProperties"] = value
    return out


def schema_for(name: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of event ``name``, as generated from its model."""
    model = EVENT_MODELS[name]
    schema = _map_keys(model.model_json_schema(mode="validation"))
    out: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"inferwatch/{name}.schema.json",
    }
    out.update(schema)
    # v1 consumers ignore unknown fields: say so in the schema too.
    out.setdefault("additionalProperties", True)
    out["$comment"] = (
        "Generated from inferwatch.contract (limits.py, events.py) by `make schemas`; do not edit. "
        "Wire types are strict: an integer is a JSON integer literal (1.0 and \"1\" are refused), "
        "a boolean is true/false; patterns are ECMA-262 (`$` is the end of the text)."
    )
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
