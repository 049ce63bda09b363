"""The implicit `request` node: the client's request as values."""

from __future__ import annotations

from typing import Any

from ..bodies import read_body
from ..codecs import decode_body, decode_headers, decode_query, normalize_path
from ..context import NodeContext
from ..ports import Ports, PortType
from .base import Node, NodeSpec, WorkflowInfo, register

PORTS = {
    "body": PortType.ANY,
    "headers": PortType.MAP,
    "query": PortType.MAP,
    "path": PortType.STRING,
    "raw_path": PortType.STRING,
    "port": PortType.NUMBER,
    "method": PortType.STRING,
    "scheme": PortType.STRING,
    "version": PortType.NUMBER,
}


def http_version_number(text: str) -> float | int:
    """`HTTP/1.1` → 1.1, `HTTP/2.0` → 2 (as Kong's kong.request.get_http_version)."""
    try:
        number = float(text.rsplit("/", 1)[-1])
    except ValueError:
        return 1.1
    return int(number) if number.is_integer() and number >= 2 else number


@register
class RequestNode(Node):
    type_name = "request"
    implicit = True

    def __init__(self, spec: NodeSpec, workflow: WorkflowInfo) -> None:
        super().__init__(spec, workflow)
        self.used: frozenset[str] = frozenset(PORTS)

    def output_ports(self) -> Ports:
        return Ports(named=PORTS)

    def bind(self, used_outputs: frozenset[str]) -> None:
        # decode only what the workflow reads (bodies can be large)
        self.used = frozenset(p for p in used_outputs if p in PORTS) or frozenset(PORTS)

    def buffered_bodies(self) -> frozenset[str]:
        return frozenset({"request"}) if "body" in self.used else frozenset()

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        req = ctx.flow.request
        out: dict[str, Any] = {}
        used = self.used
        full_path = req.path
        raw_path, _, raw_query = full_path.partition("?")
        if "body" in used:
            content = read_body(req, ctx.services.body_size_limit, "the request body")
            out["body"] = decode_body(content, req.headers.get("content-type"))
        if "headers" in used:
            out["headers"] = decode_headers(req.headers.items(multi=True))
        if "query" in used:
            out["query"] = decode_query(raw_query)
        if "path" in used:
            out["path"] = normalize_path(raw_path or "/")
        if "raw_path" in used:
            out["raw_path"] = raw_path
        if "port" in used:
            out["port"] = req.port
        if "method" in used:
            out["method"] = req.method
        if "scheme" in used:
            out["scheme"] = req.scheme
        if "version" in used:
            out["version"] = http_version_number(req.http_version)
        return out
