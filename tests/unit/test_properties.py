"""Every `property` (docs/nodes.md#property), in process: get and set with their mitmproxy
meaning, `content_type`, `non_nil`, and the config-time errors.

Drives the real addon (`mitmdatakit.addon.Datakit`) in mitmproxy's
`taddons.context` with flows from `mitmproxy.test`, or a `FlowRun` directly.
"""

from __future__ import annotations

import json
import re
import textwrap
import uuid
from typing import Any

import pytest
from mitmproxy import http

from mitmdatakit.config import load_text
from mitmdatakit.errors import ConfigError, WorkflowFailed
from mitmdatakit.ports import Phase
from mitmdatakit.properties import FAMILIES, PROPERTIES
from mitmdatakit.runtime import FlowRun, Services
from tests.unit.addon_support import DK, active_runs, body_json, upstream_response
from tests.unit.addon_support import make_flow as _make_flow

# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #


def make_flow(path: str = "/path", **kw: Any) -> http.HTTPFlow:
    """A flow from a known client address to a proxy on port 8080."""
    flow = _make_flow(path, **kw)
    flow.client_conn.peername = ("10.9.8.7", 54321)
    flow.client_conn.sockname = ("127.0.0.1", 8080)
    flow.client_conn.timestamp_tls_setup = None
    return flow


def get_workflow(props: dict[str, str], extra: str = "", top: str = "") -> str:
    """A workflow reading each property into one port of a jq node whose
    result is the client's JSON body: {alias: value}."""
    nodes = "".join(f"  - name: P_{alias}\n    type: property\n    property: {prop}\n" for alias, prop in props.items())
    inputs = ", ".join(f"{alias}: P_{alias}" for alias in props)
    return (
        top
        + "debug: true\nnodes:\n"
        + nodes
        + f"  - name: ALL\n    type: jq\n    inputs: {{{inputs}}}\n    jq: '.'\n"
        + "  - name: EXIT\n    type: exit\n    inputs: {body: ALL}\n"
        + textwrap.indent(textwrap.dedent(extra), "  ")
    )


async def get_props(dk: DK, props: dict[str, str], flow: http.HTTPFlow | None = None, **kw: Any) -> dict[str, Any]:
    dk.load(get_workflow(props, **kw))
    flow = await dk.roundtrip(flow or make_flow())
    assert flow.response.status_code == 200, flow.response.content
    return body_json(flow)


def set_then_get(set_prop: str, get_prop: str, value_jq: str, set_attrs: str = "", get_attrs: str = "") -> str:
    """VALUE -> SET (property set); a branch on SET's completion gates GET,
    so the get runs after the set; GET's value is the client's body {v}."""
    return f"""\
debug: true
nodes:
  - name: VALUE
    type: jq
    jq: '{value_jq}'
  - name: SET
    type: property
    property: {set_prop}
    input: VALUE
{textwrap.indent(set_attrs, "    ")}
  - name: WAS_SET
    type: jq
    input: SET
    jq: 'true'
  - name: GATE
    type: branch
    input: WAS_SET
    then: [GET]
  - name: GET
    type: property
    property: {get_prop}
{textwrap.indent(get_attrs, "    ")}
  - name: WRAP
    type: jq
    inputs: {{v: GET}}
    jq: '{{v}}'
  - name: EXIT
    type: exit
    inputs: {{body: WRAP}}
"""


def node_error(flow: http.HTTPFlow) -> dict[str, Any]:
    assert flow.response.status_code == 500, flow.response.content
    body = body_json(flow)
    assert body["message"] == "node execution error"
    assert body["request_id"] == flow.id
    return body


def flow_run(text: str, flow: http.HTTPFlow | None = None, options: dict[str, Any] | None = None) -> FlowRun:
    wf = load_text(textwrap.dedent(text))

    def option(name: str) -> Any:
        return (options or {})[name]

    return FlowRun(wf, flow or make_flow(), Services(option=option), tracing=True)


