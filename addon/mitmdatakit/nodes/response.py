"""The implicit `response` node: changes to the response the client gets."""

from __future__ import annotations

from typing import Any

from ..context import NodeContext
from ..ports import Ports, PortType
from .base import Node, register


@register
class ResponseNode(Node):
    type_name = "response"
    implicit = True
    partial_inputs = True
    writes = "response"

    writes_body = True

    def connected(self, inputs: frozenset[str]) -> None:
        # "*": a node-wise input, which may carry a body
        self.writes_body = bool(inputs & {"body", "*"})

    def buffered_bodies(self) -> frozenset[str]:
        return frozenset({"response"}) if self.writes_body else frozenset()

    def changes_client_response(self) -> bool:
        return True

    def input_ports(self) -> Ports:
        return Ports(named={"body": PortType.ANY, "headers": PortType.MAP})

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        # applied when the response goes out (the upstream's or an exit's)
        for key in ("headers", "body"):
            if key in inputs and inputs[key] is not None:
                ctx.client_response.set_patch(key, inputs[key])
        return {}
