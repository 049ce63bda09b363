"""Bad workflow files: hypothesis fuzzing of
the loader (`mitmdatakit.config.load_text` / `load_document`).

Whatever the document -- random YAML/JSON structures, random text, or
workflow-shaped documents with random node types, attributes and connection
labels -- loading either gives a Workflow or raises ConfigError; never
another exception, and never a hang (each example has a deadline, each test
a timeout). Bugs the fuzzing found are pinned below as strict xfails.
"""

from __future__ import annotations

import json
import string
import time
from datetime import timedelta
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from mitmdatakit.config import load_document, load_text
from mitmdatakit.errors import ConfigError
from mitmdatakit.properties import FAMILIES, PROPERTIES

FUZZ = settings(
    max_examples=100,
    deadline=timedelta(seconds=3),  # one load of a small document takes milliseconds
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
pytestmark = pytest.mark.timeout(90)


def load_or_config_error(loader, *args, **kw) -> None:
    """The property: a workflow, or a ConfigError that names the file."""
    try:
        loader(*args, **kw)
    except ConfigError as e:
        text = str(e)
        assert text.startswith("fuzz.yaml"), text
        assert e.message


# -- strategies --------------------------------------------------------------

NODE_TYPES = ["call", "jq", "exit", "property", "static", "branch", "cache", "xml_to_json", "json_to_xml",
              "jwt_decode", "jwt_sign", "jwt_verify"]
IMPLICIT = ["request", "service_request", "service_response", "response", "vault"]
NAMES = ["A", "B", "C", "J", "EXIT", "x-1", "a_b"]
PORTS = ["body", "headers", "query", "url", "status", "path", "raw_body", "token", "key", "claims", "data", "hit",
         "miss", "ttl", "$self", "x", "headers.x-a", "query.q"]
ATTRS = ["url", "method", "timeout", "ssl_verify", "ssl_server_name", "jq", "status", "warn_headers_sent",
         "property", "content_type", "non_nil", "values", "then", "else", "ttl", "bypass_on_error",
         "attributes_block_name", "attributes_name_prefix", "text_block_name", "text_as_property",
         "recognize_type", "xpath", "root_element_name", "algorithm", "expires_in", "not_before", "kid", "typ",
         "static_claims", "allowed_algorithms", "issuers", "audiences", "required_claims", "leeway",
         "validate_exp", "validate_nbf"]
PROPERTY_NAMES = [*PROPERTIES, *(p + "x" for p in FAMILIES), "kong.nope", "kong.ctx.shared."]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["", ".", "GET", "http://127.0.0.1:1/x", "https://[::1]:8/", "~^/a", "*.example.com",
                       "HS256", "application/json", "{vault://env/HOME}", ".[[[", "kong.ctx.shared.a"])
)


def chance(n: int):
    """True about once in `n` draws (shrinks towards False): for mistakes
    that should be rare, so most documents get past the first check."""
    return st.sampled_from([False] * (n - 1) + [True])


def json_values(keys=st.text(max_size=10)):
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
        max_leaves=20,
    )


match_blocks = st.fixed_dictionaries(
    {},
    optional={
        "hosts": st.lists(st.sampled_from(["a.test", "*.example.com", "x.*", "", "*"]) | st.text(max_size=6), max_size=3) | scalars,
        "paths": st.lists(st.sampled_from(["/", "/a", "~^/a$", "~(", "~[", "~a{2,1}"]) | st.text(max_size=6), max_size=3) | scalars,
        "methods": st.lists(st.sampled_from(["GET", "post", ""]) | st.text(max_size=4), max_size=3) | scalars,
        "filter": st.sampled_from(["~d api.test & ~m POST", "~q", "!(~s)", "~d (", "~h", "~u [", "~b x | ~c 200"]) | st.text(max_size=10) | scalars,
    },
)
resource_blocks = st.fixed_dictionaries(
    {},
    optional={
        "cache": st.fixed_dictionaries({}, optional={
            "strategy": st.sampled_from(["memory", "redis", "disk", None]),
            "redis": st.fixed_dictionaries({}, optional={"host": st.sampled_from(["127.0.0.1", ""]),
                                                         "port": st.integers(-1, 70000),
                                                         "timeout": st.integers(-1, 5000)}) | json_values(),
            "memory": json_values(),
        }),
        "vault": st.dictionaries(st.text(max_size=6), st.sampled_from(["{vault://env/HOME}", "{vault://env/DK_NOPE_X}", "{vault://my-env/home}", "{vault://ab/x/y}",
                                                                         "{vault://hcv/x}", "{vault://env/HOME/f}", "plain", "{vault:"]) | scalars,
                                 max_size=3),
    },
)