# --------------------------------------------------------------------------- #
# kong.ctx.shared.* / kong.ctx.plugin.*
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("store", ["shared", "plugin"])
async def test_ctx_set_then_get(dk, store):
    dk.load(set_then_get(f"kong.ctx.{store}.user", f"kong.ctx.{store}.user", '{"id": 7, "tags": ["a"]}'))
    flow = await dk.roundtrip(make_flow())
    assert body_json(flow) == {"v": {"id": 7, "tags": ["a"]}}


@pytest.mark.parametrize(("set_store", "get_store"), [("shared", "plugin"), ("plugin", "shared")])
async def test_ctx_shared_and_plugin_are_separate(dk, set_store, get_store):
    dk.load(set_then_get(f"kong.ctx.{set_store}.k", f"kong.ctx.{get_store}.k", '"value"'))
    flow = await dk.roundtrip(make_flow())
    assert body_json(flow) == {"v": None}


async def test_ctx_unset_key_is_null_and_values_are_per_flow(dk):
    dk.load(set_then_get("kong.ctx.shared.k", "kong.ctx.shared.other", '"value"'))
    flow = await dk.roundtrip(make_flow())
    assert body_json(flow) == {"v": None}
    # a value set on one flow is not seen by the next one
    dk.load(set_then_get("kong.ctx.shared.k", "kong.ctx.shared.k", '"value"'))
    first = await dk.roundtrip(make_flow())
    assert body_json(first) == {"v": "value"}
    dk.load(get_workflow({"k": "kong.ctx.shared.k", "p": "kong.ctx.plugin.k"}))
    second = await dk.roundtrip(make_flow())
    assert body_json(second) == {"k": None, "p": None}


async def test_ctx_flow_run_storage_and_null_removes():
    run = flow_run(
        """\
        nodes:
          - {name: V, type: jq, jq: '{"a": [1, 2]}'}
          - {name: S1, type: property, property: kong.ctx.shared.obj, input: V}
          - {name: N, type: jq, jq: 'null'}
          - {name: S2, type: property, property: kong.ctx.plugin.gone, input: N}
        """
    )
    run.ctx_plugin["gone"] = "old"
    await run.run_phase(Phase.REQUEST)
    assert run.ctx_shared == {"obj": {"a": [1, 2]}}
    assert run.ctx_plugin == {}


async def test_ctx_persists_from_request_to_response_phase(dk):
    dk.load(
        """\
        debug: true
        nodes:
          - {name: V, type: jq, input: request.query, jq: '.q'}
          - {name: SET, type: property, property: kong.ctx.plugin.q, input: V}
          - {name: IS_OK, type: jq, input: service_response.status, jq: '. == 200'}
          - {name: GATE, type: branch, input: IS_OK, then: [GET]}
          - {name: GET, type: property, property: kong.ctx.plugin.q, output: response.headers.x-q}
        """
    )
    flow = make_flow("/?q=remembered")
    await dk.addon.request(flow)
    run = active_runs(dk.addon)[flow.id]
    assert run.plan.phase[run.plan.index("GET")] is Phase.RESPONSE
    assert flow.response is None
    flow.response = upstream_response(200)
    await dk.response(flow)
    assert flow.response.headers["x-q"] == "remembered"


# --------------------------------------------------------------------------- #
# client and request
# --------------------------------------------------------------------------- #


async def test_client_and_request_properties(dk):
    flow = make_flow(host="api.test", port=80)
    got = await get_props(
        dk,
        {
            "ip": "kong.client.ip",
            "port": "kong.client.port",
            "protocol": "kong.client.protocol",
            "rport": "kong.request.port",
        },
        flow,
    )
    assert got == {"ip": "10.9.8.7", "port": 54321, "protocol": "http", "rport": 8080}


async def test_client_protocol_https_when_client_tls(dk):
    flow = make_flow()
    flow.client_conn.timestamp_tls_setup = 946681201
    assert await get_props(dk, {"p": "kong.client.protocol"}, flow) == {"p": "https"}


async def test_forwarded_properties_from_headers(dk):
    flow = make_flow(
        headers={"X-Forwarded-Host": "front.example, inner", "X-Forwarded-Port": "8443", "X-Forwarded-Proto": "https"},
    )
    got = await get_props(
        dk,
        {"host": "kong.request.forwarded_host", "port": "kong.request.forwarded_port", "scheme": "kong.request.forwarded_scheme"},
        flow,
    )
    assert got == {"host": "front.example", "port": 8443, "scheme": "https"}


