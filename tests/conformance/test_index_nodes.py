"""Kong conformance of the node sections of Kong's Datakit page, through one
real mitmdump serving a directory of workflows (see `_support`).

Source: Kong/developer.konghq.com `app/_kong_plugins/datakit/index.md`,
sections "Node input and output", "Validation and connection semantics",
"jq node", "Exit node", "Property node", "Static node", "Branch node",
"Cache node", "Implicit nodes" and "Vault node". Each test's docstring names
its section. `https://example.com/...` URLs point at a local MockServer
that echoes the request it gets.

Header names: Kong's page (3.12+) says the implicit nodes preserve header
name casing; the 3.11 seed this project follows says they are lowercased,
and the seed wins (docs/coming-from-kong.md, "Seed vs. later pages"). The
header tests below show both the consequence and the portable idiom.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conformance._support import (
    INDEX,
    config_error,
    json_body,
    read_in_response_phase,
    serve,
    workflow,
    write_workflows,
)
from tests.harness import Mitmdump, MockServer, RecordedRequest, Reply

CACHE = {"cache": {"strategy": "memory"}}
SECRET = "s3cr3t-value"


def echo(req: RecordedRequest) -> Reply:
    return Reply(json=req.to_echo(), headers={"X-Upstream": "yes"})


def exit_body(source: str) -> dict[str, Any]:
    return {"name": "EXIT", "type": "exit", "inputs": {"body": source}}


def workflows(api: str) -> dict[str, dict[str, Any]]:
    w = workflow
    return {
        # -- "jq node" > "jq node inputs" --------------------------------------
        "jq-self-type": w("jq-self-type", [
            {"name": "IP", "type": "property", "property": "kong.client.ip"},
            {"name": "FILTER_REQUEST", "type": "jq", "input": "request", "jq": ". | type"},
            {"name": "FILTER_IP", "type": "jq", "input": "IP", "jq": ". | type"},
            exit_body_of({"request": "FILTER_REQUEST", "ip": "FILTER_IP"})], debug=True),
        "jq-inputs-object": w("jq-inputs-object", [
            {"name": "IP", "type": "property", "property": "kong.client.ip"},
            {"name": "F", "type": "jq", "inputs": {"req": "request", "ip": "IP"},
             "jq": '{"$self": (. | type), "req": (.req | type), "ip": (.ip | type)}'},
            exit_body("F")], debug=True),
        # -- "jq node outputs" ---------------------------------------------------
        **{f"jq-out-{kind}": w(f"jq-out-{kind}", [
            {"name": "OUT", "type": "jq", "jq": program},
            {"name": "WRAP", "type": "jq", "input": "OUT", "jq": "{value: ., type: type}"},
            exit_body("WRAP")], debug=True)
           for kind, program in JQ_OUTPUTS.items()},
        "jq-bad-headers": w("jq-bad-headers", [
            {"name": "HEADERS", "type": "jq", "jq": '"oops, not an object/map"'},
            {"name": "EXIT", "type": "exit", "inputs": {"headers": "HEADERS"}}]),
        # -- "Handling HTTP headers in jq" -------------------------------------
        "hdr-naive": w("hdr-naive", [
            {"name": "ADD_HEADERS", "type": "jq", "input": "request.headers", "output": "service_request.headers",
             "jq": '{"X-Extra": ( .["X-Extra"] // "default value" )}'}]),
        "hdr-robust": w("hdr-robust", [
            {"name": "ADD_HEADERS", "type": "jq", "input": "request.headers", "output": "service_request.headers",
             "jq": 'with_entries(.key |= ascii_downcase)\n| {"X-Extra": ( .["x-extra"] // "default value" )}\n'}]),
        # docs/coming-from-kong.md, "Header name casing", verbatim
        "hdr-idiom": w("hdr-idiom", [
            {"name": "EXTRA", "type": "jq", "input": "request",
             "jq": '.headers | with_entries(.key |= ascii_downcase) | .["x-extra"] // "default value"\n'},
            exit_body("EXTRA")]),
        "hdr-merge": w("hdr-merge", [
            HEADER_UPDATES,
            {"name": "merged_headers", "type": "jq", "inputs": {"original": "request.headers", "updates": "header_updates"},
             "jq": "(.original | with_entries(.key |= ascii_downcase))\n*\n(.updates | with_entries(.key |= ascii_downcase))\n"},
            {"name": "api", "type": "call", "url": f"{api}/echo", "inputs": {"headers": "merged_headers"}},
            exit_body("api.body")]),
        "hdr-merge-casing": w("hdr-merge-casing", [
            HEADER_UPDATES,
            {"name": "merged_headers", "type": "jq", "inputs": {"original": "request.headers", "updates": "header_updates"},
             "jq": (". as $input\n| $input.original\n| with_entries({ key: .key | ascii_downcase, value: .key })\n  as $keys\n"
                    "| $input.updates\n| with_entries(.key = ($keys[.key | ascii_downcase] // .key))\n  as $updates\n"
                    "| $input.original * $updates\n")},
            {"name": "api", "type": "call", "url": f"{api}/echo", "inputs": {"headers": "merged_headers"}},
            exit_body("api.body")]),
        # -- "jq node" > "Examples" ----------------------------------------------
        "jq-coerce": w("jq-coerce", [
            {"name": "BODY", "type": "jq", "input": "request.body",
             "jq": "if type == \"object\" then\n  .\nelse\n  { data: . }\nend\n"},
            exit_body("BODY")]),
        "jq-join": w("jq-join", [
            {"name": "FOO", "type": "call", "url": f"{api}/foo"},
            {"name": "BAR", "type": "call", "url": f"{api}/bar"},
            {"name": "JOIN", "type": "jq", "inputs": {"foo": "FOO.body", "bar": "BAR.body"}, "jq": "."},
            exit_body("JOIN")]),
        # -- "Exit node" -----------------------------------------------------------
        "exit-call": w("exit-call", [
            {"name": "CALL", "type": "call", "url": f"{api}/echo"},
            {"name": "EXIT", "type": "exit", "input": "CALL"}]),
        "exit-status": w("exit-status", [
            {"name": "B", "type": "static", "values": {"gone": True}},
            {"name": "EXIT", "type": "exit", "status": 410, "inputs": {"body": "B"}}]),
        # -- "Property node" -----------------------------------------------------
        "prop-store-request": w("prop-store-request", [
            {"name": "STORE_REQUEST", "type": "property", "property": "kong.ctx.shared.my_request", "input": "request"},
            *read_in_response_phase("kong.ctx.shared.my_request", ".query")], debug=True),
        "prop-output-self": w("prop-output-self", [
            {"name": "GET_IP", "type": "property", "property": "kong.client.ip", "output": "response.body"}]),
        "prop-non-nil-get": w("prop-non-nil-get", [
            {"name": "GET_SRC", "type": "property", "property": "kong.ctx.shared.src", "non_nil": True},
            exit_body("GET_SRC")], debug=True),
        "prop-non-nil-set": w("prop-non-nil-set", [
            {"name": "NOTHING", "type": "jq", "jq": "null"},
            {"name": "SET_API_KEY", "type": "property", "property": "kong.ctx.shared.api_key", "non_nil": True,
             "input": "NOTHING"},
            {"name": "EXIT", "type": "exit", "status": 204}], debug=True),
        "prop-nil-get": w("prop-nil-get", [
            {"name": "GET_SRC", "type": "property", "property": "kong.ctx.shared.src"},
            {"name": "F", "type": "jq", "input": "GET_SRC", "jq": "{value: .}"},
            exit_body("F")], debug=True),
        "prop-types": w("prop-types", [
            *({"name": f"P{i}", "type": "property", "property": name} for i, name in enumerate(PROPERTY_TYPES)),
            {"name": "TYPES", "type": "jq", "inputs": {f"p{i}": f"P{i}" for i in range(len(PROPERTY_TYPES))},
             "jq": "map_values(type)"},
            exit_body("TYPES")], debug=True),
        "prop-response-status": w("prop-response-status", [
            {"name": "S", "type": "jq", "jq": "418"},
            {"name": "SET", "type": "property", "property": "kong.response.status", "input": "S"}]),
        "prop-ctx-plugin": w("prop-ctx-plugin", [
            {"name": "VALUE", "type": "static", "values": {"data": {"a": 1, "b": 2}}},
            {"name": "PROPERTY", "type": "property", "property": "kong.ctx.plugin.my_property", "input": "VALUE.data"},
            *read_in_response_phase("kong.ctx.plugin.my_property", ".")], debug=True),
        # -- "Static node" ---------------------------------------------------------
        "static-call-inputs": w("static-call-inputs", [
            {"name": "CALL_INPUTS", "type": "static", "values": {
                "headers": {"X-Foo": "123", "X-Multi": ["first", "second"]},
                "query": {"a": True, "b": 10},
                "body": {"data": "my request body data"}}},
            {"name": "CALL", "type": "call", "url": f"{api}/echo", "method": "POST", "input": "CALL_INPUTS"},
            exit_body("CALL.body")]),
        "static-default": w("static-default", [
            {"name": "VALUE", "type": "static", "values": {"default": "my default value"}},
            {"name": "FILTER", "type": "jq", "inputs": {"query": "request.query", "default": "VALUE.default"},
             "jq": ".query.foo // .default"},
            exit_body("FILTER")]),
        "static-common-headers": w("static-common-headers", [
            {"name": "HEADERS", "type": "static", "values": {"X-Common": "we always need this header"}},
            {"name": "CALL_FOO", "type": "call", "url": f"{api}/foo", "inputs": {"headers": "HEADERS"}},
            {"name": "CALL_BAR", "type": "call", "url": f"{api}/bar", "inputs": {"headers": "HEADERS"}},
            {"name": "J", "type": "jq", "inputs": {"foo": "CALL_FOO.body", "bar": "CALL_BAR.body"},
             "jq": "[.foo.headers[\"x-common\"], .bar.headers[\"x-common\"]]"},
            exit_body("J")]),
        # -- "Branch node" ---------------------------------------------------------
        "branch": w("branch", [
            {"name": "COND", "type": "jq", "input": "request.query", "jq": ".c | fromjson"},
            {"name": "BRANCH", "type": "branch", "input": "COND", "then": ["YES"], "else": ["NO"]},
            {"name": "YES", "type": "exit", "status": 201},
            {"name": "NO", "type": "exit", "status": 202}], debug=True),
        "branch-unlisted": w("branch-unlisted", [
            {"name": "COND", "type": "jq", "jq": "false"},
            {"name": "BRANCH", "type": "branch", "input": "COND", "then": ["SKIPPED"], "else": ["NOTE"]},
            {"name": "NOTE", "type": "static", "values": {"note": "else branch"}},
            {"name": "SKIPPED", "type": "exit", "status": 201},
            {"name": "ALWAYS", "type": "static", "values": {"ran": True}},
            {"name": "EXIT", "type": "exit", "status": 203, "inputs": {"body": "ALWAYS"}}], debug=True),
        # -- "Branch node" > "Example" with "Cache node" ---------------------------
        "cache-branch": w("cache-branch", [
            {"name": "CACHE_KEY_GET", "type": "static", "values": {"key": "cache key"}},
            {"name": "GET", "type": "cache", "input": "CACHE_KEY_GET", "ttl": 200},
            {"name": "branch", "type": "branch", "input": "GET.miss", "then": ["DATA", "SET", "EXIT_MISS"],
             "else": ["EXIT_HIT"]},
            {"name": "DATA", "type": "static", "values": {"key": "cache key", "data": {"cached": "value"}}},
            {"name": "SET", "type": "cache", "input": "DATA", "ttl": 200},
            {"name": "EXIT_MISS", "type": "exit", "status": 200, "inputs": {"body": "SET.data"}},
            {"name": "EXIT_HIT", "type": "exit", "status": 200, "inputs": {"body": "GET.data"}}],
            resources=CACHE, debug=True),
        "cache-outputs": w("cache-outputs", [
            {"name": "K", "type": "jq", "input": "request.query", "jq": ".k"},
            {"name": "D", "type": "jq", "input": "request.query", "jq": ".d"},
            {"name": "C", "type": "cache", "inputs": {"key": "K", "data": "D"}},
            {"name": "OUT", "type": "jq", "inputs": {"hit": "C.hit", "miss": "C.miss", "stored": "C.stored",
                                                      "data": "C.data"}, "jq": "."},
            exit_body("OUT")], resources=CACHE, debug=True),
        # -- "Vault node" ------------------------------------------------------------
        "vault": w("vault", [
            {"name": "JQ", "type": "jq", "inputs": {"secret1": "vault.secret1"}, "jq": f'{{matches: (.secret1 == "{SECRET}")}}'},
            exit_body("JQ")], resources={"vault": {"secret1": "{vault://env/my-secret1}"}}),
        # -- "Node input and output" -------------------------------------------------
        "io-reflexive": w("io-reflexive", [
            {"name": "GET_PROPERTY", "type": "property", "property": "kong.client.ip", "output": "FILTER"},
            {"name": "FILTER", "type": "jq", "jq": "{ip: .}"},
            exit_body("FILTER")]),
        "io-outputs-fields": w("io-outputs-fields", [
            {"name": "API", "type": "call", "url": f"{api}/echo", "outputs": {"body": "FILTER_BODY", "headers": "FILTER_HEADERS"}},
            {"name": "FILTER_BODY", "type": "jq", "jq": ".method"},
            {"name": "FILTER_HEADERS", "type": "jq", "jq": '.["x-upstream"]'},
            exit_body_of({"method": "FILTER_BODY", "upstream": "FILTER_HEADERS"})]),
        "io-order": w("io-order", [
            {"name": "GET_FOO", "type": "property", "property": "kong.ctx.shared.foo"},
            {"name": "COMBINE", "type": "jq", "inputs": {"foo": "GET_FOO", "bar": "GET_BAR"}, "jq": ".foo * .bar"},
            {"name": "GET_BAR", "type": "property", "property": "kong.ctx.shared.bar"},
            {"name": "SET_BAR", "type": "property", "property": "kong.ctx.shared.bar", "input": "BAR_VALUE"},
            {"name": "BAR_VALUE", "type": "static", "values": {"b": 2}},
            exit_body("COMBINE")], debug=True),
        # -- "Validation and connection semantics" -------------------------------
        "object-object": w("object-object", [
            {"name": "api_call", "type": "call", "url": f"{api}/echo", "method": "POST", "input": "request",
             "output": "service_request"}]),
        "object-any": w("object-any", [
            {"name": "filter", "type": "jq", "input": "request", "jq": "keys"},
            exit_body("filter")]),
        "object-any-headers": w("object-any-headers", [
            {"name": "H", "type": "jq", "input": "request.headers", "jq": "."},
            exit_body("H")]),
        "object-object-explicit": w("object-object-explicit", [
            {"name": "api_call", "type": "call", "url": f"{api}/echo", "method": "POST",
             "inputs": {"body": "request.body", "query": "request.query", "headers": "request.headers"},
             "outputs": {"body": "service_request.body", "headers": "service_request.headers"}}]),
        "star-any": w("star-any", [
            {"name": "T", "type": "jq", "inputs": {"port": "request.port", "query": "request.query"},
             "jq": "{port: (.port | type), query: (.query | type)}"},
            exit_body("T")]),
        "exit-headers": w("exit-headers", [
            {"name": "H", "type": "static", "values": {"X-From-Exit": "1", "X-Multi": ["a", "b"]}},
            {"name": "B", "type": "static", "values": {"ok": True}},
            {"name": "EXIT", "type": "exit", "status": 200, "inputs": {"body": "B", "headers": "H"}}]),
        "resp-body-ct": w("resp-body-ct", [
            {"name": "B", "type": "static", "values": {"replaced": True}, "output": "response.body"},
            {"name": "H", "type": "static", "values": {"Content-Type": "application/vnd.api+json"},
             "output": "response.headers"}]),
        "sresp-headers": w("sresp-headers", [
            {"name": "F", "type": "jq", "input": "service_response.headers", "jq": '.["set-cookie"]',
             "output": "response.body"}]),
        "sresp-text": w("sresp-text", [
            {"name": "F", "type": "jq", "input": "service_response.body", "jq": "{type: type}",
             "output": "response.body"}]),
        "query-repeated": w("query-repeated", [
            {"name": "Q", "type": "jq", "input": "request.query", "jq": "."},
            exit_body("Q")]),
        "prop-non-nil-ok": w("prop-non-nil-ok", [
            {"name": "V", "type": "static", "values": {"src": "key-123"}},
            {"name": "SET_SRC", "type": "property", "property": "kong.ctx.shared.src", "input": "V.src", "non_nil": True},
            *read_in_response_phase("kong.ctx.shared.src", "{src: .}")], debug=True),
        "prop-bad-status": w("prop-bad-status", [
            {"name": "S", "type": "jq", "jq": '"teapot"'},
            {"name": "SET", "type": "property", "property": "kong.response.status", "input": "S"},
            {"name": "EXIT", "type": "exit", "status": 200}], debug=True),
        "cache-ttl": w("cache-ttl", [
            {"name": "K", "type": "jq", "input": "request.query", "jq": ".k"},
            {"name": "D", "type": "jq", "input": "request.query", "jq": ".d"},
            {"name": "T", "type": "static", "values": {"ttl": 1}},
            {"name": "C", "type": "cache", "inputs": {"key": "K", "data": "D", "ttl": "T.ttl"}},
            {"name": "OUT", "type": "jq", "inputs": {"hit": "C.hit", "data": "C.data"}, "jq": "."},
            exit_body("OUT")], resources=CACHE, debug=True),
        # -- "Implicit nodes" --------------------------------------------------------
        "implicit-request": w("implicit-request", [
            {"name": "F", "type": "jq", "input": "request",
             "jq": "{path, raw_path, port, method, scheme, version, query, headers: {x: .headers[\"x-multi\"]}}"},
            exit_body("F")]),
        "implicit-body": w("implicit-body", [
            {"name": "F", "type": "jq", "input": "request.body", "jq": "{type: type, value: .}"},
            exit_body("F")]),
        "sreq-body": w("sreq-body", [
            {"name": "B", "type": "static", "values": {"id": 1}, "output": "service_request.body"}]),
        "sreq-body-ct": w("sreq-body-ct", [
            {"name": "B", "type": "static", "values": {"id": 1}, "output": "service_request.body"},
            {"name": "H", "type": "static", "values": {"Content-Type": "application/vnd.api+json"},
             "output": "service_request.headers"}]),
        "sreq-query": w("sreq-query", [
            {"name": "Q", "type": "static", "values": {"a": "1", "list": ["x", "y"]}, "output": "service_request.query"}]),
        "sresp": w("sresp", [
            {"name": "F", "type": "jq", "inputs": {"status": "service_response.status", "body": "service_response.body",
                                                   "raw": "service_response.raw_body"},
             "jq": "{status, method: .body.method, raw_type: (.raw | type)}", "output": "response.body"}]),
        "resp-body": w("resp-body", [
            {"name": "B", "type": "static", "values": {"replaced": True}, "output": "response.body"}]),
    }


def exit_body_of(inputs: dict[str, str]) -> dict[str, Any]:
    """An exit whose body is an object built from `inputs` (a jq `.`)."""
    return {"name": "EXIT", "type": "exit", "inputs": {"body": "ASSEMBLE"}, "_assemble": inputs}


JQ_OUTPUTS = {"string": '"my string"', "number": "54321", "boolean": "true", "object": "{\n  a: 1,\n  b: 2\n}"}
HEADER_UPDATES = {"name": "header_updates", "type": "static",
                  "values": {"X-Foo": "123", "X-Custom": "my header", "X-Multi": ["first", "second"]}}
PROPERTY_TYPES = {"kong.client.ip": "string", "kong.client.port": "number", "kong.client.protocol": "string",
                  "kong.request.port": "number", "kong.version": "string", "kong.nginx.subsystem": "string",
                  "kong.client.forwarded_ip": "string", "kong.client.forwarded_port": "number"}
DATAKIT = Path(sys.executable).parent / "datakit"
# INDEX "Supported properties": the `get` table, the `set` table and the get-and-set table
GET_PROPERTIES = [
    "kong.client.consumer", "kong.client.credential", "kong.client.forwarded_ip", "kong.client.forwarded_port",
    "kong.client.ip", "kong.client.port", "kong.client.protocol", "kong.request.forwarded_host",
    "kong.request.forwarded_port", "kong.request.forwarded_scheme", "kong.request.port", "kong.router.route",
    "kong.route_id", "kong.route_name", "kong.router.service", "kong.service_name", "kong.service_id",
    "kong.service.response.status", "kong.version", "kong.nginx.subsystem", "kong.node.id",
    "kong.configuration.listen_port", "kong.ctx.plugin.k", "kong.ctx.shared.k",
    "kong.client.consumer_groups",
    "kong.client.identity_realm_source",
    "kong.response.source",
    "kong.node.memory_stats",
]
SET_PROPERTIES = ["kong.service.target", "kong.service.request.scheme", "kong.response.status",
                  "kong.service.upstream", "kong.client.consumer", "kong.ctx.plugin.k", "kong.ctx.shared.k"]


def expand(doc: dict[str, Any]) -> dict[str, Any]:
    """Replace `exit_body_of` placeholders by an ASSEMBLE jq node and the exit."""
    nodes = []
    for node in doc["nodes"]:
        if "_assemble" in node:
            inputs = node.pop("_assemble")
            nodes.append({"name": "ASSEMBLE", "type": "jq", "inputs": inputs, "jq": "."})
        nodes.append(node)
    return {**doc, "nodes": nodes}


# -- fixtures --------------------------------------------------------------------


@pytest.fixture(scope="module")
def api() -> Iterator[MockServer]:
    with MockServer() as server:
        server.route("*", "/*", echo)
        server.route("GET", "/sresp-headers/*", Reply(json={}, headers=[("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]))
        server.route("GET", "/sresp-text/*", Reply(body='{"looks": "like json"}', headers={"Content-Type": "text/plain"}))
        yield server


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, mitm_confdir, api: MockServer) -> Iterator[Mitmdump]:
    docs = {prefix: expand(doc) for prefix, doc in workflows(api.url).items()}
    directory = write_workflows(tmp_path_factory.mktemp("index-nodes-conformance"), docs)
    yield from serve(directory, mitm_confdir, env={"MY_SECRET1": SECRET})


@pytest.fixture
def c(proxy: Mitmdump) -> Iterator[httpx.Client]:
    with proxy.client() as client:
        yield client


def get(c: httpx.Client, api: MockServer, prefix: str, **kw: Any) -> httpx.Response:
    return c.get(f"{api.url}/{prefix}/x", **kw)


# -- jq node ---------------------------------------------------------------------


def test_jq_self_input_of_any_type(c, api):
    """INDEX "jq node inputs": a node-wise (`$self`) input may be of any type
    (`. | type` yields "object" for an object, "string" for `kong.client.ip`)."""
    assert get(c, api, "jq-self-type").json() == {"request": "object", "ip": "string"}


def test_jq_named_inputs_are_an_object(c, api):
    """INDEX "jq node inputs": with individual `inputs`, jq's input is an
    object with one field per input."""
    assert get(c, api, "jq-inputs-object").json() == {"$self": "object", "req": "object", "ip": "string"}


@pytest.mark.parametrize("kind", list(JQ_OUTPUTS))
def test_jq_output_of_any_type(c, api, kind):
    """INDEX "jq node outputs": a filter can produce any type of data."""
    body = get(c, api, f"jq-out-{kind}").json()
    assert body["type"] == kind
    assert body["value"] == {"string": "my string", "number": 54321, "boolean": True, "object": {"a": 1, "b": 2}}[kind]


def test_jq_output_of_the_wrong_type_is_a_500(c, api):
    """INDEX "jq node outputs": a string connected to exit `headers` "will cause
    Datakit to return a 500 error to the client when encountered"."""
    assert get(c, api, "jq-bad-headers").status_code == 500


