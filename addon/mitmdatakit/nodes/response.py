"""The implicit `response` node: changes to the response the client gets."""

from __future__ import annotations

from typing import Any

from ..context import NodeContext
from ..ports import Ports, PortType
from ._message_writer import MessageWriterNode
from .base import register


@register
class ResponseNode(MessageWriterNode):
    type_name = "response"
    writes = "response"

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