async def test_forwarded_properties_fall_back_to_the_request(dk):
    flow = make_flow(host="api.test", port=8081, scheme="http")
    got = await get_props(
        dk,
        {"host": "kong.request.forwarded_host", "port": "kong.request.forwarded_port", "scheme": "kong.request.forwarded_scheme"},
        flow,
    )
    assert got == {"host": "api.test", "port": 8081, "scheme": "http"}


# --------------------------------------------------------------------------- #
# service: target, scheme, upstream
# --------------------------------------------------------------------------- #


SET_ONLY_PROPERTIES = ["kong.service.target", "kong.service.request.scheme", "kong.service.upstream", "kong.response.status"]


@pytest.mark.parametrize("prop", SET_ONLY_PROPERTIES)
def test_set_only_property_read_is_refused_at_load(prop):
    # Kong's plugin page lists these four under "support set operations" only:
    # a node reading one (no input) is a config error naming node and field
    with pytest.raises(ConfigError) as info:
        load_text(f"nodes:\n  - {{name: READ_IT, type: property, property: {prop}}}\n", source="wf.yaml")
    assert info.value.node == "READ_IT"
    assert info.value.field == "property"
    assert f"property '{prop}' can only be set" in str(info.value)


SET_ONLY = """\
debug: true
{top}
nodes:
  - name: VALUE
    type: jq
    jq: '{value}'
  - name: SET
    type: property
    property: {prop}
    input: VALUE
"""


@pytest.mark.parametrize(
    ("value", "host", "port"),
    [
        ('"10.1.2.3:9443"', "10.1.2.3", 9443),
        ('"backend.internal"', "backend.internal", 80),  # port kept
        ('"[::1]:8001"', "::1", 8001),
        ('"b\u00fccher.example:81"', "xn--bcher-kva.example", 81),  # IDNA on the wire
        ('"svc_a.internal"', "svc_a.internal", 80),
    ],
)
async def test_service_target_set_changes_where_the_flow_goes(dk, value, host, port):
    dk.load(SET_ONLY.format(top="", value=value, prop="kong.service.target"))
    flow = make_flow(host="api.test", port=80)
    await dk.addon.request(flow)
    assert flow.response is None
    assert (flow.request.host, flow.request.port) == (host, port)
    assert flow.request.scheme == "http"
    await dk.roundtrip(flow)
    assert flow.response.status_code == 200


@pytest.mark.parametrize(
    ("value", "host", "port"),
    [
        ('"[::1]"', "::1", 80),
        ('"::1"', "::1", 80),
        ('"[2001:db8::5]:8443"', "2001:db8::5", 8443),
    ],
)
async def test_service_target_set_ipv6(dk, value, host, port):
    dk.load(SET_ONLY.format(top="", value=value, prop="kong.service.target"))
    flow = make_flow(host="api.test", port=80)
    await dk.addon.request(flow)
    assert flow.response is None, flow.response and flow.response.content
    assert (flow.request.host, flow.request.port) == (host, port)


async def test_request_properties_describe_the_client_request_after_retargeting(dk):
    # kong.request.* is what the client sent; kong.service.* is where it goes
    dk.load(
        """\
        debug: true
        upstreams: {other: "https://10.0.0.9:9443"}
        nodes:
          - {name: T, type: jq, jq: '"10.1.1.1:9000"'}
          - {name: SET_T, type: property, property: kong.service.target, input: T}
          - {name: SC, type: jq, jq: '"https"'}
          - {name: SET_S, type: property, property: kong.service.request.scheme, input: SC}
          - {name: DONE, type: jq, inputs: {t: SET_T, s: SET_S}, jq: 'true'}
          - {name: GATE, type: branch, input: DONE, then: [FH, FP, FS, RP]}
          - {name: FH, type: property, property: kong.request.forwarded_host}
          - {name: FP, type: property, property: kong.request.forwarded_port}
          - {name: FS, type: property, property: kong.request.forwarded_scheme}
          - {name: RP, type: property, property: kong.request.port}
          - {name: ALL, type: jq, inputs: {fh: FH, fp: FP, fs: FS, rp: RP}, jq: '.'}
          - {name: EXIT, type: exit, inputs: {body: ALL}}
        """
    )
    flow = make_flow(host="api.test", port=8081, headers={"Host": "api.test:8081"})
    flow.client_conn.sockname = None
    flow = await dk.roundtrip(flow)
    assert body_json(flow) == {"fh": "api.test", "fp": 8081, "fs": "http", "rp": 8081}
    assert (flow.request.scheme, flow.request.host, flow.request.port) == ("https", "10.1.1.1", 9000)


