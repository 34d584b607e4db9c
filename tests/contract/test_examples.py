"""Every example in schemas/examples is checked: valid ones pass, invalid ones fail with a reason."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from inferwatch.contract import EVENT_MODELS, ContractError, jsonschema_gen, validate
from inferwatch.paths import schemas_dir

EXAMPLES = schemas_dir() / "examples"
KIND_TO_SCHEMA = {name.split(".")[0]: name for name in EVENT_MODELS}


def _examples(kind: str) -> list[Path]:
    return sorted(EXAMPLES.glob(f"*/{kind}/*.json"))


def _id(p: Path) -> str:
    return f"{p.parts[-3]}/{p.stem}"


def test_every_event_type_has_valid_and_invalid_examples() -> None:
    for kind in KIND_TO_SCHEMA:
        assert list((EXAMPLES / kind / "valid").glob("*.json")), f"no valid example for {kind}"
        assert list((EXAMPLES / kind / "invalid").glob("*.json")), f"no invalid example for {kind}"


def test_no_example_in_an_unknown_folder() -> None:
    for path in EXAMPLES.rglob("*.json"):
        assert path.parts[-3] in KIND_TO_SCHEMA, f"{path}: unknown event kind folder"
        assert path.parts[-2] in {"valid", "invalid"}, f"{path}: must sit in valid/ or invalid/"


@pytest.mark.parametrize("path", _examples("valid"), ids=_id)
def test_valid_example_passes_model_and_json_schema(path: Path) -> None:
    schema = KIND_TO_SCHEMA[path.parts[-3]]
    event = json.loads(path.read_text())
    validate(schema, event)
    jsonschema.Draft202012Validator(jsonschema_gen.schema_for(schema)).validate(event)


@pytest.mark.parametrize("path", _examples("invalid"), ids=_id)
def test_invalid_example_is_rejected_with_path_and_reason(path: Path) -> None:
    schema = KIND_TO_SCHEMA[path.parts[-3]]
    doc = json.loads(path.read_text())
    assert doc.get("_why"), f"{path}: an invalid example says why it is invalid in _why"
    with pytest.raises(ContractError) as info:
        validate(schema, doc["event"])
    err = info.value
    assert err.path == doc["_error_path"], f"{path}: rejected at {err.path!r}, expected {doc['_error_path']!r}: {err}"
    assert err.rule and err.message


@pytest.mark.parametrize("name", sorted(EVENT_MODELS))
def test_json_schema_on_disk_is_generated_from_the_model(name: str) -> None:
    path = jsonschema_gen.target(name)
    assert path.exists(), f"{path} missing: run python -m inferwatch.contract.jsonschema_gen"
    assert path.read_text() == jsonschema_gen.render(name), (
        f"{path} drifted from the pydantic model: run python -m inferwatch.contract.jsonschema_gen"
    )
