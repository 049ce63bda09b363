"""The JSON Schema of workflow files.

The top level is fixed here; each node type and resource contributes its own
fragment (`Node.schema`, `Resource.schema`), so the full schema is assembled
from the registries. `datakit.schema.json` in this package is that schema
as shipped for editors; a test keeps the file in step with `build_schema()`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from .nodes.base import node_types
from .resources import resource_types

SCHEMA_FILE = Path(__file__).with_name("datakit.schema.json")

NAME_PATTERN = r"^[A-Za-z0-9_-]+$"
MAX_NODES = 64  # Kong's limit on `nodes`
LABEL = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[A-Za-z0-9_-]+(\.[^.]+(\..+)?)?$"}
NULLABLE_LABEL = {"oneOf": [LABEL, {"type": "null"}]}

# Keys shared by every node; the type's own attributes are added to these.
COMMON_NODE_PROPERTIES: dict[str, Any] = {
    "name": {
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "pattern": NAME_PATTERN,
        "description": "Unique node name: letters, digits, '_' and '-'.",
    },
    "type": {"type": "string", "description": "The node type."},
    "input": {**LABEL, "description": "Node-wise input: NODE, NODE.PORT or NODE.PORT.KEY."},
    "inputs": {
        "type": "object",
        "additionalProperties": NULLABLE_LABEL,
        "description": "Inputs by port: {PORT: LABEL}.",
    },
    "output": {**LABEL, "description": "Node-wise output: where this node's value goes."},
    "outputs": {
        "type": "object",
        "additionalProperties": NULLABLE_LABEL,
        "description": "Outputs by port: {PORT: LABEL}.",
    },
}

# Keys of a Kong plugin entity that may surround `config:`.
KONG_ENTITY_KEYS: dict[str, Any] = {
    "name": {"const": "datakit"},
    "instance_name": {"type": ["string", "null"]},
    "id": {"type": ["string", "null"]},
    "enabled": {"type": ["boolean", "null"]},
    "protocols": {"type": ["array", "null"], "items": {"enum": ["grpc", "grpcs", "http", "https"]}},
    "tags": {"type": ["array", "null"], "items": {"type": "string"}},
    "service": {},
    "route": {},
    "consumer": {},
    "consumer_group": {},
    "ordering": {},
    "partials": {},
    "created_at": {},
    "updated_at": {},
}

STRING_OR_LIST = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}

EXTENSION_KEYS: dict[str, Any] = {
    "match": {
        "type": ["object", "null"],
        "description": "Which flows this workflow applies to (all keys given must match).",
        "additionalProperties": False,
        "properties": {
            "hosts": {**STRING_OR_LIST, "description": "Exact hosts or *.wildcards."},
            "paths": {**STRING_OR_LIST, "description": "Path prefixes; a leading ~ makes a regex."},
            "methods": {**STRING_OR_LIST, "description": "HTTP methods."},
            "filter": {"type": "string", "description": "A mitmproxy filter expression."},
        },
    },
    "upstreams": {
        "type": ["object", "null"],
        "description": "Named upstreams for the kong.service.upstream property.",
        "additionalProperties": {
            "oneOf": [
                {"type": "string", "description": "host:port or scheme://host:port"},
                {
                    "type": "object",
                    "required": ["host"],
                    "additionalProperties": False,
                    "properties": {
                        "host": {"type": "string"},
                        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                        "scheme": {"enum": ["http", "https"]},
                    },
                },
            ]
        },
    },
    "vaults": {
        "type": ["array", "null"],
        "description": (
            "Kong Vault entities, so references like {vault://PREFIX/NAME} resolve "
            "(only the env backend is implemented)."
        ),
        "items": {
            "type": "object",
            "required": ["name", "prefix"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "description": "The vault backend: env."},
                "prefix": {
                    "type": "string",
                    "description": "The name references use: lower-case letters, digits and '-' (^[a-z][a-z0-9-]*[a-z0-9]$).",
                },
                "config": {
                    "type": ["object", "null"],
                    "description": "The backend's settings (env: prefix, base64_decode).",
                    "properties": {
                        "prefix": {"type": ["string", "null"], "description": "Prepended to the variable name."},
                        "base64_decode": {"type": ["boolean", "null"]},
                        "ttl": {},
                        "neg_ttl": {},
                        "resurrect_ttl": {},
                    },
                    "additionalProperties": False,
                },
                "description": {"type": ["string", "null"]},
                "tags": {"type": ["array", "null"], "items": {"type": "string"}},
                "id": {},
                "created_at": {},
                "updated_at": {},
            },
        },
    },
}


def node_schema(type_name: str) -> dict[str, Any]:
    """Schema of one node of the given type (common keys plus its own)."""
    cls = node_types()[type_name]
    own = cls.schema
    required = own.get("required", [])
    # optional attributes may be given as null (Kong's exported configs do)
    attrs = {
        key: (spec if key in required else {"anyOf": [spec, {"type": "null"}]})
        for key, spec in own.get("properties", {}).items()
    }
    props = {**COMMON_NODE_PROPERTIES, **attrs}
    props["type"] = {"const": type_name}
    return {
        "title": type_name,
        "type": "object",
        "properties": props,
        "required": ["name", "type", *required],
        "additionalProperties": False,
    }


def resources_schema() -> dict[str, Any]:
    return {
        "type": ["object", "null"],
        "properties": {key: cls.schema for key, cls in sorted(resource_types().items())},
        "additionalProperties": False,
    }


def config_schema() -> dict[str, Any]:
    """The Datakit plugin `config` (nodes, debug, resources)."""
    types = sorted(name for name, cls in node_types().items() if not cls.implicit)
    return {
        "type": "object",
        "required": ["nodes"],
        "properties": {
            "nodes": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_NODES,
                "items": {
                    "type": "object",
                    "required": ["name", "type"],
                    "properties": {"type": {"enum": types}},
                    "allOf": [
                        {"if": {"properties": {"type": {"const": t}}}, "then": {"$ref": f"#/$defs/node_{t}"}}
                        for t in types
                    ],
                },
            },
            "debug": {"type": ["boolean", "null"], "default": False},
            "resources": resources_schema(),
        },
        "additionalProperties": False,
    }


@cache
def build_schema() -> dict[str, Any]:
    """The whole workflow-file schema (all three shapes)."""
    types = sorted(name for name, cls in node_types().items() if not cls.implicit)
    config = config_schema()
    bare = {
        "type": "object",
        "required": ["nodes"],
        "properties": {**config["properties"], **EXTENSION_KEYS},
        "additionalProperties": False,
    }
    wrapped = {
        "type": "object",
        "required": ["config"],
        "properties": {"config": {"$ref": "#/$defs/config"}, **KONG_ENTITY_KEYS, **EXTENSION_KEYS},
        "additionalProperties": False,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/mitmdatakit/mitmdatakit/datakit.schema.json",
        "title": "Datakit workflow (Kong Datakit plugin config, for mitmproxy)",
        "oneOf": [{"$ref": "#/$defs/bare"}, {"$ref": "#/$defs/plugin"}],
        "$defs": {
            "bare": bare,
            "plugin": wrapped,
            "config": config,
            **{f"node_{t}": node_schema(t) for t in types},
        },
    }


def shipped_schema() -> Mapping[str, Any]:
    schema: Mapping[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return schema


def write_schema(path: Path = SCHEMA_FILE) -> None:
    path.write_text(json.dumps(build_schema(), indent=2, sort_keys=False) + "\n")