@pytest.mark.parametrize("value", [
    '"host:99999"', '"host:abc"', "12", '""', '":8080"', '"[::1"', '"host:8\u00b2"',
    # the host becomes the Host header and, in upstream proxy mode, the request line
    '"::1\\r\\nX-Injected: 1"', '"[::1\\r\\nX: y]:80"', '"evil.test x HTTP/1.1"', '"a.test/admin?"', '"a@b.test"',
    '"a.test#x"', '"a\\u0000b"',
])
async def test_service_target_set_invalid_is_a_node_error(dk, value):
    dk.load(SET_ONLY.format(top="", value=value, prop="kong.service.target"))
    flow = await dk.roundtrip(make_flow())
    assert dk.upstream_calls == 0
    assert node_error(flow)["node"] == {"index": 2, "name": "SET", "type": "property"}


async def test_service_target_set_after_proxying_is_a_node_error(dk):
    dk.load(
        """\
        debug: true
        nodes:
          - {name: V, type: jq, input: service_response.status, jq: '"other:81"'}
          - {name: SET, type: property, property: kong.service.target, input: V}
        """
    )
    flow = await dk.roundtrip(make_flow())
    assert node_error(flow)["node"]["name"] == "SET"


@pytest.mark.parametrize("scheme", ["https", "http"])
async def test_service_request_scheme_set(dk, scheme):
    dk.load(SET_ONLY.format(top="", value=f'"{scheme}"', prop="kong.service.request.scheme"))
    flow = make_flow(scheme="https" if scheme == "http" else "http", port=8000)
    await dk.addon.request(flow)
    assert flow.response is None
    assert flow.request.scheme == scheme
    assert flow.request.port == 8000


@pytest.mark.parametrize("value", ['"ftp"', '"HTTPS"', "1", "null"])
async def test_service_request_scheme_set_invalid(dk, value):
    dk.load(SET_ONLY.format(top="", value=value, prop="kong.service.request.scheme"))
    flow = await dk.roundtrip(make_flow())
    assert node_error(flow)["node"]["name"] == "SET"


UPSTREAMS = """\
upstreams:
  secure: "https://10.0.0.5:8443"
  plain: "10.0.0.7"
  withport: "10.0.0.8:9000"
  obj: {host: svc.internal, port: 7000}
  objtls: {host: tls.internal, scheme: https}
"""


@pytest.mark.parametrize(
    ("name", "scheme", "host", "port"),
    [
        ("secure", "https", "10.0.0.5", 8443),
        ("plain", "http", "10.0.0.7", 80),
        ("withport", "http", "10.0.0.8", 9000),
        ("obj", "http", "svc.internal", 7000),
        ("objtls", "https", "tls.internal", 443),
    ],
)
async def test_service_upstream_set_by_name(dk, name, scheme, host, port):
    dk.load(SET_ONLY.format(top=UPSTREAMS, value=f'"{name}"', prop="kong.service.upstream"))
    flow = make_flow(host="api.test", port=80, scheme="http")
    await dk.addon.request(flow)
    assert flow.response is None
    assert (flow.request.scheme, flow.request.host, flow.request.port) == (scheme, host, port)


async def test_service_upstream_unknown_name_is_a_node_error(dk):
    dk.load(SET_ONLY.format(top=UPSTREAMS, value='"missing"', prop="kong.service.upstream"))
    flow = make_flow()
    await dk.roundtrip(flow)
    assert dk.upstream_calls == 0
    body = node_error(flow)
    assert body["node"] == {"index": 2, "name": "SET", "type": "property"}
    assert "missing" in body["error"]
    assert flow.request.host == "api.test"


