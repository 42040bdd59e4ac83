"""The committed JSON Schema is what editors validate policies with: keep it honest."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from gateway.policy import BUNDLED_DIR, policy_json_schema

SCHEMA = json.loads((BUNDLED_DIR / "schema.json").read_text())


def test_committed_schema_is_current() -> None:
    assert policy_json_schema() == SCHEMA, "run: sluicegate policy schema > policies/schema.json"


@pytest.mark.parametrize("path", sorted(BUNDLED_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_bundled_policies_satisfy_the_schema(path: Path) -> None:
    jsonschema.Draft202012Validator(SCHEMA).validate(yaml.safe_load(path.read_text()))


@pytest.mark.parametrize(
    "match",
    [
        {"detector": "credit_crad"},
        {"detector": {"name": "phone", "region": ["US"]}},
        {"regex": "x", "colour": "red"},
    ],
    ids=["unknown-detector", "unknown-option", "unknown-key"],
)
def test_editor_catches_typos(match: dict[str, object]) -> None:
    policy = {"version": 1, "name": "p", "rules": [{"id": "r", "match": match, "action": "flag"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(SCHEMA).validate(policy)
