"""The implicit `vault` node: one output port per `resources.vault` entry.

`vault.NAME` yields the secret resolved from the entry's reference when the
workflow loaded (see `resources/vault.py`). Every port is a secret: the
runtime redacts its values in traces and logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ..context import NodeContext
from ..ports import Ports, PortType
from .base import Node, NodeSpec, WorkflowInfo, register


@register
class VaultNode(Node):
    type_name = "vault"
    implicit = True
    schema: ClassVar[Mapping[str, Any]] = {"properties": {}}

    def __init__(self, spec: NodeSpec, workflow: WorkflowInfo) -> None:
        super().__init__(spec, workflow)
        resource = workflow.resources.get("vault") if workflow.resources else None
        secrets = getattr(resource, "secrets", None) or {}
        self._secrets: dict[str, str] = dict(secrets)
        self._ports = Ports(named={name: PortType.STRING for name in self._secrets})

    def output_ports(self) -> Ports:
        return self._ports

    def secret_outputs(self) -> frozenset[str]:
        return frozenset(self._secrets)

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        return dict(self._secrets)

    def __repr__(self) -> str:
        return f"<vault node {sorted(self._secrets)}>"