def test_jq_field_outputs_are_refused(tmp_path):
    """INDEX "jq node outputs": "Datakit will reject this configuration" (a jq
    node's `outputs` naming a field)."""
    output = config_error(tmp_path, {"nodes": [
        {"name": "HEADERS", "type": "jq", "jq": '"this is completely opaque to Datakit"',
         "outputs": {"body": "EXIT.body"}},
        {"name": "EXIT", "type": "exit"}]})
    assert "HEADERS" in output


@pytest.mark.parametrize("sent", ["X-Extra", "X-EXTRA", "x-extra"])
def test_the_naive_header_filter_never_sees_the_header(c, api, sent):
    """INDEX "Handling HTTP headers in jq": `.["X-Extra"]` depends on the
    client's casing in Kong. Here (seed: header names are lowercased) it never
    matches, whatever the client sends; see the portable idiom below."""
    r = get(c, api, "hdr-naive", headers={sent: "from client"})
    assert r.json()["headers"]["x-extra"] == "default value"


@pytest.mark.parametrize("sent", ["X-Extra", "X-EXTRA", "x-extra"])
def test_the_portable_header_idiom_works_for_any_casing(c, api, sent):
    """INDEX "Handling HTTP headers in jq": `with_entries(.key |= ascii_downcase)`
    then a lowercase lookup finds the header whatever its casing (the idiom
    docs/coming-from-kong.md recommends)."""
    r = get(c, api, "hdr-robust", headers={sent: "from client"})
    assert r.json()["headers"]["x-extra"] == "from client"


