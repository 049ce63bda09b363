"""Kong conformance of the Datakit entries of Kong Gateway's changelog
(Kong/developer.konghq.com `app/_data/changelogs/gateway.json`, the entries
starting `**datakit**:`), each fix or feature that is observable through a
real mitmdump (see `_support`). Entries about Konnect, the control plane,
hybrid mode, packaging or the Wasm filter have no meaning here; entries
already tested elsewhere (dynamic url, form-urlencoded bodies, `non_nil`,
the JWT nodes, the cache and branch nodes, vault) are not repeated.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conformance._support import config_error, serve, workflow, write_workflows
from tests.harness import Mitmdump, MockServer, RecordedRequest, Reply

GATEWAY_CHANGELOG = "app/_data/changelogs/gateway.json"
IMPLICIT = {
    "request.path": "string", "request.raw_path": "string", "request.port": "number", "request.method": "string",
    "request.scheme": "string", "request.version": "number", "service_response.status": "number",
    "service_response.raw_body": "string",
}


def exit_body(source: str) -> dict[str, Any]:
    return {"name": "EXIT", "type": "exit", "inputs": {"body": source}}


def workflows(api: str, tls_api: str) -> dict[str, dict[str, Any]]:
    w = workflow
    docs: dict[str, dict[str, Any]] = {
        "headers-type": w("headers-type", [
            {"name": "T", "type": "jq", "input": "request.headers", "jq": "type"}, exit_body("T")]),
        "text-xml": w("text-xml", [
            {"name": "X2J", "type": "xml_to_json", "input": "request.body", "attributes_name_prefix": "@"}, exit_body("X2J")]),
        "consumer": w("consumer", [
            {"name": "C", "type": "static", "values": {"username": "alice", "custom_id": "c-1"}},
            {"name": "SET", "type": "property", "property": "kong.client.consumer", "input": "C"},
            {"name": "DONE", "type": "jq", "input": "SET", "jq": "true"},
            {"name": "GATE", "type": "branch", "input": "DONE", "then": ["GET", "EXIT"]},
            {"name": "GET", "type": "property", "property": "kong.client.consumer"},
            exit_body("GET")], debug=True),
        "call-raw-body": w("call-raw-body", [
            {"name": "CALL", "type": "call", "url": f"{api}/text"},
            {"name": "T", "type": "jq", "input": "CALL.raw_body", "jq": "{type: type, value: .}"}, exit_body("T")]),
        "ssl-verify-default": w("ssl-verify-default", [
            {"name": "CALL", "type": "call", "url": f"{tls_api}/text"}, exit_body("CALL.raw_body")], debug=True),
        "ssl-verify-off": w("ssl-verify-off", [
            {"name": "CALL", "type": "call", "url": f"{tls_api}/text", "ssl_verify": False}, exit_body("CALL.raw_body")]),
        "post-proxy-call": w("post-proxy-call", [
            {"name": "CALL", "type": "call", "url": f"{api}/echo", "method": "POST",
             "inputs": {"body": "service_response.body"}},
            {"name": "OUT", "type": "jq", "input": "CALL.body", "jq": ".body | fromjson", "output": "response.body"}]),
        "json-to-xml-ct": w("json-to-xml-ct", [
            {"name": "B", "type": "static", "values": {"root": {"a": "1"}}},
            {"name": "J2X", "type": "json_to_xml", "input": "B", "output": "response.body"}]),
    }
    for i, source in enumerate(IMPLICIT):
        prefix = f"implicit-{i}"
        docs[prefix] = w(prefix, [
            {"name": "T", "type": "jq", "input": source, "jq": "type", "output": "response.body"}])
    return docs


def echo(req: RecordedRequest) -> Reply:
    return Reply(json={"body": req.body.decode()})


@pytest.fixture(scope="module")
def api() -> Iterator[MockServer]:
    with MockServer() as server:
        server.route("*", "/*", Reply(json={"upstream": True}))
        server.route("*", "/echo", echo)
        server.route("GET", "/text", Reply(body="plain words", headers={"Content-Type": "text/plain"}))
        yield server


@pytest.fixture(scope="module")
def tls_api() -> Iterator[MockServer]:
    with MockServer(tls=True) as server:
        server.route("GET", "/text", Reply(body="over tls", headers={"Content-Type": "text/plain"}))
        yield server


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, mitm_confdir, api: MockServer, tls_api: MockServer) -> Iterator[Mitmdump]:
    directory = write_workflows(tmp_path_factory.mktemp("changelog-conformance"), workflows(api.url, tls_api.url))
    yield from serve(directory, mitm_confdir)


@pytest.fixture
def c(proxy: Mitmdump) -> Iterator[httpx.Client]:
    with proxy.client() as client:
        yield client


def test_request_headers_are_a_map(c, api):
    """app/_data/changelogs/gateway.json "Fixed implicit request node headers field to be correct type"."""
    assert c.get(f"{api.url}/headers-type/x", headers={"X-A": "1"}).text == "object"


@pytest.mark.parametrize("content_type", ["text/xml", "application/xml", "text/xml; charset=utf-8"])
def test_xml_to_json_recognizes_text_xml(c, api, content_type):
    """app/_data/changelogs/gateway.json "Fixed xml_to_json node to recognize `text/xml`
    content-type in addition to `application/xml` for XML request body
    processing, ensuring RFC 7303 compliance"."""
    r = c.post(f"{api.url}/text-xml/x", content=b"<root><a>1</a></root>", headers={"Content-Type": content_type})
    assert r.status_code == 200
    assert r.json()["root"]["a"] in (1, "1")  # parsed as XML, not passed on as text