async def test_service_upstream_without_upstreams_map_is_a_node_error(dk):
    dk.load(SET_ONLY.format(top="", value='"any"', prop="kong.service.upstream"))
    flow = await dk.roundtrip(make_flow())
    assert node_error(flow)["node"]["name"] == "SET"


# --------------------------------------------------------------------------- #
# response status
# --------------------------------------------------------------------------- #


async def test_service_response_status_runs_in_response_phase(dk):
    dk.load(
        """\
        nodes:
          - name: ST
            type: property
            property: kong.service.response.status
            output: response.headers.x-upstream-status
        """
    )
    flow = make_flow()
    await dk.addon.request(flow)
    run = active_runs(dk.addon)[flow.id]
    i = run.plan.index("ST")
    assert run.plan.phase[i] is Phase.RESPONSE
    assert run.status[i] == "NODE_PENDING"
    flow.response = upstream_response(404)
    await dk.response(flow)
    assert flow.response.status_code == 404
    assert flow.response.headers["x-upstream-status"] == "404"


async def test_response_status_set_changes_client_status(dk):
    dk.load(SET_ONLY.format(top="", value="418", prop="kong.response.status"))
    flow = make_flow()
    await dk.addon.request(flow)
    assert flow.response is None  # still proxied
    flow.response = upstream_response(200)
    await dk.response(flow)
    assert flow.response.status_code == 418
    assert flow.response.content == b"message"


async def test_response_status_set_in_response_phase(dk):
    dk.load(
        """\
        nodes:
          - {name: V, type: jq, input: service_response.status, jq: '. + 1'}
          - {name: SET, type: property, property: kong.response.status, input: V}
        """
    )
    flow = await dk.roundtrip(make_flow(), upstream_response(201))
    assert flow.response.status_code == 202


@pytest.mark.parametrize("value", ["99", "600", '"abc"', "true", "null", '"\u00b2"',
                                   "100", "101"])  # a 1xx is not a final answer (101: a protocol switch)
async def test_response_status_set_invalid(dk, value):
    dk.load(SET_ONLY.format(top="", value=value, prop="kong.response.status"))
    flow = await dk.roundtrip(make_flow())
    assert node_error(flow)["node"]["name"] == "SET"


# --------------------------------------------------------------------------- #
# router, consumer, credential, version, node id, configuration
# --------------------------------------------------------------------------- #


async def test_router_route_and_route_name(dk):
    got = await get_props(
        dk,
        {"route": "kong.router.route", "name": "kong.route_name"},
        make_flow(host="api.test"),
        top="match: {hosts: [api.test], methods: [GET]}\n",
    )
    assert got["name"] == "wf"
    assert got["route"]["name"] == "wf"
    assert got["route"]["match"] == {"hosts": ["api.test"], "methods": ["GET"]}


async def test_route_name_of_a_plugin_entity(dk):
    dk.load(
        """\
        name: datakit
        instance_name: my-route-workflow
        config:
          nodes:
            - {name: P, type: property, property: kong.route_name}
            - {name: EXIT, type: exit, inputs: {body: P}}
        """
    )
    flow = await dk.roundtrip(make_flow())
    assert flow.response.content == b"my-route-workflow"


async def test_consumer_default_null_and_set_then_get(dk):
    assert await get_props(dk, {"c": "kong.client.consumer"}) == {"c": None}
    for value in ('{"username": "alice"}', '{"id": "c-1", "extra": 1}', '{"custom_id": "x"}'):
        dk.load(set_then_get("kong.client.consumer", "kong.client.consumer", value))
        flow = await dk.roundtrip(make_flow())
        assert body_json(flow) == {"v": json.loads(value)}


@pytest.mark.parametrize("value", ['"alice"', '{"name": "alice"}', '{"id": null}', "[1]", "42"])
async def test_consumer_set_requires_an_identifier(dk, value):
    dk.load(SET_ONLY.format(top="", value=value, prop="kong.client.consumer"))
    flow = await dk.roundtrip(make_flow())
    assert dk.upstream_calls == 0
    assert node_error(flow)["node"]["name"] == "SET"