def test_the_portable_header_idiom_default(c, api):
    """INDEX "Handling HTTP headers in jq": without the header, the default."""
    assert get(c, api, "hdr-robust").json()["headers"]["x-extra"] == "default value"


@pytest.mark.parametrize("sent,expected", [
    ({"X-Extra": "v"}, "v"), ({"X-EXTRA": "v"}, "v"), ({"x-extra": "v"}, "v"), ({}, "default value")])
def test_the_portable_header_idiom_in_coming_from_kong(c, api, sent, expected):
    """docs/coming-from-kong.md "Header name casing" (INDEX "Handling HTTP
    headers in jq"; seed: header names are lowercase): `.headers |
    with_entries(.key |= ascii_downcase)` finds a header in any casing."""
    assert get(c, api, "hdr-idiom", headers=sent).text == expected


def test_header_names_are_lowercase(c, api):
    """Seed (../shared/reference/seed-datakit-3.11.md): header names are
    normalized to lowercase; the seed wins over INDEX "Headers" ("Original
    header name casing is preserved")."""
    r = get(c, api, "object-any-headers", headers={"X-MiXeD-Case": "1"})
    assert "x-mixed-case" in r.json() and "X-MiXeD-Case" not in r.json()


def test_merging_header_objects_lowercased(c, api):
    """INDEX "Merging header objects": the updates override the client's
    headers whatever their casing; arrays become repeated headers."""
    r = get(c, api, "hdr-merge", headers={"X-FOO": "client", "X-Kept": "k"})
    headers = r.json()["headers"]
    assert headers["x-foo"] == "123"
    assert headers["x-custom"] == "my header"
    assert headers["x-kept"] == "k"
    assert headers["x-multi"] == ["first", "second"]


