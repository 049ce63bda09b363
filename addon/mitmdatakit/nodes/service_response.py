"""The implicit `service_response` node: the upstream's answer as values."""

from __future__ import annotations

from typing import Any

from ..bodies import read_body
from ..codecs import bytes_to_text, decode_body, decode_headers
from ..context import NodeContext
from ..errors import NodeError
from ..ports import Phase, Ports, PortType
from .base import Node, NodeSpec, WorkflowInfo, register

PORTS = {"body": PortType.ANY, "headers": PortType.MAP, "status": PortType.NUMBER, "raw_body": PortType.STRING}
BODY_PORTS = frozenset({"body", "raw_body"})


@register
class ServiceResponseNode(Node):
    type_name = "service_response"
    implicit = True

    def __init__(self, spec: NodeSpec, workflow: WorkflowInfo) -> None:
        super().__init__(spec, workflow)
        self.reads_body = True

    def output_ports(self) -> Ports:
        return Ports(named=PORTS)

    def min_phase(self) -> Phase:
        return Phase.RESPONSE

    def bind(self, used_outputs: frozenset[str]) -> None:
        # the body is read (and bounded) only when a body port is connected
        self.reads_body = not used_outputs or bool(used_outputs & BODY_PORTS)

    def buffered_bodies(self) -> frozenset[str]:
        return frozenset({"response"}) if self.reads_body else frozenset()

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        resp = ctx.flow.response
        if resp is None:
            raise NodeError("there is no service response")
        out: dict[str, Any] = {
            "status": resp.status_code,
            "headers": decode_headers(resp.headers.items(multi=True)),
        }
        if self.reads_body:
            content = read_body(resp, ctx.services.body_size_limit, "the service response body") or b""
            out["body"] = decode_body(content, resp.headers.get("content-type"))
            out["raw_body"] = bytes_to_text(content)
        return out