async def test_credential_from_mitmproxy_proxyauth(dk):
    flow = make_flow()
    flow.metadata["proxyauth"] = ("alice", "s3cret")
    got = await get_props(dk, {"c": "kong.client.credential"}, flow)
    assert got["c"] is not None
    assert "alice" in got["c"].values()
    assert "s3cret" not in json.dumps(got)
    assert await get_props(dk, {"c": "kong.client.credential"}) == {"c": None}


async def test_consumer_from_mitmproxy_proxyauth(dk):
    flow = make_flow()
    flow.metadata["proxyauth"] = ("alice", "s3cret")
    got = await get_props(dk, {"c": "kong.client.consumer"}, flow)
    assert got == {"c": {"id": "alice", "username": "alice"}}
    assert await get_props(dk, {"c": "kong.client.consumer"}) == {"c": None}


CREDENTIAL_OPTIONS = ["proxyauth", "upstream_auth", "cert_passphrase", "web_password", "modify_headers",
                      "modify_body", "map_remote", "client_certs", "certs", "stickyauth", "stickycookie"]


@pytest.mark.parametrize("option", CREDENTIAL_OPTIONS)
def test_configuration_refuses_options_holding_credentials(option):
    # refused when loading (was: when the node ran), so no run can read it
    with pytest.raises(ConfigError) as info:
        load_text(f"nodes:\n  - {{name: P, type: property, property: kong.configuration.{option}}}\n", source="wf.yaml")
    assert "not readable" in str(info.value)
    assert info.value.node == "P"


async def test_datakit_debug_option_gives_the_debug_error_body(dk):
    dk.load(
        """\
        nodes:
          - {name: J, type: jq, jq: 'error("boom")'}
        """,
        datakit_debug=True,
    )
    flow = await dk.roundtrip(make_flow())
    assert flow.response.status_code == 500
    assert json.loads(flow.response.content)["node"] == {"index": 1, "name": "J", "type": "jq"}


async def test_version_and_node_id(dk):
    first = await get_props(dk, {"v": "kong.version", "id": "kong.node.id"})
    assert re.fullmatch(r"3\.1[1-5]\.\d+", first["v"])
    assert str(uuid.UUID(first["id"])) == first["id"]
    second = await get_props(dk, {"v": "kong.version", "id": "kong.node.id"})
    assert second == first  # one node id per process


async def test_configuration_reads_mitmproxy_options(dk):
    dk.tctx.options.update(listen_port=8899)
    got = await get_props(dk, {"port": "kong.configuration.listen_port", "dbg": "kong.configuration.datakit_debug", "cfg": "kong.configuration.datakit_config"})
    assert got == {"port": 8899, "dbg": False, "cfg": str(dk.tmp_path / "wf.yaml")}


async def test_configuration_unknown_option_is_a_node_error(dk):
    dk.load(
        """\
        debug: true
        nodes:
          - {name: P, type: property, property: kong.configuration.no_such_option}
          - {name: EXIT, type: exit, inputs: {body: P}}
        """
    )
    flow = await dk.roundtrip(make_flow())
    body = node_error(flow)
    assert body["node"] == {"index": 1, "name": "P", "type": "property"}
    assert "no_such_option" in body["error"]


async def test_configuration_in_flow_run_uses_services_option():
    run = flow_run(
        """\
        nodes:
          - {name: P, type: property, property: kong.configuration.mode}
          - {name: EXIT, type: exit, inputs: {body: P}}
        """,
        options={"mode": ["regular"]},
    )
    await run.run_phase(Phase.REQUEST)
    assert run.client_response.exit is not None and run.client_response.exit.body == ["regular"]


# --------------------------------------------------------------------------- #
# content_type and non_nil
# --------------------------------------------------------------------------- #


async def test_content_type_json_encodes_on_set():
    run = flow_run(
        """\
        nodes:
          - {name: V, type: jq, jq: '{"a": 1, "b": [true, null]}'}
          - {name: S, type: property, property: kong.ctx.shared.doc, content_type: application/json, input: V}
        """
    )
    await run.run_phase(Phase.REQUEST)
    stored = run.ctx_shared["doc"]
    assert isinstance(stored, str)
    assert json.loads(stored) == {"a": 1, "b": [True, None]}


