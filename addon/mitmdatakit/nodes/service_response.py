"""The implicit `service_response` node: the upstream's answer as values."""

from __future__ import annotations

from typing import Any

from ..codecs import bytes_to_text, decode_body, decode_headers
from ..errors import NodeError
from .base import Node, Phase, Ports, PortType, register

PORTS = {"body": PortType.ANY, "headers": PortType.MAP, "status": PortType.NUMBER, "raw_body": PortType.STRING}


@register
class ServiceResponseNode(Node):
    type_name = "service_response"
    implicit = True

    def output_ports(self) -> Ports:
        return Ports(named=PORTS)

    def min_phase(self) -> Phase:
        return Phase.RESPONSE

    def run(self, inputs, ctx) -> dict[str, Any]:
        resp = ctx.flow.response
        if resp is None:
            raise NodeError("there is no service response")
        content = resp.get_content(strict=False) or b""
        return {
            "status": resp.status_code,
            "headers": decode_headers(resp.headers.items(multi=True)),
            "body": decode_body(content, resp.headers.get("content-type")),
            "raw_body": bytes_to_text(content),
        }
