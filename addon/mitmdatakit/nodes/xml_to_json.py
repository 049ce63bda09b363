"""`xml_to_json`: parse an XML string (safely) into a JSON value.

Conventions, the XPath subset and safety rules: see `mitmdatakit.xmljson`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .. import xmljson
from ..context import NodeContext
from ..errors import NodeError
from ..ports import SELF, Ports, PortType
from ._xml_naming import NAMING_SCHEMA, check_naming, naming_options
from .base import Node, NodeSpec, WorkflowInfo, register


@register
class XmlToJsonNode(Node):
    type_name = "xml_to_json"
    schema: ClassVar[Mapping[str, Any]] = {
        "properties": {
            **NAMING_SCHEMA,
            "text_as_property": {"type": "boolean", "default": False},
            "recognize_type": {"type": "boolean", "default": True},
            "xpath": {"type": "string", "minLength": 1, "maxLength": 256},
        },
        "required": [],
    }

    def __init__(self, spec: NodeSpec, workflow: WorkflowInfo) -> None:
        super().__init__(spec, workflow)
        self.options: dict[str, Any] = {
            **naming_options(self),
            "text_as_property": bool(self.attr("text_as_property", False)),
            "recognize_type": bool(self.attr("recognize_type", True)),
            "xpath": self.attr("xpath"),
        }
        if self.options["attributes_block_name"] is None and self.options["attributes_name_prefix"] is None:
            # Kong's node reference: "One of the `attributes_block_name` or
            # `attributes_name_prefix` is required."
            raise self.config_error(
                "one of attributes_block_name or attributes_name_prefix is required "
                "(where the element's attributes go)",
                field="attributes_block_name",
            )
        check_naming(self, self.options)
        if self.options["xpath"] is not None:
            try:
                xmljson.check_xpath(self.options["xpath"])
            except NodeError as exc:
                raise self.config_error(str(exc), field="xpath") from None

    def input_ports(self) -> Ports:
        return Ports(self_type=PortType.STRING)

    def output_ports(self) -> Ports:
        return Ports(self_type=PortType.ANY)

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        value = inputs.get(SELF)
        if not isinstance(value, str):
            kind = "null" if value is None else type(value).__name__
            raise NodeError(f"xml_to_json input must be an XML string, not {kind}")
        return {SELF: xmljson.xml_to_json(value, **self.options)}