async def test_content_type_json_decodes_on_get():
    run = flow_run(
        """\
        nodes:
          - {name: P, type: property, property: kong.ctx.shared.doc, content_type: application/json}
          - {name: RAW, type: property, property: kong.ctx.shared.doc}
          - {name: J, type: jq, inputs: {p: P, raw: RAW}, jq: '.'}
          - {name: EXIT, type: exit, inputs: {body: J}}
        """
    )
    run.ctx_shared["doc"] = '{"a": [1, 2]}'
    await run.run_phase(Phase.REQUEST)
    assert run.client_response.exit.body == {"p": {"a": [1, 2]}, "raw": '{"a": [1, 2]}'}


async def test_content_type_json_round_trip_through_the_addon(dk):
    dk.load(
        set_then_get(
            "kong.ctx.plugin.doc",
            "kong.ctx.plugin.doc",
            '{"x": [1, "two"]}',
            set_attrs="content_type: application/json",
            get_attrs="content_type: application/json",
        )
    )
    flow = await dk.roundtrip(make_flow())
    assert body_json(flow) == {"v": {"x": [1, "two"]}}
    # the stored value is the JSON text
    dk.load(set_then_get("kong.ctx.plugin.doc", "kong.ctx.plugin.doc", '{"x": 1}', set_attrs="content_type: application/json"))
    flow = await dk.roundtrip(make_flow())
    assert json.loads(body_json(flow)["v"]) == {"x": 1}


async def test_content_type_json_get_of_invalid_json_is_a_node_error():
    run = flow_run(
        """\
        debug: true
        nodes:
          - {name: P, type: property, property: kong.ctx.shared.doc, content_type: application/json}
        """
    )
    run.ctx_shared["doc"] = "{not json"
    with pytest.raises(WorkflowFailed) as info:
        await run.run_phase(Phase.REQUEST)
    assert info.value.name == "P"


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, "NaN", "[1e400]"], ids=["deep", "nan", "1e400"])
async def test_content_type_json_get_of_nonstandard_json_is_a_node_error(text):
    # a clean node error, not a crash with a RecursionError traceback, nor a NaN passed on
    run = flow_run(
        """\
        nodes:
          - {name: P, type: property, property: kong.ctx.shared.doc, content_type: application/json}
        """
    )
    run.ctx_shared["doc"] = text
    with pytest.raises(WorkflowFailed, match="is not valid JSON") as info:
        await run.run_phase(Phase.REQUEST)
    assert info.value.name == "P"


async def test_non_nil_get_of_null_is_a_node_error(dk):
    dk.load(
        """\
        debug: true
        nodes:
          - {name: P, type: property, property: kong.ctx.shared.missing, non_nil: true}
          - {name: EXIT, type: exit, inputs: {body: P}}
        """
    )
    flow = await dk.roundtrip(make_flow())
    body = node_error(flow)
    assert body["node"] == {"index": 1, "name": "P", "type": "property"}
    # and without non_nil it is just null
    assert await get_props(dk, {"m": "kong.ctx.shared.missing"}) == {"m": None}


async def test_non_nil_get_of_a_value_passes():
    run = flow_run(
        """\
        nodes:
          - {name: P, type: property, property: kong.ctx.shared.k, non_nil: true}
          - {name: EXIT, type: exit, inputs: {body: P}}
        """
    )
    run.ctx_shared["k"] = 0
    await run.run_phase(Phase.REQUEST)
    assert run.client_response.exit.body == 0


async def test_non_nil_set_of_null_is_a_node_error(dk):
    dk.load(
        """\
        debug: true
        nodes:
          - {name: V, type: jq, jq: 'null'}
          - {name: S, type: property, property: kong.ctx.shared.k, non_nil: true, input: V}
        """
    )
    flow = await dk.roundtrip(make_flow())
    assert dk.upstream_calls == 0
    assert node_error(flow)["node"] == {"index": 2, "name": "S", "type": "property"}


# --------------------------------------------------------------------------- #
# config-time errors
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("prop", ["kong.nope", "kong.ctx.shared.", "kong.ctx.other.x", "kong.request.header", "kong.configuration."])
def test_unknown_property_is_a_config_error(prop):
    with pytest.raises(ConfigError) as info:
        load_text(f"nodes:\n  - {{name: P, type: property, property: '{prop}'}}\n", source="wf.yaml")
    assert "unknown property" in str(info.value)
    assert info.value.node == "P"


