"""The shipped JSON Schema (editor support): in step with the code, valid
for every shipped workflow and Kong example, and not vacuous."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from mitmdatakit.schema import SCHEMA_FILE, build_schema

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted(p for p in (REPO / "workflows").iterdir() if p.suffix in (".yaml", ".yml", ".json"))
KONG_EXAMPLES = sorted((REPO / "tests" / "fixtures" / "kong-examples").glob("*.yaml"))
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors(validator, doc) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def test_the_shipped_file_equals_build_schema():
    """If this fails, regenerate it: `just schema`."""
    assert json.loads(SCHEMA_FILE.read_text()) == build_schema()


def test_the_schema_command_prints_the_same_schema(capsys):
    from mitmdatakit.cli import main

    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == build_schema()


def test_there_is_something_to_check():
    assert len(WORKFLOWS) >= 3 and len(KONG_EXAMPLES) >= 10


@pytest.mark.parametrize("path", WORKFLOWS + EXAMPLES, ids=lambda p: p.name)
def test_shipped_workflows_validate(validator, path):
    assert errors(validator, yaml.safe_load(path.read_text())) == []


@pytest.mark.parametrize("path", KONG_EXAMPLES, ids=lambda p: p.name)
def test_kong_example_configs_validate(validator, path):
    """The documentation pages wrap the plugin config in page metadata
    (title, description, ...); the `config:` block is the Datakit config,
    checked bare and as a Kong plugin entity."""
    config = yaml.safe_load(path.read_text())["config"]
    assert errors(validator, config) == []
    assert errors(validator, {"name": "datakit", "config": config, "enabled": True, "protocols": ["http"]}) == []


@pytest.mark.parametrize(
    "doc, where",
    [
        ({"nodes": [{"name": "X", "type": "nope"}]}, "nodes/0/type"),
        ({"nodes": [{"name": "C", "type": "call"}]}, "nodes/0"),  # url is required
        ({"nodes": [{"name": "C", "type": "call", "url": "http://x", "colour": "red"}]}, "nodes/0"),
        ({"nodes": [{"name": "E", "type": "exit", "status": 99}]}, "nodes/0/status"),
        ({"nodes": [{"name": "bad name", "type": "exit"}]}, "nodes/0/name"),
        ({"nodes": []}, "nodes"),
        ({"nodes": [{"name": "E", "type": "exit"}], "debug": "yes"}, "debug"),
        ({"nodes": [{"name": "E", "type": "exit"}], "match": {"hostz": ["a"]}}, "match"),
    ],
)
def test_the_schema_rejects_what_the_loader_rejects(validator, doc, where):
    found = list(validator.iter_errors(doc))
    assert found, "the schema accepted an invalid workflow"
    paths = {"/".join(map(str, e.absolute_path)) for e in found} | {
        "/".join(map(str, c.absolute_path)) for e in found for c in (e.context or ())
    }
    assert where in paths, paths


def test_the_package_data_includes_the_schema():
    """Hatch ships package data by default; the module finds its file."""
    assert SCHEMA_FILE.parent.name == "mitmdatakit" and SCHEMA_FILE.is_file()
