"""`jwt_decode`: split a JWT into header, payload and signature, unverified.

Never use its output for authorization decisions; that is `jwt_verify`'s job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .. import jwtkit
from ..context import NodeContext
from ..errors import NodeError
from ..ports import SELF, Ports, PortType
from .base import Node, NodeSpec, WorkflowInfo, register


@register
class JwtDecodeNode(Node):
    type_name = "jwt_decode"
    schema: ClassVar[Mapping[str, Any]] = {"properties": {}, "required": []}

    def __init__(self, spec: NodeSpec, workflow: WorkflowInfo) -> None:
        super().__init__(spec, workflow)

    def input_ports(self) -> Ports:
        return Ports(self_type=PortType.STRING)

    def output_ports(self) -> Ports:
        return Ports(
            named={
                "header": PortType.MAP,
                "payload": PortType.MAP,
                "signature": PortType.STRING,
            }
        )

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        try:
            header, payload, signature = jwtkit.decode(inputs.get(SELF))
        except jwtkit.JWTError as exc:
            raise NodeError(f"cannot decode JWT: {exc}") from None
        return {"header": header, "payload": payload, "signature": signature}
