"""Workflow loading and graph validation (README.md#writing-workflows, docs/nodes.md#connections): good shapes load,
bad ones fail with a message naming file, node and field."""

import json
import textwrap

import pytest

from mitmdatakit import config
from mitmdatakit.config import load_document, load_path, load_text
from mitmdatakit.errors import ConfigError
from mitmdatakit.ports import Phase

CALL = {"name": "CALL", "type": "call", "url": "http://127.0.0.1:1/x"}


def wf(*nodes, **top):
    return {"nodes": list(nodes), **top}


def load(doc, source="wf.yaml"):
    return load_document(doc, source=source)


def error_of(doc) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(doc)
    return info.value


# -- shapes ------------------------------------------------------------------


def test_three_shapes(tmp_path):
    nodes = [{"name": "EXIT", "type": "exit", "status": 201}]
    bare = load(wf(*nodes))
    wrapped = load({"name": "datakit", "config": {"nodes": nodes}, "route": {"name": "r"}, "protocols": ["http"], "enabled": True})
    matched = load({"match": {"hosts": ["*.example.com"], "methods": ["POST"]}, "nodes": nodes})
    assert bare.enabled and wrapped.enabled and matched.enabled
    assert matched.match.describe() == {"hosts": ["*.example.com"], "methods": ["POST"]}
    assert not load({"config": {"nodes": nodes}, "enabled": False}).enabled


def test_nulls_mean_unset():
    w = load({"config": {"debug": None, "resources": None, "nodes": [
        {"name": "J", "type": "jq", "jq": ".", "input": "request.body", "output": None},
        {"name": "C", "type": "call", "url": "http://127.0.0.1:1/", "timeout": None, "method": None},
    ]}, "service": None, "route": None, "consumer": None, "instance_name": None})
    assert [n.name for n in w.plan.nodes][:2] == ["J", "C"]


def test_directory_yaml_and_json_in_name_order(tmp_path):
    (tmp_path / "b.json").write_text(json.dumps(wf({"name": "E", "type": "exit"})))
    (tmp_path / "a.yml").write_text("nodes:\n  - name: E\n    type: exit\n")
    (tmp_path / "c.yaml").write_text("config:\n  nodes:\n    - name: E\n      type: exit\n")
    (tmp_path / "ignored.txt").write_text("nope")
    assert [w.name for w in load_path(tmp_path)] == ["a", "b", "c"]


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("nodes: [\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: invalid YAML"):
        load_path(bad)
    with pytest.raises(ConfigError, match="no such file"):
        load_path(tmp_path / "missing.yaml")


# -- connections and types ---------------------------------------------------


def test_object_to_object_expands_to_shared_ports():
    w = load(wf(dict(CALL, input="request")))
    conns = w.plan.inputs[0]
    assert sorted(c.dst_port for c in conns) == ["body", "headers", "query"]


def test_anything_to_any_gives_a_mapping_of_ports():
    w = load(wf({"name": "J", "type": "jq", "jq": ".", "input": "request"}))
    (conn,) = w.plan.inputs[0]
    assert conn.src_port is None and conn.dst_port == "$self"


def test_static_into_map_and_key_by_key():
    w = load(wf(
        {"name": "S", "type": "static", "values": {"headers": {"a": "1"}, "query": {"q": None}, "body": "x"}},
        dict(CALL, input="S"),
        {"name": "H", "type": "static", "values": {"X-A": "1"}},
        {"name": "C2", "type": "call", "url": "http://127.0.0.1:1/", "inputs": {"headers": "H"}},
    ))
    assert sorted(c.dst_port for c in w.plan.inputs[1]) == ["body", "headers", "query"]
    assert [c.dst_port for c in w.plan.inputs[3]] == ["headers"]


def test_connections_from_the_source_side():
    w = load(wf(
        {"name": "J", "type": "jq", "jq": "{a: 1}", "output": "service_request.headers"},
        {"name": "K", "type": "jq", "jq": ".", "outputs": {"$self": "response.body"}} if False else
        {"name": "K", "type": "jq", "jq": ".", "input": "request.headers.authorization", "output": "response.body"},
    ))
    sr = w.plan.index("service_request")
    assert [c.dst_port for c in w.plan.inputs[sr]] == ["headers"]
    (kin,) = w.plan.inputs[1]
    assert kin.src_key == "authorization"


