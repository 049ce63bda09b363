"""The shape issue 9 asks for: modules of a readable size, and a node type
that is one module (here: one class in a test) with nothing else to edit."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from mitmdatakit import cli
from mitmdatakit.nodes import base
from mitmdatakit.ports import SELF, Ports, PortType
from mitmdatakit.schema import build_schema
from tests.unit.addon_support import make_flow

PACKAGE = Path(__file__).resolve().parents[2] / "addon" / "mitmdatakit"
MAX_LINES = 600


def _modules() -> list[Any]:
    return [pytest.param(path, id=path.relative_to(PACKAGE).as_posix()) for path in sorted(PACKAGE.rglob("*.py"))]


@pytest.mark.parametrize("path", _modules())
def test_no_module_exceeds_600_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines (at most {MAX_LINES}): split it by job"


def test_the_size_check_sees_the_package() -> None:
    names = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")}
    assert {"addon.py", "nodes/base.py", "offline/runner.py", "resources/cache/redis.py"} <= names


# -- a node type from the tests alone --------------------------------------------

TOY = "toy_shout"


@pytest.fixture
def toy_node() -> Iterator[type[base.Node]]:
    """A node type defined here, the way a node module defines one, and
    removed again so no other test sees it."""
    base.node_types()  # the real node modules register first
    assert TOY not in base.node_types()

    @base.register
    class ShoutNode(base.Node):
        """Upper-cases its string input and appends `suffix`."""

        type_name = TOY
        schema: ClassVar[Mapping[str, Any]] = {"properties": {"suffix": {"type": "string", "description": "Appended to the result."}}}

        def input_ports(self) -> base.Ports:
            return Ports(self_type=PortType.STRING)

        def output_ports(self) -> base.Ports:
            return Ports(self_type=PortType.STRING)

        def run(self, inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
            return {SELF: inputs[SELF].upper() + self.attr("suffix", "")}

    build_schema.cache_clear()  # assembled from the registry
    try:
        yield ShoutNode
    finally:
        base._REGISTRY.pop(TOY, None)
        build_schema.cache_clear()
    assert TOY not in base.node_types()


WORKFLOW = f"""\
nodes:
  - name: SHOUT
    type: {TOY}
    suffix: "!"
    input: request.body
  - name: EXIT
    type: exit
    status: 200
    inputs:
      body: SHOUT
"""


def test_a_toy_node_type_is_in_the_schema(toy_node: type[base.Node]) -> None:
    schema = build_schema()
    own = schema["$defs"][f"node_{TOY}"]
    assert own["properties"]["type"] == {"const": TOY}
    assert "suffix" in own["properties"]
    assert TOY in schema["$defs"]["config"]["properties"]["nodes"]["items"]["properties"]["type"]["enum"]


async def test_a_toy_node_type_loads_and_runs_in_the_addon(toy_node: type[base.Node], dk) -> None:
    dk.load(WORKFLOW)
    flow = await dk.roundtrip(make_flow(method="POST", body=b"hello", headers={"content-type": "text/plain"}))
    assert dk.upstream_calls == 0  # the exit node answered
    assert flow.response is not None and flow.response.status_code == 200
    assert "HELLO!" in flow.response.get_text()


def test_a_toy_node_type_validates_from_the_cli(toy_node: type[base.Node], tmp_path, capsys) -> None:
    path = tmp_path / "toy.yaml"
    path.write_text(WORKFLOW)
    assert cli.main(["validate", "--json", str(path)]) == cli.EXIT_OK
    assert json.loads(capsys.readouterr().out)
    bad = tmp_path / "bad.yaml"
    bad.write_text(WORKFLOW.replace('suffix: "!"', "suffix: 1"))  # its own schema applies
    assert cli.main(["validate", str(bad)]) == cli.EXIT_FAILED
    assert "suffix" in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["mermaid", "dot", "text"])
def test_a_toy_node_type_is_in_the_graph_output(toy_node: type[base.Node], tmp_path, capsys, fmt: str) -> None:
    path = tmp_path / "toy.yaml"
    path.write_text(WORKFLOW)
    assert cli.main(["graph", str(path), "--format", fmt]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "SHOUT" in out and TOY in out  # the node, labelled with its type
    assert "request.body -> SHOUT" in out and "SHOUT -> EXIT.body" in out  # and its connections
