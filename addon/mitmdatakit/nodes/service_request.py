"""The implicit `service_request` node: what is sent to the upstream."""

from __future__ import annotations

from typing import Any

from ..codecs import encode_query, write_message
from ..context import NodeContext
from ..errors import NodeError
from ..ports import Phase, Ports, PortType
from ._message_writer import MessageWriterNode
from .base import register


@register
class ServiceRequestNode(MessageWriterNode):
    type_name = "service_request"
    writes = "request"
    too_late = "the service request cannot depend on the service response"

    def max_phase(self) -> Phase:
        return Phase.REQUEST  # it is what gets proxied

    def input_ports(self) -> Ports:
        return Ports(named={"body": PortType.ANY, "headers": PortType.MAP, "query": PortType.MAP})

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        if ctx.phase is not Phase.REQUEST:  # the planner keeps this from happening
            raise NodeError("the service request was already sent")
        req = ctx.flow.request
        if "query" in inputs and inputs["query"] is not None:
            path = req.path.split("?", 1)[0]
            query = encode_query(inputs["query"])
            req.path = f"{path}?{query}" if query else path
        write_message(req, inputs.get("headers"), inputs.get("body"), set_body="body" in inputs and inputs["body"] is not None, where=self.name)
        return {}