def test_phases():
    w = load(wf(
        {"name": "PRE", "type": "jq", "jq": ".", "input": "request.query"},
        {"name": "POST", "type": "jq", "jq": ".", "inputs": {"s": "service_response.status", "p": "PRE"}, "output": "response.body"},
        {"name": "STATUS", "type": "property", "property": "kong.service.response.status"},
    ))
    assert w.plan.phase[0] is Phase.REQUEST
    assert w.plan.phase[1] is Phase.RESPONSE
    assert w.plan.phase[2] is Phase.RESPONSE  # reads the upstream's status
    assert w.plan.needs_response_phase


def test_node_order_does_not_decide_execution_order():
    w = load(wf(
        {"name": "LAST", "type": "exit", "inputs": {"body": "FIRST"}},
        {"name": "FIRST", "type": "jq", "jq": "1"},
    ))
    order = [w.plan.nodes[i].name for i in w.plan.order if w.plan.nodes[i].declared]
    assert order == ["FIRST", "LAST"]


def test_declared_nodes_are_numbered_from_1_and_implicit_ones_have_no_index():
    w = load(wf(
        {"name": "A", "type": "jq", "jq": ".", "input": "request.query"},
        {"name": "B", "type": "exit", "inputs": {"body": "A"}},
    ))
    indexes = {n.name: (n.index, n.declared) for n in w.plan.nodes}
    assert indexes["A"] == (1, True) and indexes["B"] == (2, True)
    assert indexes["request"] == (None, False)
    implicit = w.plan.nodes[w.plan.index("request")]
    assert "#" not in str(implicit.config_error("x"))  # no position to show
    assert "node #2 'B'" in str(w.plan.nodes[1].config_error("x"))


# -- the error corpus --------------------------------------------------------

J = {"name": "J", "type": "jq", "jq": "."}