vault_entities = st.fixed_dictionaries(
    {"name": st.sampled_from(["env", "hcv", "x", ""]), "prefix": st.sampled_from(["my-env", "env", "A", "a-", "ab", "dk"])},
    optional={
        "config": st.fixed_dictionaries({}, optional={"prefix": st.sampled_from(["DK_", "", "x"]) | scalars,
                                                     "base64_decode": st.booleans() | scalars}) | json_values(),
        "description": scalars,
        "tags": st.lists(st.text(max_size=3), max_size=2) | scalars,
        "bogus": scalars,
    },
)


def plausible(name: str):
    """Values a user might write for an attribute: mostly valid, sometimes not."""
    special = {
        "url": st.sampled_from(["http://127.0.0.1:1/x", "https://api.test/a?b=c", "ftp://x/", "http://", "x",
                                "http://[::1]:8080/", "http://h:1/%zz", "http://h:99999/"]),
        "method": st.sampled_from(["GET", "post", "PATCH", "G ET", "", "ÄÖ"]),
        "timeout": st.integers(-2, 10_000) | st.sampled_from([None, 1.5, "100"]),
        "jq": st.sampled_from([".", ".a", "{x: .}", ".[[[", 'error("x")', "$__loc__", "def f: f; f", "input", "..", ""]),
        "status": st.integers(99, 600) | st.sampled_from(["200", 200.0, True]),
        "property": st.sampled_from(PROPERTY_NAMES),
        "content_type": st.sampled_from(["application/json", "text/plain", "application/octet-stream", "text/html"]),
        "values": st.dictionaries(st.sampled_from(PORTS) | st.text(max_size=6), json_values(), max_size=4),
        "then": st.lists(st.sampled_from(NAMES) | st.text(max_size=4), max_size=3),
        "else": st.lists(st.sampled_from(NAMES) | st.text(max_size=4), max_size=3),
        "ttl": st.integers(-2, 1000),
        "algorithm": st.sampled_from(["HS256", "RS256", "ES512", "EdDSA", "none", "hs256"]),
        "allowed_algorithms": st.lists(st.sampled_from(["HS256", "RS256", "none"]), max_size=3),
        "xpath": st.sampled_from(["/a/b", "//a", "a[@b='c']", "//a[@", "///", "a/text()", "a[1]", "*"]),
        "root_element_name": st.sampled_from(["root", "1x", "a:b", "", "x y"]),
        "text_block_name": st.sampled_from(["#text", "t", "", "@"]),
        "attributes_block_name": st.sampled_from(["#text", "@attr", "t"]),
        "static_claims": st.dictionaries(st.text(max_size=4), json_values(), max_size=3),
    }
    good = special.get(name, st.booleans() | st.integers(-5, 500) | st.text(max_size=6))
    return chance(15).flatmap(lambda garbage: json_values() if garbage else good)


TYPE_ATTRS = {
    "call": ["url", "method", "timeout", "ssl_verify", "ssl_server_name"],
    "jq": ["jq"],
    "exit": ["status", "warn_headers_sent"],
    "property": ["property", "content_type", "non_nil"],
    "static": ["values"],
    "branch": ["then", "else"],
    "cache": ["ttl", "bypass_on_error"],
    "xml_to_json": ["attributes_block_name", "attributes_name_prefix", "text_block_name", "text_as_property",
                    "recognize_type", "xpath"],
    "json_to_xml": ["root_element_name", "attributes_block_name", "attributes_name_prefix", "text_block_name"],
    "jwt_decode": [],
    "jwt_sign": ["algorithm", "expires_in", "not_before", "kid", "typ", "static_claims"],
    "jwt_verify": ["allowed_algorithms", "issuers", "audiences", "required_claims", "leeway", "validate_exp",
                   "validate_nbf"],
}
REQUIRED = {"call": ["url"], "jq": ["jq"], "property": ["property"], "static": ["values"], "jwt_sign": ["algorithm"]}


