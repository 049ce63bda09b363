"""`property`: get (no input) or set (input connected) a Kong property."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from ..codecs import json_type, parse_json
from ..context import NodeContext
from ..errors import NodeError
from ..ports import SELF, Phase, Ports, PortType
from ..properties import FAMILIES, PROPERTIES, lookup, refused_option
from .base import Node, NodeSpec, WorkflowInfo, register

CONTENT_TYPES = ("application/json", "application/octet-stream", "text/plain")


@register
class PropertyNode(Node):
    type_name = "property"
    schema: ClassVar[Mapping[str, Any]] = {
        "properties": {
            "property": {"type": "string", "minLength": 1, "maxLength": 255, "description": "The property name, e.g. kong.ctx.shared.user."},
            "content_type": {"enum": list(CONTENT_TYPES), "description": "application/json: decode on get, encode on set."},
            "non_nil": {"type": "boolean", "default": False, "description": "A null value is an error."},
        },
        "required": ["property"],
    }

    def __init__(self, spec: NodeSpec, workflow: WorkflowInfo) -> None:
        super().__init__(spec, workflow)
        self.property_name: str = spec.attrs["property"]
        found = lookup(self.property_name)
        if found is None:
            known = ", ".join([*sorted(PROPERTIES), *(f"{p}*" for p in FAMILIES)])
            raise self.config_error(f"unknown property {self.property_name!r} (supported: {known})", field="property")
        self.prop, self.key = found
        if self.prop is FAMILIES["kong.configuration."] and refused_option(self.key):
            raise self.config_error(
                f"property {self.property_name!r}: the option may hold credentials and is not readable", field="property")
        self.content_type = self.attr("content_type")
        self.non_nil = bool(self.attr("non_nil", False))
        self.setting = False  # decided in connected(): an input makes it a set

    def connected(self, inputs: frozenset[str]) -> None:
        self.setting = bool(inputs)
        if self.setting and self.prop.set is None:
            raise self.config_error(f"property {self.property_name!r} is read-only", field="property")
        if not self.setting and self.prop.get is None:
            raise self.config_error(
                f"property {self.property_name!r} can only be set (Kong has no get for it): connect an input", field="property")

    def input_ports(self) -> Ports:
        return Ports(self_type=PortType.ANY)

    def output_ports(self) -> Ports:
        return Ports(self_type=PortType.ANY)

    def summary(self) -> str:
        return str(self.spec.attrs.get("property"))

    def changes_client_response(self) -> bool:
        return self.setting and self.prop.sets_client_response

    def min_phase(self) -> Phase:
        return Phase.REQUEST if self.setting else self.prop.get_phase

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        if self.setting:
            return self._set(inputs.get(SELF), ctx)
        return self._get(ctx)

    def _get(self, ctx: NodeContext) -> dict[str, Any]:
        if self.prop.get is None:
            raise NodeError(f"property {self.property_name!r} cannot be read")
        value = self.prop.get(ctx, self.key)
        if self.content_type == "application/json" and isinstance(value, (str, bytes)):
            try:
                value = parse_json(value)  # standard JSON, bounded depth
            except ValueError as e:
                raise NodeError(f"property {self.property_name!r} is not valid JSON: {e}") from None
        elif self.content_type in ("text/plain", "application/octet-stream") and value is not None and not isinstance(value, str):
            value = json.dumps(value) if not isinstance(value, (int, float)) or isinstance(value, bool) else str(value)
        if value is None and self.non_nil:
            raise NodeError(f"property {self.property_name!r} is null (non_nil is set)")
        return {SELF: value}

    def _set(self, value: Any, ctx: NodeContext) -> dict[str, Any]:
        if self.prop.set is None:
            raise NodeError(f"property {self.property_name!r} is read-only")
        if value is None and self.non_nil:
            raise NodeError(f"cannot set property {self.property_name!r} to null (non_nil is set)")
        if self.content_type == "application/json" and value is not None:
            value = json.dumps(value, separators=(",", ":"))
        elif self.content_type in ("text/plain", "application/octet-stream") and value is not None and not isinstance(value, str):
            raise NodeError(f"property {self.property_name!r} with content_type {self.content_type} needs a string, got {json_type(value)}")
        self.prop.set(ctx, self.key, value)
        return {SELF: value}
