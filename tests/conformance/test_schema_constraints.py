"""Every constraint of Kong's Datakit 3.15 schema is enforced by our loader.

Source: `shared/reference/kong-datakit-3.15-schema.json`, Kong's published
plugin schema (in Kong's docs repository, Kong/developer.konghq.com, as
`app/_schemas/gateway/plugins/3.15/Datakit.json`; the two files are equal).

The test walks that schema and, for every constraint it states (types,
lengths, counts, ranges, enums, required fields), builds a config that breaks
exactly that one constraint, starting from a valid config of the node type.
Each case asserts:

(a) Kong's schema refuses the variant (so the generated case is right),
(b) our loader refuses it with a ConfigError naming the field (and node #1
    for node attributes) and giving the same reason ("at most 255",
    "expected one of", "between 200 and 599", ...),

and the valid base configs are accepted by both.

Kong exports its Lua schema with two quirks that JSON Schema would ignore,
so they are read as Kong's Lua schema means them: `minLength`/`maxLength`
on an array or a map is Lua's `len_min`/`len_max` (a count of entries), and
`x-lua-required` is Lua's `required = true`.

Deliberate differences (Kong stricter and we are not, or the reverse) are
listed in DIFFERENCES with their reason and documented in
docs/coming-from-kong.md; for those the test asserts what we do instead.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mitmdatakit.config import load_document
from mitmdatakit.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
# shared/ sits beside the clone (CI); a git worktree under wt/ finds it one level up
KONG_SCHEMA_FILE = next(
    (p for base in (REPO.parent, REPO.parent.parent) if (p := base / "shared/reference/kong-datakit-3.15-schema.json").is_file()),
    REPO.parent / "shared/reference/kong-datakit-3.15-schema.json",
)

pytestmark = pytest.mark.skipif(
    not KONG_SCHEMA_FILE.is_file(),
    reason=f"Kong's published schema is not beside the repository ({KONG_SCHEMA_FILE})",
)

# -- valid base configs, one per node type -----------------------------------

MEMORY_CACHE = {"cache": {"strategy": "memory"}}

BASE_NODES: dict[str, dict[str, Any]] = {
    "branch": {"name": "N", "type": "branch", "input": "FLAG.on", "then": ["YES"], "else": ["NO"]},
    "cache": {"name": "N", "type": "cache", "inputs": {"key": "request.path"}},
    "call": {"name": "N", "type": "call", "url": "http://127.0.0.1:9/", "method": "POST"},
    "exit": {"name": "N", "type": "exit", "status": 200},
    "jq": {"name": "N", "type": "jq", "jq": "."},
    "json_to_xml": {"name": "N", "type": "json_to_xml", "input": "request.body"},
    "jwt_decode": {"name": "N", "type": "jwt_decode", "input": "request.headers.authorization"},
    "jwt_sign": {"name": "N", "type": "jwt_sign", "algorithm": "HS256", "inputs": {"key": "SECRET.key"}},
    "jwt_verify": {"name": "N", "type": "jwt_verify", "inputs": {"token": "request.headers.authorization", "key": "SECRET.key"}},
    "property": {"name": "N", "type": "property", "property": "kong.ctx.shared.x"},
    "static": {"name": "N", "type": "static", "values": {"a": 1}},
    # index.md: "One of attributes_block_name or attributes_name_prefix is
    # required" (a rule Kong's JSON export does not carry; see test_xml_nodes)
    "xml_to_json": {"name": "N", "type": "xml_to_json", "input": "request.body", "attributes_name_prefix": "@"},
}

# nodes the node under test refers to (always after it: it stays node #1)
HELPERS: dict[str, list[dict[str, Any]]] = {
    "branch": [
        {"name": "FLAG", "type": "static", "values": {"on": True}},
        {"name": "YES", "type": "exit", "status": 200},
        {"name": "NO", "type": "exit", "status": 403},
    ],
    "jwt_sign": [{"name": "SECRET", "type": "static", "values": {"key": "k" * 32}}],
    "jwt_verify": [{"name": "SECRET", "type": "static", "values": {"key": "k" * 32}}],
}


def base_config(node_type: str) -> dict[str, Any]:
    return {
        "nodes": [copy.deepcopy(BASE_NODES[node_type]), *copy.deepcopy(HELPERS.get(node_type, []))],
        "resources": copy.deepcopy(MEMORY_CACHE),
    }


def plugin(config: dict[str, Any]) -> dict[str, Any]:
    return {"name": "datakit", "config": config}


# -- Kong's schema, read as its Lua original means it --------------------------


def kong_schema() -> dict[str, Any]:
    schema = json.loads(KONG_SCHEMA_FILE.read_text())

    def lua(node: Any) -> None:
        if not isinstance(node, dict):
            return
        kind = node.get("type")
        for json_key, (array_key, map_key) in {"minLength": ("minItems", "minProperties"), "maxLength": ("maxItems", "maxProperties")}.items():
            if json_key in node and kind in ("array", "object"):
                node[array_key if kind == "array" else map_key] = node.pop(json_key)
        for key, sub in node.get("properties", {}).items():
            if isinstance(sub, dict) and sub.get("x-lua-required"):
                node.setdefault("required", [])
                if key not in node["required"]:
                    node["required"].append(key)
        for value in node.values():
            if isinstance(value, dict):
                lua(value)
            elif isinstance(value, list):
                for item in value:
                    lua(item)

    lua(schema)
    return schema


# -- the walk -----------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    node_type: str  # the base config to start from
    path: tuple[Any, ...]  # inside the plugin entity: ("config", "nodes", 0, "status")
    rule: str  # the broken keyword
    value: Any  # what goes at `path` (REMOVE: delete it)
    reason: str  # a regex our message must match

    @property
    def field(self) -> str:
        """The field our error must name: node attributes relative to the node."""
        if self.path == ("config", "nodes", 0):
            return "nodes"
        rest = self.path[3:] if self.path[:3] == ("config", "nodes", 0) else self.path
        return normal_field(".".join(str(p) for p in rest))


def normal_field(field: str) -> str:
    """`config.resources.x[0].y` -> `resources.x.0.y` (both spellings are ours)."""
    return re.sub(r"\[(\d+)\]", r".\1", field).removeprefix("config.")


REMOVE = object()
TYPE_VALUES = {"string": 12345, "integer": "1", "number": "1", "boolean": "yes", "object": "x", "array": "x"}
TYPE_REASONS = {
    "string": "string",
    "integer": "integer",
    "number": "number|integer",
    "boolean": "boolean|true or false",
    "object": "object|mapping",
    "array": "array|list",
}
SAMPLE_KEY = "k"


def _too_long_string(limit: int, path: tuple[Any, ...]) -> str:
    if path[-1] == "property":
        return "kong.ctx.shared." + "x" * limit
    return "A" * (limit + 1)


def _entries(count: int, path: tuple[Any, ...]) -> Any:
    """`count` valid entries for the array or map at path."""
    if path == ("config", "nodes"):
        return [{"name": f"S{i}", "type": "static", "values": {"a": i}} for i in range(count)]
    if path[-1] in ("then", "else"):
        return [f"NODE{i}" for i in range(count)]
    if path[-1] == "vault":
        return {f"v{i}": f"{{vault://env/V{i}}}" for i in range(count)}
    if path[-1] == "cluster_nodes":
        return [{"ip": "127.0.0.1", "port": 7000 + i} for i in range(count)]
    if path[-1] == "sentinel_nodes":
        return [{"host": "127.0.0.1", "port": 26379 + i} for i in range(count)]
    raise AssertionError(f"no sample entries for {path}")


def _violations(schema: dict[str, Any], path: tuple[Any, ...]) -> Iterator[tuple[str, Any, str]]:
    """(rule, bad value, reason regex) for each constraint of one schema node."""
    kind = schema.get("type")
    if isinstance(kind, str) and kind in TYPE_VALUES and "enum" not in schema:
        yield "type", TYPE_VALUES[kind], rf"expected .*({TYPE_REASONS[kind]})|must be .*({TYPE_REASONS[kind]})"
    if kind == "string":
        if "maxLength" in schema:
            n = schema["maxLength"]
            yield "maxLength", _too_long_string(n, path), rf"at most {n}\b"
        if schema.get("minLength", 0) >= 1:
            n = schema["minLength"]
            yield "minLength", "", rf"at least {n}\b|non-empty"
    if kind == "array":
        if "maxItems" in schema:
            n = schema["maxItems"]
            yield "maxItems", _entries(n + 1, path), rf"at most {n}\b"
        if schema.get("minItems", 0) >= 1:
            yield "minItems", [], rf"at least {schema['minItems']}\b|non-empty"
    if kind == "object":
        if "maxProperties" in schema:
            n = schema["maxProperties"]
            yield "maxProperties", _entries(n + 1, path), rf"at most {n}\b"
        if schema.get("minProperties", 0) >= 1:
            yield "minProperties", {}, rf"at least {schema['minProperties']}\b"
    if "enum" in schema and len(schema["enum"]) > 1:  # a single value is the node type's tag
        yield "enum", "not-one-of-these", r"expected one of|must be one of"
    low, high = schema.get("minimum"), schema.get("maximum")
    bounds = rf"between {low} and {high}|from {low} to {high}|minimum of {low}|maximum of {high}"
    if low is not None:
        yield "minimum", low - 1, bounds
    if high is not None:
        yield "maximum", high + 1, bounds


def _walk(schema: dict[str, Any], path: tuple[Any, ...], node_type: str) -> Iterator[Case]:
    def case(rule: str, sub_path: tuple[Any, ...], value: Any, reason: str) -> Case:
        if sub_path[:3] == ("config", "nodes", 0):
            shown = ".".join([node_type, *map(str, sub_path[3:])])
        else:
            shown = ".".join(map(str, sub_path)) or "<plugin>"
        return Case(f"{shown}:{rule}", node_type, sub_path, rule, value, reason)

    for rule, value, reason in _violations(schema, path):
        yield case(rule, path, value, reason)
    for key in schema.get("required", []):
        yield case(f"required[{key}]", (*path, key), REMOVE, r"missing|needs|required")
    for key, sub in schema.get("properties", {}).items():
        if path == ("config", "nodes", 0) and key == "type":
            continue  # the tag that selects the subschema
        yield from _walk(sub, (*path, key), node_type)
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk(schema["additionalProperties"], (*path, SAMPLE_KEY), node_type)
    if isinstance(schema.get("items"), dict) and path != ("config", "nodes"):
        yield from _walk(schema["items"], (*path, 0), node_type)


def constraint_cases() -> list[Case]:
    if not KONG_SCHEMA_FILE.is_file():
        return []
    schema = kong_schema()
    cases: list[Case] = []
    top = copy.deepcopy(schema)
    top["properties"]["config"]["properties"]["nodes"] = {
        k: v for k, v in top["properties"]["config"]["properties"]["nodes"].items() if k != "items"
    }
    cases.extend(_walk(top, (), "static"))
    for variant in schema["properties"]["config"]["properties"]["nodes"]["items"]["oneOf"]:
        cases.extend(_walk(variant, ("config", "nodes", 0), variant["title"]))
    return cases


# -- deliberate differences ------------------------------------------------------

# case id -> why our refusal gives another reason than the broken constraint
REFUSED_OTHERWISE: dict[str, str] = {
    "config.resources.cache.redis.cloud_authentication.auth_provider:enum": (
        "Redis cloud authentication is not supported at all: any auth_provider is refused as unsupported"
    ),
}

# case id -> why we accept what Kong's schema refuses (see docs/coming-from-kong.md)
DIFFERENCES: dict[str, str] = {
    **{
        f"{entity}{suffix}": "Kong plugin-entity keys around `config:` are accepted and ignored; "
        "decK files write them as names (`service: my-service`), not {id: ...} objects"
        for entity in ("consumer", "consumer_group", "route", "service")
        for suffix in (":type", ".id:type")
    },
}


def _set(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    target: Any = doc
    for i, key in enumerate(path[:-1]):
        nxt = path[i + 1]
        if isinstance(target, list):
            while len(target) <= key:
                target.append({})
            target = target[key]
            continue
        if target.get(key) is None:
            target[key] = [] if isinstance(nxt, int) else {}
        target = target[key]
    last = path[-1]
    if value is REMOVE:
        target.pop(last, None)
    elif isinstance(target, list):
        while len(target) <= last:
            target.append(None)
        target[last] = value
    else:
        target[last] = value


def variant(case: Case) -> dict[str, Any]:
    doc = plugin(base_config(case.node_type))
    _set(doc, case.path, case.value)
    return doc


CASES = constraint_cases()


@pytest.fixture(scope="module")
def kong_validator() -> jsonschema.Draft202012Validator:
    schema = kong_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("node_type", sorted(BASE_NODES))
def test_the_base_config_is_valid_for_kong_and_for_us(node_type, kong_validator):
    doc = plugin(base_config(node_type))
    assert not list(kong_validator.iter_errors(doc)), [e.message for e in kong_validator.iter_errors(doc)]
    load_document(doc)


def test_the_walk_covers_every_node_type_and_rule():
    """Guards the walk itself: a schema change that hid constraints would show."""
    assert {c.node_type for c in CASES} == set(BASE_NODES)
    assert {"type", "maxLength", "minLength", "maxItems", "minItems", "maxProperties", "minProperties",
            "enum", "minimum", "maximum"} <= {c.rule for c in CASES}
    assert any(c.rule.startswith("required[") for c in CASES)
    assert len(CASES) > 200


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_kong_constraint_is_enforced(case: Case, kong_validator):
    doc = variant(case)
    assert list(kong_validator.iter_errors(doc)), f"Kong's schema accepts the variant: the generated case {case.id} is wrong"
    if case.id in DIFFERENCES:
        load_document(doc)  # documented: we accept it (see DIFFERENCES)
        return
    with pytest.raises(ConfigError) as caught:
        load_document(doc)
    error = caught.value
    text = str(error)
    if error.field is None:  # a document-level error names the key in its message
        assert f"'{case.path[-1]}'" in error.message, text
    else:
        assert normal_field(error.field) == case.field, (case.field, text)
    if case.path[:3] == ("config", "nodes", 0):
        assert error.index == 1 and re.search(r"node #1\b", text), text
    if case.id not in REFUSED_OTHERWISE:
        assert re.search(case.reason, text), f"reason /{case.reason}/ not in: {text}"


def test_every_listed_difference_is_a_real_case():
    ids = {c.id for c in CASES}
    assert set(DIFFERENCES) <= ids and set(REFUSED_OTHERWISE) <= ids


# Rules of Kong's Lua schema that its JSON export leaves out (entity checks,
# `match` patterns): from docs/nodes.md#connections.
LUA_ONLY_RULES = [
    pytest.param("call", {"method": "get"}, "method", r"does not match '\^\[A-Z\]\+\$'", id="call.method:upper-case"),
    pytest.param("call", {"method": "GET1"}, "method", r"does not match", id="call.method:letters-only"),
    pytest.param("jq", {"input": "request.body", "inputs": {"a": "request.query"}}, "inputs", r"mutually exclusive", id="jq:input+inputs"),
    pytest.param("jq", {"output": "response.body", "outputs": {}}, "outputs", r"mutually exclusive", id="jq:output+outputs"),
]


@pytest.mark.parametrize(("node_type", "attrs", "field", "reason"), LUA_ONLY_RULES)
def test_kong_rule_missing_from_the_json_export_is_enforced(node_type, attrs, field, reason):
    config = base_config(node_type)
    config["nodes"][0].update(attrs)
    with pytest.raises(ConfigError) as caught:
        load_document(plugin(config))
    assert caught.value.field == field and caught.value.index == 1, str(caught.value)
    assert re.search(reason, str(caught.value)), str(caught.value)


def test_an_upper_case_method_is_accepted():
    config = base_config("call")
    config["nodes"][0]["method"] = "PATCH"
    load_document(plugin(config))