BAD = [
    # (document, [substrings the message must contain])
    ("not a mapping", ["a workflow must be a mapping"]),
    ({"foo": 1}, ["needs 'nodes'"]),
    ({"nodes": []}, ["field 'nodes'"]),
    ({"nodes": "x"}, ["field 'nodes'"]),
    (wf(J, debug="yes"), ["field 'debug'"]),
    (wf(J, extra=1), ["field 'extra'", "unknown attribute"]),
    ({"config": {"nodes": [J]}, "bogus": 1}, ["field 'bogus'", "unknown attribute"]),
    ({"config": {"nodes": [J], "other": 1}}, ["field 'config.other'"]),
    ({"config": "x"}, ["field 'config'"]),
    (wf({"type": "jq", "jq": "."}), ["node #1: field 'name'", "missing"]),
    (wf({"name": "A"}), ["node #1 'A'", "field 'type'"]),
    (wf({"name": "A", "type": "nope"}), ["node #1 'A'", "field 'type'", "unknown node type 'nope'"]),
    (wf({"name": "request", "type": "jq", "jq": "."}), ["'request' is a reserved node name", "field 'name'"]),
    (wf({"name": "vault", "type": "jq", "jq": "."}), ["reserved"]),
    (wf({"name": "response", "type": "exit"}), ["reserved"]),
    (wf(J, J), ["node #2 'J'", "duplicate node name 'J'", "field 'name'"]),
    (wf({"name": "bad name!", "type": "jq", "jq": "."}), ["field 'name'"]),
    (wf({"name": "x" * 256, "type": "jq", "jq": "."}), ["field 'name'"]),
    (wf({"name": "J", "type": "jq"}), ["node #1 'J' (jq)", "field 'jq'", "missing"]),
    (wf({"name": "J", "type": "jq", "jq": ".", "colour": "red"}), ["field 'colour'", "unknown attribute"]),
    (wf({"name": "J", "type": "jq", "jq": ".[[["}), ["field 'jq'", "jq syntax error"]),
    (wf(dict(J, input="request", inputs={"a": "request.body"})), ["field 'inputs'", "mutually exclusive"]),
    (wf(dict(J, output="response.body", outputs={"x": "response.body"})), ["field 'outputs'", "mutually exclusive"]),
    (wf(dict(J, input="NOPE")), ["field 'input'", "unknown node 'NOPE'"]),
    (wf(dict(J, input="request.nope")), ["has no output port 'nope'"]),
    (wf(dict(J, output="response.nope")), ["has no input port 'nope'"]),
    (wf(dict(J, input="J")), ["invalid dependency", "circular dependency"]),
    (wf(dict(J, name="A", input="B"), dict(J, name="B", input="A")), ["invalid dependency", "circular dependency"]),
    (wf(dict(J, name="A", input="C"), dict(J, name="B", input="A"), dict(J, name="C", input="B")), ["circular dependency"]),
    (wf(dict(J, name="GET_FOO"), dict(J, name="GET_BAR"), {"name": "FILTER", "type": "jq", "jq": ".", "input": "GET_FOO"},
        dict(J, name="X", output="FILTER")),
     ['invalid connection ("X" -> "FILTER"): conflicts with existing connection ("GET_FOO" -> "FILTER")']),
    (wf(dict(J, name="GET_FOO", output="FILTER"), dict(J, name="GET_BAR", output="FILTER"), dict(J, name="FILTER")),
     ['invalid connection ("GET_BAR" -> "FILTER"): conflicts with existing connection ("GET_FOO" -> "FILTER")']),
    (wf(dict(CALL, input="request"), dict(J, name="H", output="CALL.headers")), ["conflicts with existing connection"]),
    (wf(dict(J, name="A", output="service_request.headers"), dict(J, name="B", output="service_request.headers.x")), ["conflicts"]),
    (wf({"name": "E", "type": "exit", "input": "J"}, dict(J, input="request.body", output="E")), ["conflicts"]),
    (wf(dict(CALL, inputs={"headers": "request"})), ["type mismatch: object -> map"]),
    (wf(dict(J, name="A", output="service_request.headers.X-A"), dict(J, name="B", output="service_request.headers.x-a")),
     ['conflicts with existing connection ("A" -> "service_request.headers")']),
    (wf(dict(J, name="A", output="service_request.query.Q"), dict(J, name="B", output="service_request.query.q")), []),
    (wf({"name": "E", "type": "exit", "input": "X"}, {"name": "X", "type": "xml_to_json", "attributes_name_prefix": "-"}), []),  # any -> object is fine
    (wf(dict(CALL, inputs={"url": "request.headers"})), ["type mismatch: map -> string"]),
    (wf({"name": "S", "type": "static", "values": {"headers": "oops"}}, dict(CALL, input="S")), ["static value for 'headers' is not a map"]),
    (wf({"name": "S", "type": "static", "values": {"u": True}}, dict(CALL, inputs={"url": "S.u"})), ["static value for 'url' is not a string"]),
    (wf({"name": "S", "type": "static", "values": {"zzz": 1}}, dict(CALL, input="S")), ["no ports in common"]),
    (wf({"name": "E", "type": "exit", "input": "P"}, {"name": "P", "type": "jq", "jq": ".", "input": "request.path"}), []),
    (wf(dict(J, input="request.path.x")), ["it has no keys"]),
    (wf(dict(J, input=".bad")), ["invalid connection label"]),
    (wf(dict(J, input="service_response.body", output="service_request.body")), ["service request cannot depend on the service response"]),
    (wf({"name": "E", "type": "exit", "status": 99}), ["field 'status'"]),
    (wf({"name": "E", "type": "exit", "status": 600}), ["field 'status'"]),
    (wf({"name": "E", "type": "exit", "status": "200"}), ["field 'status'"]),
    (wf({"name": "C", "type": "call"}), ["field 'url'", "missing"]),
    (wf({"name": "C", "type": "call", "url": "ftp://x/"}), ["field 'url'", "invalid URL"]),
    (wf({"name": "C", "type": "call", "url": "http://x/", "timeout": -1}), ["field 'timeout'"]),
    (wf({"name": "C", "type": "call", "url": "http://x/", "ssl_verify": "no"}), ["field 'ssl_verify'"]),
    (wf({"name": "C", "type": "call", "url": "http://x/", "method": "GE T"}), ["field 'method'"]),
    (wf({"name": "P", "type": "property"}), ["field 'property'", "missing"]),
    (wf({"name": "P", "type": "property", "property": "kong.nope"}), ["field 'property'", "unknown property 'kong.nope'"]),
    (wf({"name": "P", "type": "property", "property": "kong.client.ip", "input": "request.body"}), ["read-only"]),
    (wf({"name": "P", "type": "property", "property": "kong.ctx.shared.x", "content_type": "text/html"}), ["field 'content_type'"]),
    (wf({"name": "S", "type": "static"}), ["field 'values'", "missing"]),
    (wf({"name": "S", "type": "static", "values": [1]}), ["field 'values'"]),
    (wf({"name": "B", "type": "branch", "input": "request.body", "then": ["NOPE"]}), ["unknown node 'NOPE'"]),
    (wf({"name": "B", "type": "branch", "then": ["B"]}), ["circular dependency"]),
    (wf({"name": "B", "type": "branch", "then": ["J"], "else": ["J"]}, J), ["listed in both"]),
    (wf({"name": "J", "type": "jq", "jq": ".", "input": "request.body"}, match={"paths": ["~(unclosed"]}), ["field 'match.paths'"]),
    (wf(J, match={"filter": "~d ("}), ["field 'match.filter'"]),
    (wf(J, match={"colour": "x"}), ["field 'match.colour'"]),
    (wf(J, upstreams={"u": 5}), ["field 'upstreams.u'"]),
    # -- every node type's attributes, more §3 rules
    (wf({"name": "C", "type": "cache", "ttl": -5}, resources={"cache": {"strategy": "memory"}}), ["node #1 'C' (cache)", "field 'ttl'"]),
    (wf({"name": "C", "type": "cache", "ttl": "10"}, resources={"cache": {"strategy": "memory"}}), ["node #1 'C' (cache)", "field 'ttl'"]),
    (wf({"name": "C", "type": "cache", "bypass_on_error": "yes"}, resources={"cache": {"strategy": "memory"}}), ["node #1 'C' (cache)", "field 'bypass_on_error'"]),
    (wf({"name": "C", "type": "cache", "colour": 1}, resources={"cache": {"strategy": "memory"}}), ["node #1 'C' (cache)", "field 'colour'", "unknown attribute"]),
    (wf({"name": "C", "type": "cache"}), ["node #1 'C' (cache)", "requires a cache resource"]),
    (wf({"name": "C", "type": "cache", "inputs": {"key": "request.headers"}}, resources={"cache": {"strategy": "memory"}}),
     ["node #1 'C' (cache)", "field 'inputs.key'", "type mismatch: map -> string"]),
    (wf({"name": "C", "type": "cache", "inputs": {"ttl": "request.query"}}, resources={"cache": {"strategy": "memory"}}),
     ["node #1 'C' (cache)", "field 'inputs.ttl'", "type mismatch: map -> number"]),
    (wf({"name": "E", "type": "exit"}, resources={"cache": {"strategy": "disk"}}), ["field 'resources.cache.strategy'"]),
    (wf({"name": "E", "type": "exit"}, resources={"cache": {"strategy": "redis", "redis": {"port": "x"}}}), ["field 'resources.cache.redis.port'"]),
    (wf({"name": "E", "type": "exit"}, resources={"bogus": {}}), ["field 'resources.bogus'", "unknown attribute"]),
    (wf({"name": "E", "type": "exit"}, resources={"vault": {"t": "{vault://hcv/secret}"}}), ["field 'resources.vault.t'", "unsupported vault 'hcv'"]),
    (wf({"name": "E", "type": "exit"}, resources={"vault": {"t": "{vault://env/DK_SURELY_UNSET_VAR_X}"}}), ["field 'resources.vault.t'", "DK_SURELY_UNSET_VAR_X"]),
    (wf(dict(J, input="vault.token")), ["node #1 'J' (jq)", "field 'input'", "node 'vault' has no output port 'token'"]),
    (wf({"name": "X", "type": "xml_to_json", "attributes_block_name": "#text"}), ["node #1 'X' (xml_to_json)", "field 'attributes_block_name'", "must differ"]),
    (wf({"name": "X", "type": "xml_to_json", "attributes_name_prefix": "-", "xpath": "//a[@"}), ["node #1 'X' (xml_to_json)", "field 'xpath'"]),
    (wf({"name": "X", "type": "xml_to_json", "recognize_type": "yes"}), ["node #1 'X' (xml_to_json)", "field 'recognize_type'"]),
    (wf({"name": "X", "type": "xml_to_json", "text_as_property": 1}), ["node #1 'X' (xml_to_json)", "field 'text_as_property'"]),
    (wf({"name": "X", "type": "xml_to_json", "attributes_name_prefix": "-", "input": "request.headers"}), ["node #1 'X' (xml_to_json)", "field 'input'", "type mismatch: map -> string"]),
    (wf({"name": "X", "type": "json_to_xml", "root_element_name": "1root"}), ["node #1 'X' (json_to_xml)", "field 'root_element_name'", "not a valid XML element name"]),
    (wf({"name": "X", "type": "json_to_xml", "attributes_block_name": "t", "text_block_name": "t"}), ["node #1 'X' (json_to_xml)", "field 'attributes_block_name'"]),
    (wf({"name": "X", "type": "json_to_xml", "depth": 3}), ["node #1 'X' (json_to_xml)", "field 'depth'", "unknown attribute"]),
    (wf({"name": "X", "type": "jwt_decode", "algorithm": "HS256"}), ["node #1 'X' (jwt_decode)", "field 'algorithm'", "unknown attribute"]),
    (wf({"name": "X", "type": "jwt_decode", "input": "request.query"}), ["node #1 'X' (jwt_decode)", "field 'input'", "type mismatch: map -> string"]),
    (wf({"name": "X", "type": "jwt_sign"}), ["node #1 'X' (jwt_sign)", "field 'algorithm'", "missing"]),
    (wf({"name": "X", "type": "jwt_sign", "algorithm": "none"}), ["node #1 'X' (jwt_sign)", "field 'algorithm'"]),
    (wf({"name": "X", "type": "jwt_sign", "algorithm": "HS256", "expires_in": "soon"}), ["node #1 'X' (jwt_sign)", "field 'expires_in'"]),
    (wf({"name": "X", "type": "jwt_sign", "algorithm": "HS256", "kid": 5}), ["node #1 'X' (jwt_sign)", "field 'kid'"]),
    (wf({"name": "X", "type": "jwt_sign", "algorithm": "HS256", "static_claims": [1]}), ["node #1 'X' (jwt_sign)", "field 'static_claims'"]),
    (wf({"name": "X", "type": "jwt_sign", "algorithm": "HS256", "inputs": {"claims": "request.path"}}),
     ["node #1 'X' (jwt_sign)", "field 'inputs.claims'", "type mismatch: string -> map"]),
    (wf({"name": "X", "type": "jwt_verify", "allowed_algorithms": ["HS256", "none"]}), ["node #1 'X' (jwt_verify)", "field 'allowed_algorithms.1'"]),
    (wf({"name": "X", "type": "jwt_verify", "leeway": "5"}), ["node #1 'X' (jwt_verify)", "field 'leeway'"]),
    (wf({"name": "X", "type": "jwt_verify", "validate_exp": "no"}), ["node #1 'X' (jwt_verify)", "field 'validate_exp'"]),
    (wf({"name": "X", "type": "jwt_verify", "issuers": "me"}), ["node #1 'X' (jwt_verify)", "field 'issuers'"]),
    (wf({"name": "X", "type": "jwt_verify", "inputs": {"token": "request.query"}}), ["node #1 'X' (jwt_verify)", "field 'inputs.token'", "type mismatch: map -> string"]),
    (wf({"name": "E", "type": "exit", "warn_headers_sent": "yes"}), ["node #1 'E' (exit)", "field 'warn_headers_sent'"]),
    (wf({"name": "E", "type": "exit", "input": "request.path"}), ["node #1 'E' (exit)", "field 'input'", "type mismatch: string -> object"]),
    (wf({"name": "E", "type": "exit", "inputs": {"status": "request.body"}}), ["node #1 'E' (exit)", "field 'inputs.status'", "has no input port 'status'"]),
    (wf({"name": "P", "type": "property", "property": "kong.ctx.shared.a", "non_nil": "yes"}), ["node #1 'P' (property)", "field 'non_nil'"]),
    (wf({"name": "P", "type": "property", "property": "kong.ctx.shared.a", "inputs": {"x": "request.body"}}),
     ["node #1 'P' (property)", "field 'inputs.x'", "has no input port 'x'"]),
    (wf({"name": "C", "type": "call", "url": "http://x/", "ssl_server_name": 5}), ["node #1 'C' (call)", "field 'ssl_server_name'"]),
    (wf({"name": "C", "type": "call", "url": "http://x/", "timeout": "1000"}), ["node #1 'C' (call)", "field 'timeout'"]),
    (wf({"name": "C", "type": "call", "url": "http://x/", "timeout": 1.5}), ["node #1 'C' (call)", "field 'timeout'"]),
    (wf({"name": "C", "type": "call", "url": "http://x/", "inputs": {"status": "request.body"}}), ["node #1 'C' (call)", "field 'inputs.status'", "has no input port 'status'"]),
    (wf({"name": "C", "type": "call", "url": "http://x/", "outputs": {"bogus": "response.body"}}), ["node #1 'C' (call)", "field 'outputs.bogus'", "has no output port 'bogus'"]),
    (wf({"name": "C", "type": "call", "url": "http://x/", "inputs": {"headers.x-a": "request.port", "headers": "request.headers"}}),
     ["node #1 'C' (call)", "field 'inputs.headers'", "conflicts with existing connection"]),
    (wf({"name": "B", "type": "branch", "then": "J"}, J), ["node #1 'B' (branch)", "field 'then'"]),
    (wf({"name": "B", "type": "branch", "then": []}, J), ["node #1 'B' (branch)", "field 'then'"]),
    (wf({"name": "B", "type": "branch", "input": "request.path"}), ["node #1 'B' (branch)", "field 'input'", "type mismatch: string -> boolean"]),
    (wf(dict(J, name="A", input="request.body"), {"name": "B", "type": "branch", "input": "A", "then": ["A"]}), ["circular dependency"]),
    (wf(dict(J, name="A", output="B"), dict(J, name="B", output="A")), ["node #1 'A' (jq)", "circular dependency"]),
    (wf(dict(J, output="request.body")), ["node #1 'J' (jq)", "field 'output'", "node 'request' has no input port 'body'"]),
    (wf(dict(J, input="response.body")), ["node #1 'J' (jq)", "field 'input'", "node 'response' has no output port 'body'"]),
    (wf(dict(J, name="J1", input="request.body", output="response.body"), dict(J, name="J2", output="response.body")),
     ["node #2 'J2' (jq)", "field 'output'", 'conflicts with existing connection ("J1" -> "response.body")']),
    (wf(dict(J, inputs={"a": 5})), ["node #1 'J' (jq)", "field 'inputs.a'"]),
    (wf({"name": 5, "type": "exit"}), ["node #1", "field 'name'", "must be a string"]),
    (wf({"name": "x" * 255, "type": "exit"}), []),  # 255 characters is still a valid name
    ({"config": {"nodes": [J]}, "enabled": "no"}, ["field 'enabled'"]),
]