def test_merging_header_objects_keeping_the_original_names(c, api):
    """INDEX "Merging header objects", second example: updates take the
    original's key names, so the update replaces the client's value."""
    r = get(c, api, "hdr-merge-casing", headers={"X-Foo": "client"})
    echo_ = r.json()
    assert echo_["headers"]["x-foo"] == "123"
    assert [v for k, v in echo_["raw_headers"] if k.lower() == "x-foo"] == ["123"]


def test_jq_coerce_an_object_body(c, api):
    """INDEX "jq node" > "Examples" (coerce the body): an object is kept."""
    r = c.post(f"{api.url}/jq-coerce/x", **json_body({"a": 1}))
    assert r.json() == {"a": 1}


def test_jq_coerce_a_non_object_body(c, api):
    """INDEX "jq node" > "Examples": anything else becomes `{data: .}`."""
    r = c.post(f"{api.url}/jq-coerce/x", **json_body([1, 2]))
    assert r.json() == {"data": [1, 2]}


def test_jq_join_two_calls(c, api):
    """INDEX "jq node" > "Examples" (join the output of two API calls)."""
    body = get(c, api, "jq-join").json()
    assert (body["foo"]["path"], body["bar"]["path"]) == ("/foo", "/bar")


# -- exit node -------------------------------------------------------------------


