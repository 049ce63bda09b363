"""`static`: fixed values, known when the workflow loads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ..context import NodeContext
from ..ports import Ports, PortType
from .base import Node, NodeSpec, WorkflowInfo, register


@register
class StaticNode(Node):
    type_name = "static"
    schema: ClassVar[Mapping[str, Any]] = {
        "properties": {
            "values": {"type": "object", "description": "The values; each key is an output port."},
        },
        "required": ["values"],
    }

    def __init__(self, spec: NodeSpec, workflow: WorkflowInfo) -> None:
        super().__init__(spec, workflow)
        self.values: dict[str, Any] = dict(spec.attrs["values"])
        self._outputs = dict(self.values)

    def output_ports(self) -> Ports:
        return Ports(named={key: PortType.ANY for key in self.values})

    def static_outputs(self) -> dict[str, Any]:
        return self.values

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        return self._outputs