@st.composite
def nodes(draw, names: list[str]) -> dict[str, Any]:
    """A node that is plausible most of the time, with random mistakes."""
    node: dict[str, Any] = {}
    node_type = draw(st.sampled_from(NODE_TYPES))
    if not draw(chance(20)):
        node["name"] = draw(st.sampled_from(names))
    else:
        node["name"] = draw(st.sampled_from(IMPLICIT) | scalars)
    node["type"] = node_type if not draw(chance(20)) else draw(st.sampled_from(IMPLICIT) | scalars)
    for attr in REQUIRED.get(node_type, []):
        if not draw(chance(10)):
            node[attr] = draw(plausible(attr))
    for attr in draw(st.lists(st.sampled_from(TYPE_ATTRS[node_type]), max_size=3, unique=True)) if TYPE_ATTRS[node_type] else []:
        node[attr] = draw(plausible(attr))
    if draw(chance(20)):
        node[draw(st.sampled_from(ATTRS) | st.text(max_size=6))] = draw(json_values())  # a stray attribute
    for key in draw(st.lists(st.sampled_from(["input", "inputs", "output", "outputs"]), max_size=3, unique=True)):
        if key.endswith("s"):
            node[key] = draw(st.dictionaries(st.sampled_from(PORTS) | st.text(max_size=5),
                                             label_to(names) | st.none(), max_size=3))
        else:
            node[key] = draw(label_to(names) if not draw(chance(20)) else scalars)
    return node


def label_to(names: list[str]):
    who = st.sampled_from(names + IMPLICIT)
    return st.one_of(
        who,
        st.builds(lambda n, p: f"{n}.{p}", who, st.sampled_from(PORTS)),
        st.builds(lambda n, p, k: f"{n}.{p}.{k}", who, st.sampled_from(PORTS), st.sampled_from(["a", "x-y", "A.B", ""])),
        st.text(max_size=10),
    )


@st.composite
def workflow_documents(draw) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=6, unique=True))
    node_list = draw(st.lists(nodes(names), min_size=1, max_size=6))
    config: dict[str, Any] = {"nodes": node_list if not draw(chance(20)) else draw(scalars)}
    if draw(chance(3)):
        config["resources"] = draw(resource_blocks if not draw(chance(10)) else scalars)
    if draw(chance(10)):
        config["debug"] = draw(st.booleans() | scalars)
    extras: dict[str, Any] = {}
    if draw(chance(5)):
        extras["match"] = draw(match_blocks if not draw(chance(10)) else json_values())
    if draw(chance(10)):
        extras["upstreams"] = draw(st.dictionaries(st.text(max_size=5), st.sampled_from(["127.0.0.1:1", "h:99999", "x"]) | json_values(), max_size=2))
    if draw(chance(8)):
        extras["vaults"] = draw(st.lists(vault_entities, max_size=2) if not draw(chance(10)) else json_values())
    if draw(chance(20)):
        extras[draw(st.text(max_size=6))] = draw(json_values())
    if draw(chance(4)):
        entity = {"name": "datakit", "config": config,
                  **draw(st.fixed_dictionaries({}, optional={
                      "enabled": st.booleans() | st.none() | scalars, "route": json_values(), "service": json_values(),
                      "protocols": st.just(["http", "https"]) | json_values(), "instance_name": st.text(max_size=5) | scalars}))}
        return {**entity, **extras}
    return {**config, **extras}


# -- properties --------------------------------------------------------------


@FUZZ
@given(doc=json_values())
def test_arbitrary_documents(doc):
    load_or_config_error(load_document, doc, source="fuzz.yaml")


@FUZZ
@given(doc=workflow_documents())
def test_workflow_shaped_documents(doc):
    load_or_config_error(load_document, doc, source="fuzz.yaml")


@FUZZ
@given(doc=workflow_documents())
def test_workflow_shaped_yaml_and_json_text(doc):
    load_or_config_error(load_text, yaml.safe_dump(doc), source="fuzz.yaml")
    try:
        text = json.dumps(doc)
    except ValueError:
        return
    load_or_config_error(load_text, text, source="fuzz.yaml", is_json=True)


YAML_ALPHABET = string.ascii_letters[:6] + string.digits[:3] + " \n\t:-[]{},&*!|>'\"#%@`?~.\\"


