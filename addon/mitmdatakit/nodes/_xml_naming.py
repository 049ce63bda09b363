"""What json_to_xml and xml_to_json share: where an element's attributes and
text go in the JSON (Kong gives both nodes the same three fields). A helper
module: the leading underscore keeps `load_all` from taking it for a node type."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Node

NAME_SCHEMA: Mapping[str, Any] = {"type": "string", "minLength": 1, "maxLength": 32}

NAMING_SCHEMA: Mapping[str, Any] = {
    "attributes_block_name": NAME_SCHEMA,
    "attributes_name_prefix": NAME_SCHEMA,
    "text_block_name": {**NAME_SCHEMA, "default": "#text"},
}


def naming_options(node: Node) -> dict[str, Any]:
    """The node's naming fields, defaults applied."""
    return {
        "attributes_block_name": node.attr("attributes_block_name"),
        "attributes_name_prefix": node.attr("attributes_name_prefix"),
        "text_block_name": node.attr("text_block_name", "#text"),
    }


def check_naming(node: Node, options: Mapping[str, Any]) -> None:
    """Attributes and text cannot share one block."""
    if options["attributes_block_name"] == options["text_block_name"]:
        raise node.config_error(
            "attributes_block_name and text_block_name must differ "
            f"(both are {options['text_block_name']!r})",
            field="attributes_block_name",
        )