def test_exit_with_a_call_node_wise(c, api):
    """INDEX "Exit node" > "Examples": `input: CALL` sends the call's response
    (body and headers) directly to the client."""
    r = get(c, api, "exit-call")
    assert r.status_code == 200
    assert r.json()["path"] == "/echo"
    assert r.headers["x-upstream"] == "yes"


def test_exit_status(c, api):
    """INDEX "Exit node": an early exit with the configured status; the
    service is never reached."""
    before = len(api.requests)
    r = get(c, api, "exit-status")
    assert (r.status_code, r.json()) == (410, {"gone": True})
    assert len(api.requests) == before


# -- property node -----------------------------------------------------------------


def test_property_set_with_self_input_then_get(c, api):
    """INDEX "Property node inputs": with `input: request` the property is
    set; without input it is read."""
    r = get(c, api, "prop-store-request", params={"q": "1"})
    assert r.status_code == 200, r.text
    assert r.json() == {"q": "1"}


def test_property_field_inputs_are_refused(tmp_path):
    """INDEX "Property node inputs": "No individual field-level inputs are permitted"."""
    output = config_error(tmp_path, {"nodes": [
        {"name": "STORE_REQUEST_BY_FIELD", "type": "property", "property": "kong.ctx.shared.my_request",
         "inputs": {"body": "request.body"}}]})
    assert "STORE_REQUEST_BY_FIELD" in output


def test_property_field_outputs_are_refused(tmp_path):
    """INDEX "Property node outputs": "Field-level output connections are not supported"."""
    output = config_error(tmp_path, {"nodes": [
        {"name": "GET_ROUTE_ID", "type": "property", "property": "kong.router.route",
         "outputs": {"id": "response.body"}}]})
    assert "GET_ROUTE_ID" in output


def test_property_self_output(c, api):
    """INDEX "Property node outputs": the `$self` output, here to `response.body`."""
    r = get(c, api, "prop-output-self")
    assert r.text == "127.0.0.1"  # a string body is sent as is (INDEX "Body")


def test_non_nil_get_of_a_missing_value_fails(c, api):
    """INDEX "Requiring non-nil property values": a `get` "triggers an error
    instead of sending nil/null as output"."""
    r = get(c, api, "prop-non-nil-get")
    assert r.status_code == 500
    assert r.json()["node"]["name"] == "GET_SRC"


def test_non_nil_set_of_null_fails(c, api):
    """INDEX "Requiring non-nil property values": a `set` "triggers an error
    instead of accepting nil/null as input"."""
    r = get(c, api, "prop-non-nil-set")
    assert r.status_code == 500
    assert r.json()["node"]["name"] == "SET_API_KEY"


def test_without_non_nil_a_missing_value_is_null(c, api):
    """INDEX "Requiring non-nil property values": by default `nil` is sent on."""
    r = get(c, api, "prop-nil-get")
    assert (r.status_code, r.json()) == (200, {"value": None})


