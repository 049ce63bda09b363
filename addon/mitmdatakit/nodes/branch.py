"""`branch`: run the `then` or the `else` nodes, skip the others."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ..codecs import json_type
from ..context import NodeContext
from ..errors import NodeError
from ..ports import SELF, Ports, PortType
from .base import Node, NodeSpec, Skip, WorkflowInfo, register

NAME_LIST = {
    "type": "array",
    "items": {"type": "string", "minLength": 1, "maxLength": 255},
    "minItems": 1,
    "maxItems": 64,
}


@register
class BranchNode(Node):
    type_name = "branch"
    gates_control = True
    schema: ClassVar[Mapping[str, Any]] = {
        "properties": {
            "then": {**NAME_LIST, "description": "Nodes that may run when the input is true."},
            "else": {**NAME_LIST, "description": "Nodes that may run when the input is false."},
        },
    }

    def __init__(self, spec: NodeSpec, workflow: WorkflowInfo) -> None:
        super().__init__(spec, workflow)
        self.then = frozenset(self.attr("then", ()))
        self.otherwise = frozenset(self.attr("else", ()))
        both = self.then & self.otherwise
        if both:
            raise self.config_error(f"node {sorted(both)[0]!r} is listed in both 'then' and 'else'", field="else")

    def input_ports(self) -> Ports:
        return Ports(self_type=PortType.BOOLEAN)

    def gated_nodes(self) -> dict[str, frozenset[str]]:
        return {"then": self.then, "else": self.otherwise}

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> Skip:
        value = inputs.get(SELF)
        if not isinstance(value, bool):
            raise NodeError(f"branch input must be a boolean, got {json_type(value)}")
        return Skip(outputs={}, skip=self.otherwise if value else self.then, routing=value)