@FUZZ
@given(text=st.text(alphabet=YAML_ALPHABET, max_size=80) | st.text(max_size=40))
@example("nodes: [")
@example("a: &a [*a]")
@example("nodes: !!python/object:os.system 'true'")
@example("\ufeffnodes: []")
@example("nodes:\n  - {name: A, type: exit}\n---\nnodes: []\n")
def test_arbitrary_text(text):
    try:
        load_or_config_error(load_text, text, source="fuzz.yaml")
    except TypeError as e:
        if "unhashable type" not in str(e):
            raise
        assume(False)  # a known bug, pinned by test_loader_bugs_found_by_fuzzing[list-key]
    load_or_config_error(load_text, text, source="fuzz.yaml", is_json=True)


@pytest.mark.parametrize("text", ["[" * 50_000, "{" * 50_000, "a: " * 20_000, "- " * 20_000, "[" * 50_000 + "]" * 50_000],
                         ids=["open-lists", "open-maps", "nested-maps", "nested-seqs", "closed-lists"])
def test_deep_nesting_is_rejected_in_bounded_time(text):
    """PyYAML is slow on deep nesting (about 1-3 s here); the loader must
    still give a ConfigError (not a RecursionError) in bounded time."""
    started = time.monotonic()
    load_or_config_error(load_text, text, source="fuzz.yaml")
    load_or_config_error(load_text, text, source="fuzz.yaml", is_json=True)
    assert time.monotonic() - started < 20


def test_alias_bombs_load_quickly():
    """YAML aliases are shared, not copied: a "billion laughs" document is
    rejected (or loaded) without expanding it."""
    layers = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        layers.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")
    bomb = "\n".join(layers)
    load_or_config_error(load_text, bomb + "\nnodes: [{name: E, type: exit}]\n", source="fuzz.yaml")
    inside = ("nodes:\n- name: S\n  type: static\n  values:\n    v: &top [" + ", ".join(["*i"] * 10) + "]\n")
    body = "\n".join("  " + line for line in layers)
    doc = "x-anchors: &i\n" + body + "\n" + inside
    load_or_config_error(load_text, doc, source="fuzz.yaml")


# -- bugs the fuzzing found ----------------------------------------------------

# (fixed; kept as regression cases)
LOADER_BUGS = {
    # a YAML mapping key that is not a string: TypeError in config._schema_check
    # (config.py:200, '".".join(path)' with an int), or in yaml's constructor
    # (config.py:38, 'key in mapping' with an unhashable key)
    "int-key-in-node": "nodes: [{1: 2, name: E, type: exit}]\n",
    "null-key-in-node": "nodes: [{~: 2, name: E, type: exit}]\n",
    "int-key-at-top": "{1: 2, nodes: [{name: E, type: exit}]}\n",
    "list-key": "? [1]\n: 1\n",
    # an int port name in `inputs`/`outputs`: AttributeError in graph.declare_all
    # (graph.py:218 / 222, 'port.split')
    "int-port-in-inputs": "nodes: [{name: J, type: jq, jq: ., inputs: {1: request.body}}]\n",
    "int-port-in-outputs": "nodes: [{name: J, type: jq, jq: ., outputs: {1: response.body}}]\n",
    # a malformed IPv6 URL: ValueError from urllib in CallNode._check_url (call.py:61)
    "bad-ipv6-url": "nodes: [{name: C, type: call, url: 'http://[::1/'}]\n",
}


@pytest.mark.parametrize("text", list(LOADER_BUGS.values()), ids=list(LOADER_BUGS))
def test_loader_bugs_found_by_fuzzing(text):
    load_or_config_error(load_text, text, source="fuzz.yaml")


@pytest.mark.parametrize("doc", [
    {"nodes": [{"name": "S", "type": "static", "values": {"a": 1}, "input": "request.body"}]},
    {"nodes": [{"name": "J", "type": "jq", "jq": ".", "input": "request.body", "output": "vault"}]},
    {"nodes": [{"name": "J", "type": "jq", "jq": ".", "input": "request.body", "output": "service_response"}]},
], ids=["into-static", "into-vault", "into-service_response"])
def test_connections_into_nodes_without_inputs_are_rejected(doc):
    with pytest.raises(ConfigError):
        load_document(doc, source="fuzz.yaml")