@pytest.mark.parametrize("node", [
    {"name": "SET_IP", "type": "property", "property": "kong.client.ip", "input": "V"},
    {"name": "BAD", "type": "property", "property": ""},
])
def test_invalid_property_node_usage_is_refused_at_load(tmp_path, node):
    """app/_data/changelogs/gateway.json "Fixed plugin config validation to catch more invalid
    usage of the `property` node": setting a get-only property, an empty
    property name."""
    output = config_error(tmp_path, {"nodes": [{"name": "V", "type": "static", "values": {"a": 1}}, node]})
    assert node["name"] in output


@pytest.mark.parametrize("source", list(IMPLICIT))
def test_implicit_node_outputs(c, api, source):
    """app/_data/changelogs/gateway.json "Added more implicit node outputs: request.path,
    request.raw_path, request.port, request.method, request.scheme,
    request.version, service_response.status, service_response.raw_body"."""
    i = list(IMPLICIT).index(source)
    r = c.get(f"{api.url}/implicit-{i}/x")
    assert (r.status_code, r.text) == (200, IMPLICIT[source])  # a string body is sent as is


def test_call_raw_body(c, api):
    """app/_data/changelogs/gateway.json "Added more implicit node outputs: ... call.raw_body":
    a call's body as the raw string, whatever its content type."""
    assert c.get(f"{api.url}/call-raw-body/x").json() == {"type": "string", "value": "plain words"}


def test_consumer_can_be_set_via_property_node(c, api):
    """app/_data/changelogs/gateway.json "Consumer can now be set via property node"."""
    assert c.get(f"{api.url}/consumer/x").json() == {"username": "alice", "custom_id": "c-1"}


def test_call_verifies_tls_by_default(c, api):
    """app/_data/changelogs/gateway.json "the call node's `ssl_verify` option to verify the TLS
    certificate when making HTTPS requests is now enabled by default": a
    self-signed server fails the call."""
    r = c.get(f"{api.url}/ssl-verify-default/x")
    assert r.status_code == 500
    assert r.json()["node"]["name"] == "CALL"


def test_call_ssl_verify_can_be_turned_off(c, api):
    """app/_data/changelogs/gateway.json "added the `ssl_verify` flag to the call node. This
    flag allows users to control certificate verification"."""
    r = c.get(f"{api.url}/ssl-verify-off/x")
    assert (r.status_code, r.text) == (200, "over tls")


def test_call_node_in_the_post_proxy_phase(c, api):
    """app/_data/changelogs/gateway.json "Added support for using the `call` node in the
    post-proxy phase": a call fed by `service_response.body`."""
    assert c.get(f"{api.url}/post-proxy-call/x").json() == {"upstream": True}


def test_json_to_xml_response_content_type(c, api):
    """app/_data/changelogs/gateway.json "Fixed an issue where the `response` node set
    `Content-Type: application/octet-stream` for `json_to_xml` output. It now
    defaults to `application/xml` when no explicit `Content-Type` is provided"."""
    r = c.get(f"{api.url}/json-to-xml-ct/x")
    assert r.headers["content-type"].startswith("application/xml")
    assert "<a>1</a>" in r.text