READ_ONLY = [name for name, p in PROPERTIES.items() if p.set is None] + [
    prefix + "x" for prefix, p in FAMILIES.items() if p.set is None
]


@pytest.mark.parametrize("prop", READ_ONLY)
def test_set_of_read_only_property_is_a_config_error(prop):
    with pytest.raises(ConfigError) as info:
        load_text(
            f"nodes:\n  - {{name: V, type: jq, jq: '1'}}\n  - {{name: P, type: property, property: '{prop}', input: V}}\n",
            source="wf.yaml",
        )
    assert "read-only" in str(info.value)
    assert info.value.node == "P"


SOURCE_SIDE_BUG = (
    "BUG: graph.py build_plan/Node.bind never tells a node about inbound connections declared on the "
    "source side (`output:`/`outputs:`), so PropertyNode (nodes/property.py __init__) decides get/set mode "
    "only from its own `input`/`inputs`: a source-wired set of a read-only property loads and fails only "
    "at run time, and min_phase() uses the getter's phase for such a set"
)



@pytest.mark.parametrize("prop", ["kong.version", "kong.client.ip"])
def test_set_of_read_only_property_wired_from_the_source_side_is_a_config_error(prop):
    with pytest.raises(ConfigError) as info:
        load_text(
            f"nodes:\n  - {{name: V, type: jq, jq: '1', output: P}}\n  - {{name: P, type: property, property: '{prop}'}}\n",
            source="wf.yaml",
        )
    assert "read-only" in str(info.value)


def test_read_only_list_is_what_the_spec_says():
    # the spec's get-only properties, and the ones that can be set
    assert set(READ_ONLY) >= {
        "kong.client.ip",
        "kong.client.port",
        "kong.client.protocol",
        "kong.request.port",
        "kong.request.forwarded_host",
        "kong.request.forwarded_port",
        "kong.request.forwarded_scheme",
        "kong.service.response.status",
        "kong.router.route",
        "kong.route_name",
        "kong.version",
        "kong.node.id",
        "kong.configuration.x",
    }
    settable = {n for n, p in PROPERTIES.items() if p.set is not None}
    assert settable == {
        "kong.service.target",
        "kong.service.request.scheme",
        "kong.service.upstream",
        "kong.response.status",
        "kong.client.consumer",
    }
    assert "kong.client.credential" in READ_ONLY  # SPEC §6 and Kong's tables: get only


async def test_source_side_set_works_at_run_time(dk):
    dk.load(
        """\
        nodes:
          - {name: V, type: jq, jq: '"via-output"', output: P}
          - {name: P, type: property, property: kong.ctx.shared.k}
          - {name: WAS_SET, type: jq, input: P, jq: 'true'}
          - {name: GATE, type: branch, input: WAS_SET, then: [GET]}
          - {name: GET, type: property, property: kong.ctx.shared.k, output: response.headers.x-k}
        """
    )
    flow = await dk.roundtrip(make_flow())
    assert flow.response.headers["x-k"] == "via-output"


async def test_response_status_set_with_input_applies_to_a_request_phase_exit(dk):
    dk.load(
        """\
        nodes:
          - {name: V, type: jq, jq: '418'}
          - {name: P, type: property, property: kong.response.status, input: V}
          - {name: EXIT, type: exit, status: 200}
        """
    )
    flow = await dk.roundtrip(make_flow())
    assert dk.upstream_calls == 0
    assert flow.response.status_code == 418



async def test_response_status_set_wired_from_the_source_side_applies_to_a_request_phase_exit(dk):
    # same workflow as above, with the connection declared on V instead of P
    dk.load(
        """\
        nodes:
          - {name: V, type: jq, jq: '418', output: P}
          - {name: P, type: property, property: kong.response.status}
          - {name: EXIT, type: exit, status: 200}
        """
    )
    flow = await dk.roundtrip(make_flow())
    assert dk.upstream_calls == 0
    assert flow.response.status_code == 418
