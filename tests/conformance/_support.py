"""Shared pieces of the Kong conformance tests: one mitmdump per test module
serving a directory of workflows, each selected by a path prefix.

Kong's documentation is cited by its path in Kong/developer.konghq.com:
INDEX is the plugin page (node reference), SCHEMA the 3.15 plugin schema
(`app/_schemas/gateway/plugins/3.15/Datakit.json`), CHANGELOG the plugin
changelog, EXAMPLES the example configs.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.harness import Mitmdump

INDEX = "app/_kong_plugins/datakit/index.md"
SCHEMA = "app/_schemas/gateway/plugins/3.15/Datakit.json"
CHANGELOG = "app/_kong_plugins/datakit/changelog.json"
EXAMPLES = "app/_kong_plugins/datakit/examples/"
TRACE = {"X-DataKit-Debug-Trace": "1"}


def workflow(prefix: str, nodes: list[dict[str, Any]], **config: Any) -> dict[str, Any]:
    """A workflow applied to requests whose path starts with `/prefix/`."""
    return {"match": {"paths": [f"/{prefix}/"]}, **config, "nodes": nodes}


def write_workflows(directory: Path, workflows: Mapping[str, dict[str, Any]]) -> Path:
    for prefix, doc in workflows.items():
        assert doc["match"]["paths"] == [f"/{prefix}/"], prefix
        (directory / f"{prefix}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return directory


def serve(directory: Path, confdir: Path, env: Mapping[str, str] | None = None) -> Iterator[Mitmdump]:
    """Body of a module-scoped fixture: one mitmdump for the whole directory."""
    mitm = Mitmdump(directory, confdir=confdir, env=dict(env or {}), quiet=True)
    try:
        yield mitm
    finally:
        code = mitm.stop()
        print(f"\n----- {mitm!r} exit={code} log tail -----\n{mitm.log_tail(60)}")


def config_error(tmp_path: Path, doc: dict[str, Any], env: Mapping[str, str] | None = None) -> str:
    """Load `doc` alone in a mitmdump that must refuse it; return its output."""
    path = tmp_path / "workflow.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    code, output = Mitmdump.run_and_expect_exit(path, env=dict(env or {}))
    assert code != 0, output[-2000:]
    return output


def canon(text: str) -> Any:
    """An XML document as nested tuples with children sorted, so documents
    that differ only in sibling order or insignificant whitespace compare
    equal (Kong: "The order of elements in the generated XML is
    non-deterministic and must not be relied upon")."""

    def convert(element: ET.Element) -> Any:
        text = (element.text or "").strip()
        children = sorted((convert(child) for child in element), key=repr)
        return (element.tag, tuple(sorted(element.attrib.items())), text, tuple(children))

    return convert(ET.fromstring(text))


def json_body(value: Any) -> dict[str, Any]:
    return {"content": json.dumps(value).encode(), "headers": {"Content-Type": "application/json"}}


def read_in_response_phase(prop: str, jq: str) -> list[dict[str, Any]]:
    """Nodes that read `prop` once the service has answered, so after any
    request-phase set (Kong does not order independent nodes), and send
    `jq` of it as the response body."""
    return [
        {"name": "ANSWERED", "type": "jq", "input": "service_response.status", "jq": "true"},
        {"name": "LATER", "type": "branch", "input": "ANSWERED", "then": ["GET", "OUT"], "else": ["NEVER"]},
        {"name": "NEVER", "type": "static", "values": {"x": 1}},
        {"name": "GET", "type": "property", "property": prop},
        {"name": "OUT", "type": "jq", "input": "GET", "jq": jq, "output": "response.body"},
    ]
