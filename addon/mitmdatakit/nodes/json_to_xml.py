"""`json_to_xml`: write a JSON value as an XML document string.

A string input is taken as JSON text and decoded first (Kong: "JSON string or
table"). Conventions: see `mitmdatakit.xmljson`. The output carries the media
type `application/xml`, which a body it reaches gets when the headers input
sets no Content-Type (Kong 3.13.0.10).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .. import xmljson
from ..codecs import TypedText, parse_json
from ..context import NodeContext
from ..errors import NodeError
from ..ports import SELF, Ports, PortType
from ._xml_naming import NAMING_SCHEMA, check_naming, naming_options
from .base import Node, NodeSpec, WorkflowInfo, register

XML_MEDIA_TYPE = "application/xml"


@register
class JsonToXmlNode(Node):
    type_name = "json_to_xml"
    schema: ClassVar[Mapping[str, Any]] = {
        "properties": {
            "root_element_name": {"type": "string", "minLength": 1, "maxLength": 64},
            **NAMING_SCHEMA,
        },
        "required": [],
    }

    def __init__(self, spec: NodeSpec, workflow: WorkflowInfo) -> None:
        super().__init__(spec, workflow)
        self.options: dict[str, Any] = {
            "root_element_name": self.attr("root_element_name", "root"),
            **naming_options(self),
        }
        if not xmljson.check_name(self.options["root_element_name"]):
            raise self.config_error(
                f"{self.options['root_element_name']!r} is not a valid XML element name",
                field="root_element_name",
            )
        check_naming(self, self.options)

    def input_ports(self) -> Ports:
        return Ports(self_type=PortType.ANY)

    def output_ports(self) -> Ports:
        return Ports(self_type=PortType.STRING)

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        value = inputs.get(SELF)
        if isinstance(value, str):
            try:
                value = parse_json(value)  # standard JSON, bounded depth
            except ValueError as exc:
                raise NodeError(f"json_to_xml input is a string that is not JSON: {exc}") from None
        return {SELF: TypedText(xmljson.json_to_xml(value, **self.options), XML_MEDIA_TYPE)}