@pytest.mark.parametrize("doc,expected", BAD, ids=[str(i) for i in range(len(BAD))])
def test_invalid_workflows_are_rejected_with_location(doc, expected):
    if not expected:  # a valid neighbour of an invalid case
        load(doc)
        return
    message = str(error_of(doc))
    assert message.startswith("wf.yaml"), message
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


def test_corpus_is_large_enough():
    assert sum(1 for _, e in BAD if e) >= 40


def test_yaml_duplicate_keys_rejected():
    with pytest.raises(ConfigError, match="duplicate key"):
        load_text("nodes:\n  - name: A\n    name: B\n    type: exit\n", source="dup.yaml")


def test_example_text_round_trip():
    text = textwrap.dedent(
        """
        config:
          nodes:
          - name: AUTHOR
            type: call
            url: http://127.0.0.1:9/json
          - name: JOIN
            type: jq
            inputs:
              input1: AUTHOR.body
            jq: "{author: .input1.slideshow.author}"
          - name: EXIT
            type: exit
            inputs:
              body: JOIN
            status: 200
        """
    )
    w = load_text(text, source="x.yaml")
    assert [n.name for n in w.plan.nodes] == ["AUTHOR", "JOIN", "EXIT"]


def test_a_file_larger_than_the_limit_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "MAX_FILE_SIZE", 1000)
    big = tmp_path / "dump.json"
    big.write_text('{"nodes": [], "x": "' + "a" * 1000 + '"}')
    with pytest.raises(ConfigError, match="larger than 1000 bytes"):
        config.load_path(tmp_path)
    big.write_text('{"nodes": [{"name": "S", "type": "static", "values": {"a": 1}}]}')
    assert len(config.load_path(tmp_path)) == 1