def test_supported_property_types(c, api):
    """INDEX "Supported properties": each readable property has the data type
    the table gives."""
    types = get(c, api, "prop-types").json()
    assert types == {f"p{i}": kind for i, kind in enumerate(PROPERTY_TYPES.values())}


def test_set_kong_response_status(c, api):
    """INDEX "Supported properties": `kong.response.status` can be set."""
    assert get(c, api, "prop-response-status").status_code == 418


def test_kong_ctx_plugin_get_and_set(c, api):
    """INDEX "Supported properties" (`kong.ctx.plugin.{key}`, get and set) and
    "Static node" > "Examples" (set a property from a static value)."""
    assert get(c, api, "prop-ctx-plugin").json() == {"a": 1, "b": 2}


def test_setting_a_get_only_property_is_refused(tmp_path):
    """INDEX "Supported properties": `kong.client.ip` is in the `get` table only."""
    output = config_error(tmp_path, {"nodes": [
        {"name": "V", "type": "static", "values": {"ip": "10.0.0.1"}},
        {"name": "SET_IP", "type": "property", "property": "kong.client.ip", "input": "V.ip"}]})
    assert "kong.client.ip" in output


def validate(tmp_path: Path, nodes: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "workflow.yaml"
    path.write_text(yaml.safe_dump({"nodes": nodes, "upstreams": {"u": "127.0.0.1:9"}}, sort_keys=False))
    return subprocess.run([str(DATAKIT), "validate", str(path)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name", GET_PROPERTIES)
def test_documented_property_can_be_read(tmp_path, name):
    """INDEX "Supported properties": every property of the `get` tables is accepted."""
    proc = validate(tmp_path, [{"name": "GET", "type": "property", "property": name}])
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", SET_PROPERTIES)
def test_documented_property_can_be_set(tmp_path, name):
    """INDEX "Supported properties": every property of the `set` tables is accepted with an input."""
    proc = validate(tmp_path, [{"name": "V", "type": "jq", "jq": "null"},
                               {"name": "SET", "type": "property", "property": name, "input": "V"}])
    assert proc.returncode == 0, proc.stdout + proc.stderr


SET_ONLY_PROPERTIES = ["kong.service.target", "kong.service.request.scheme", "kong.response.status", "kong.service.upstream"]


@pytest.mark.parametrize("name", SET_ONLY_PROPERTIES)
def test_set_only_property_cannot_be_read(tmp_path, name):
    """INDEX "Supported properties": these four are only in the `set` table
    (Kong has no getter for them), so a node reading one is refused at load,
    naming the node and its `property` field."""
    proc = validate(tmp_path, [{"name": "READ_IT", "type": "property", "property": name}])
    assert proc.returncode != 0
    assert "node #1 'READ_IT' (property): field 'property'" in proc.stdout + proc.stderr
    assert f"property '{name}' can only be set" in proc.stdout + proc.stderr


def test_credential_cannot_be_set(tmp_path):
    """INDEX "Supported properties": `kong.client.credential` is in the get
    table only (the set table has `kong.client.consumer`), so a node that
    sets it is refused at load, naming the node and its `property` field."""
    proc = validate(tmp_path, [
        {"name": "VALUE", "type": "static", "values": {"id": "cred-1"}},
        {"name": "SET_IT", "type": "property", "property": "kong.client.credential", "input": "VALUE"},
    ])
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "node #2 'SET_IT' (property): field 'property'" in out
    assert "property 'kong.client.credential' is read-only" in out


# -- static node -------------------------------------------------------------------


def test_static_values_as_call_inputs(c, api):
    """INDEX "Static node outputs": one output per `values` item, connected
    node-wise to a call's headers, query and body."""
    echo_ = get(c, api, "static-call-inputs").json()
    assert echo_["method"] == "POST"
    assert echo_["headers"]["x-foo"] == "123"
    assert echo_["headers"]["x-multi"] == ["first", "second"]
    assert echo_["query"] == {"a": "true", "b": "10"}
    assert httpx.Response(200, content=echo_["body"]).json() == {"data": "my request body data"}


def test_static_invalid_headers_are_a_config_error(tmp_path):
    """INDEX "Static node outputs": `headers: "oops not valid headers"` into a
    call yields a validation error "instead of bubbling up at runtime"."""
    output = config_error(tmp_path, {"nodes": [
        {"name": "CALL_INPUTS", "type": "static", "values": {"headers": "oops not valid headers"}},
        {"name": "CALL", "type": "call", "url": "https://example.com/", "method": "POST", "input": "CALL_INPUTS"}]})
    assert "headers" in output


@pytest.mark.parametrize("query,expected", [({"foo": "given"}, "given"), ({}, "my default value")])
def test_static_default_for_jq(c, api, query, expected):
    """INDEX "Static node" > "Examples" (a default value for a jq filter)."""
    assert get(c, api, "static-default", params=query).text == expected


def test_static_common_headers_for_two_calls(c, api):
    """INDEX "Static node" > "Examples" (common headers for different API requests)."""
    assert get(c, api, "static-common-headers").json() == ["we always need this header"] * 2


# -- branch and cache nodes --------------------------------------------------------


@pytest.mark.parametrize("cond,status", [("true", 201), ("false", 202)])
def test_branch_then_else(c, api, cond, status):
    """INDEX "Node types" table (branch): `true` runs `then`, `false` runs `else`."""
    assert get(c, api, "branch", params={"c": cond}).status_code == status


@pytest.mark.parametrize("cond", ['"yes"', "1", "null"])
def test_branch_non_boolean_is_an_error(c, api, cond):
    """INDEX "Node types" table (branch): "If the input is a non-boolean value,
    an error is raised"."""
    r = get(c, api, "branch", params={"c": cond})
    assert r.status_code == 500
    assert r.json()["node"]["name"] == "BRANCH"


def test_branch_unlisted_nodes_run(c, api):
    """INDEX "Branch node" note: a node not listed in either branch "will run
    depending on its location in the flow configuration"; the `then` node does not."""
    r = get(c, api, "branch-unlisted")
    assert (r.status_code, r.json()) == (203, {"ran": True})


def test_cache_branch_example_miss_then_hit(c, api):
    """INDEX "Branch node" > "Example": a miss runs DATA, SET and EXIT_MISS; the
    next request hits and runs EXIT_HIT with the stored data."""
    first = get(c, api, "cache-branch")
    second = get(c, api, "cache-branch")
    assert (first.status_code, first.json()) == (200, {"cached": "value"})
    assert (second.status_code, second.json()) == (200, {"cached": "value"})


def test_cache_outputs(c, api):
    """INDEX "Node types" table (cache): with `data` the node stores
    (`stored`); without, it fetches (`hit`/`miss`, `data`)."""
    key = "outputs-key"
    miss = get(c, api, "cache-outputs", params={"k": key}).json()
    stored = get(c, api, "cache-outputs", params={"k": key, "d": "v1"}).json()
    hit = get(c, api, "cache-outputs", params={"k": key}).json()
    assert miss["miss"] is True and miss["hit"] is not True and miss["data"] is None
    assert stored["stored"] is True and stored["data"] == "v1"
    assert hit["hit"] is True and hit["miss"] is not True and hit["data"] == "v1"


def test_cache_node_needs_a_cache_resource(tmp_path):
    """INDEX "Cache node": "requires a `resources.cache` resource definition"."""
    output = config_error(tmp_path, {"nodes": [
        {"name": "K", "type": "static", "values": {"key": "k"}},
        {"name": "GET", "type": "cache", "input": "K"}]})
    assert "cache" in output


# -- vault -------------------------------------------------------------------------


def test_vault_reference_as_jq_input(c, api):
    """INDEX "Vault node" > "Examples": `vault.secret1` from
    `{vault://env/my-secret1}` feeds a jq node."""
    assert get(c, api, "vault").json() == {"matches": True}


# -- node input and output / validation and connection semantics ----------------------


def test_reflexive_output_connection(c, api):
    """INDEX "Node input and output": `output: FILTER` on the source is the
    same connection as `input: GET_PROPERTY` on the target."""
    assert get(c, api, "io-reflexive").json() == {"ip": "127.0.0.1"}


def test_outputs_send_fields_to_different_nodes(c, api):
    """INDEX "Node input and output": `outputs: {body: ..., headers: ...}`."""
    assert get(c, api, "io-outputs-fields").json() == {"method": "GET", "upstream": "yes"}


def test_two_outputs_into_one_input_are_refused(tmp_path):
    """INDEX "Node input and output", "Incorrect configuration": the error
    names the conflicting connections."""
    output = config_error(tmp_path, {"nodes": [
        {"name": "GET_FOO", "type": "property", "property": "kong.ctx.shared.foo", "output": "FILTER"},
        {"name": "GET_BAR", "type": "property", "property": "kong.ctx.shared.bar", "output": "FILTER"},
        {"name": "FILTER", "type": "jq", "jq": "."}]})
    assert ('invalid connection ("GET_BAR" -> "FILTER"): conflicts with existing connection '
            '("GET_FOO" -> "FILTER")') in output


def test_node_wise_any_conflicts_with_field_connection(tmp_path):
    """INDEX "any -> *": a node-wise `any -> object` connection conflicts with
    a field-level one, with Kong's error text."""
    output = config_error(tmp_path, {"nodes": [
        {"name": "get-foo", "type": "property", "property": "kong.ctx.shared.foo", "output": "response"},
        {"name": "get-bar", "type": "property", "property": "kong.ctx.shared.bar", "output": "response.body"}]})
    assert ('invalid connection ("get-bar" -> "response.body"): conflicts with existing connection '
            '("get-foo" -> "response.body")') in output


def test_node_order_does_not_matter(c, api):
    """INDEX "Node input and output": a node may come before its dependencies
    in the configuration (`.foo * .bar` with the values set by other nodes)."""
    r = get(c, api, "io-order")
    # GET_FOO reads nothing: null * object is a jq error -> the dependency ran
    assert r.status_code == 500 and r.json()["node"]["name"] == "COMBINE"


def test_object_to_object_connects_common_fields(c, api):
    """INDEX "object -> object": `input: request, output: service_request`
    on a call connects body, query and headers in, and body and headers out
    (the service gets the call's response body)."""
    r = c.post(f"{api.url}/object-object/x?q=1", **json_body({"k": "v"}))
    service_saw = r.json()
    call_saw = service_saw["body"]
    call_echo = httpx.Response(200, content=call_saw).json()
    assert call_echo["method"] == "POST" and call_echo["path"] == "/echo"
    assert call_echo["query"] == {"q": "1"}
    assert httpx.Response(200, content=call_echo["body"]).json() == {"k": "v"}
    # "service_request.query is ignored": the service keeps the client's query
    assert service_saw["query"] == {"q": "1"}


def test_object_to_any_copies_all_fields(c, api):
    """INDEX "object -> any": `input: request` gives jq an object with the
    keys `body`, `query` and `headers` (and the 3.14 fields)."""
    keys = get(c, api, "object-any").json()
    assert {"body", "query", "headers"} <= set(keys)
    assert {"path", "raw_path", "port", "method", "scheme", "version"} <= set(keys)


def test_reserved_node_names_are_refused(tmp_path):
    """INDEX "Implicit nodes": "These reserved node names can't be used for
    user-defined nodes"."""
    output = config_error(tmp_path, {"nodes": [{"name": "request", "type": "jq", "jq": "."}]})
    assert "reserved" in output


# -- implicit nodes -------------------------------------------------------------------


def test_request_outputs(c, api):
    """INDEX "Implicit nodes" (`request`): path, raw_path, port, method,
    scheme, version, a decoded query; "Headers": repeated headers are arrays."""
    r = c.get(f"{api.url}/implicit-request/a%2Fb?x=1&y=a%20b",
              headers=[("X-Multi", "one"), ("X-Multi", "two")])
    body = r.json()
    assert body["method"] == "GET"
    assert body["scheme"] == "http"
    assert body["port"] == int(api.url.rsplit(":", 1)[1])
    assert body["raw_path"] == "/implicit-request/a%2Fb"
    assert body["version"] in (1.1, "1.1")
    assert body["query"] == {"x": "1", "y": "a b"}
    assert body["headers"] == {"x": ["one", "two"]}


def test_request_body_json_is_decoded(c, api):
    """INDEX "Body": with a JSON Content-Type, `request.body` is decoded."""
    r = c.post(f"{api.url}/implicit-body/x", **json_body({"a": [1]}))
    assert r.json() == {"type": "object", "value": {"a": [1]}}


def test_request_body_other_is_a_string(c, api):
    """INDEX "Body": without a JSON Content-Type the body is not decoded."""
    r = c.post(f"{api.url}/implicit-body/x", content=b'{"a": 1}', headers={"Content-Type": "text/plain"})
    assert r.json() == {"type": "string", "value": '{"a": 1}'}


def test_service_request_object_body_is_json(c, api):
    """INDEX "Body": an object into `service_request.body` is JSON-encoded,
    Content-Type `application/json`."""
    echo_ = c.post(f"{api.url}/sreq-body/x", content=b"plain", headers={"Content-Type": "text/plain"}).json()
    assert echo_["headers"]["content-type"] == "application/json"
    assert httpx.Response(200, content=echo_["body"]).json() == {"id": 1}


def test_service_request_body_keeps_a_given_content_type(c, api):
    """INDEX "Body": "(if not already set in the `headers` input)"."""
    echo_ = get(c, api, "sreq-body-ct").json()
    assert echo_["headers"]["content-type"] == "application/vnd.api+json"
    assert httpx.Response(200, content=echo_["body"]).json() == {"id": 1}


def test_service_request_query(c, api):
    """INDEX "Query" and `service_request` inputs: a map is the service's query."""
    echo_ = get(c, api, "sreq-query", params={"old": "1"}).json()
    assert echo_["query"]["a"] == "1" and echo_["query"]["list"] == ["x", "y"]


def test_service_response_outputs(c, api):
    """INDEX "Implicit nodes" (`service_response`): status, the JSON-decoded
    body and the raw body."""
    r = get(c, api, "sresp")
    assert r.json() == {"status": 200, "method": "GET", "raw_type": "string"}


def test_response_object_body_is_json(c, api):
    """INDEX "Body": an object into `response.body` is JSON with
    Content-Type `application/json`."""
    r = get(c, api, "resp-body")
    assert r.json() == {"replaced": True}
    assert r.headers["content-type"].startswith("application/json")


# -- more of "Validation and connection semantics" and "Implicit nodes" ----------


def test_object_to_object_without_common_fields_is_refused(tmp_path):
    """INDEX "object -> object": "If the nodes have no fields in common, a
    validation error will be raised"."""
    output = config_error(tmp_path, {"nodes": [
        {"name": "S", "type": "static", "values": {"nope": 1}},
        {"name": "CALL", "type": "call", "url": "http://127.0.0.1:9/", "input": "S"}]})
    assert "invalid connection" in output and '"S" -> "CALL"' in output


def test_object_to_object_explicit_form_is_the_same(c, api):
    """INDEX "object -> object": "The same intent can be expressed explicitly
    by setting individual fields on the `inputs` attribute"."""
    r = c.post(f"{api.url}/object-object-explicit/x?q=1", **json_body({"k": "v"}))
    call_echo = httpx.Response(200, content=r.json()["body"]).json()
    assert (call_echo["method"], call_echo["query"]) == ("POST", {"q": "1"})
    assert httpx.Response(200, content=call_echo["body"]).json() == {"k": "v"}


def test_any_input_gets_data_as_is(c, api):
    """INDEX "* -> any": "At runtime the data is copied as-is" (a number stays
    a number, a map an object)."""
    assert get(c, api, "star-any").json() == {"port": "number", "query": "object"}


def test_exit_headers_input(c, api):
    """INDEX "Node types" table (exit): `headers` are the early-exit
    response's headers; "Headers": arrays are repeated headers."""
    r = get(c, api, "exit-headers")
    assert r.json() == {"ok": True}
    assert r.headers["x-from-exit"] == "1"
    assert r.headers.get_list("x-multi") == ["a", "b"]


def test_response_body_keeps_a_given_content_type(c, api):
    """INDEX "Body": `response.body` Content-Type `application/json` only "if
    not already set in the `headers` input"."""
    r = get(c, api, "resp-body-ct")
    assert r.headers["content-type"] == "application/vnd.api+json"
    assert r.json() == {"replaced": True}


def test_repeated_response_headers_are_arrays(c, api):
    """INDEX "Headers": "arrays of strings if there are multiple instances of
    the same header" (service_response.headers)."""
    assert get(c, api, "sresp-headers").json() == ["a=1", "b=2"]


def test_service_response_body_not_json_is_a_string(c, api):
    """INDEX "Body": only a JSON Content-Type makes `service_response.body`
    decoded."""
    assert get(c, api, "sresp-text").json() == {"type": "string"}


def test_query_is_decoded_and_repeats_are_arrays(c, api):
    """INDEX "Query": maps of decoded query pairs; a repeated key has all its values."""
    r = c.get(f"{api.url}/query-repeated/x?a=1&a=2&s=%C3%A9+x")
    assert r.json() == {"a": ["1", "2"], "s": "é x"}


def test_non_nil_passes_a_real_value(c, api):
    """INDEX "Requiring non-nil property values": a real value is set and read normally."""
    r = get(c, api, "prop-non-nil-ok")
    assert (r.status_code, r.json()) == (200, {"src": "key-123"})


def test_kong_response_status_must_be_a_number(c, api):
    """INDEX "Supported properties": `kong.response.status` takes a `number`."""
    r = get(c, api, "prop-bad-status")
    assert r.status_code == 500 and r.json()["node"]["name"] == "SET"


def test_cache_ttl_input(c, api):
    """INDEX "Node types" table (cache): `ttl`, the TTL in seconds; after it
    the entry is gone."""
    key = "ttl-key"
    assert get(c, api, "cache-ttl", params={"k": key, "d": "v"}).json()["data"] == "v"
    assert get(c, api, "cache-ttl", params={"k": key}).json() == {"hit": True, "data": "v"}
    time.sleep(2.1)
    assert get(c, api, "cache-ttl", params={"k": key}).json()["hit"] is not True


def test_unknown_vault_reference_is_refused(tmp_path):
    """INDEX "Vault node": references are the entries of `resources.vault`;
    another name is not an output of `vault`."""
    output = config_error(tmp_path, {
        "resources": {"vault": {"secret1": "{vault://env/my-secret1}"}},
        "nodes": [{"name": "JQ", "type": "jq", "inputs": {"s": "vault.secret2"}, "jq": "."}]},
        env={"MY_SECRET1": SECRET})
    assert "secret2" in output


SOURCES = (INDEX,)
