"""`exit`: answer the client directly."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ..context import NodeContext
from ..ports import Ports, PortType
from .base import Node, NodeSpec, WorkflowInfo, register


@register
class ExitNode(Node):
    type_name = "exit"
    writes = "response"
    schema: ClassVar[Mapping[str, Any]] = {
        "properties": {
            "status": {"type": "integer", "minimum": 200, "maximum": 599, "default": 200, "description": "HTTP status of the answer."},
            "warn_headers_sent": {"type": "boolean", "description": "Log a warning when a response was already started."},
        },
    }

    def __init__(self, spec: NodeSpec, workflow: WorkflowInfo) -> None:
        super().__init__(spec, workflow)
        self.status = int(self.attr("status", 200))

    def summary(self) -> str:
        return f"status {self.spec.attrs.get('status') or 200}"

    def changes_client_response(self) -> bool:
        return True

    def input_ports(self) -> Ports:
        return Ports(named={"body": PortType.ANY, "headers": PortType.MAP})

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        ctx.respond(self.status, inputs.get("headers"), inputs.get("body"), self.name)
        return {}
