"""Kong conformance of the `call` node and of the how-to guides and examples
that show a config with a request and its answer, through one real
mitmdump serving a directory of workflows (see `_support`).

Third-party URLs (httpbin.konghq.com, backend-*.example) point at local
MockServers. The OpenID Connect plugin that supplies the credential in the
routing examples is replaced by mitmproxy's `proxyauth` (an htpasswd file
with the callers), which sets `kong.client.credential` here
(docs/coming-from-kong.md, "Where a workflow runs").
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import bcrypt
import httpx
import pytest

from tests.conformance._support import INDEX, workflow, write_workflows
from tests.harness import Mitmdump, MockServer
from tests.harness.clients import client
from tests.harness.mock_server import Reply

GET_STARTED = "app/_how-tos/gateway/get-started-with-datakit.md"
HOST_ROUTING = "app/_kong_plugins/datakit/examples/route-host-by-credential.yaml"
UPSTREAM_ROUTING = "app/_kong_plugins/datakit/examples/route-upstream-by-credential.yaml"
CALLERS = ("caller-a", "caller-b", "stranger")
PASSWORD = "pw"


def echo(req) -> Reply:
    return Reply(json={"method": req.method, "path": req.path, "query": req.raw_query,
                       "ct": req.header("content-type"), "body": req.body.decode()})


def workflows(api: str, a: str, b: str, default: str) -> dict[str, dict[str, Any]]:
    ok = {"name": "EXIT", "type": "exit", "inputs": {"body": "CALL.body"}}
    return {
        # INDEX "Call node" examples and prose
        "query-replace": workflow("query-replace", [
            {"name": "Q", "type": "static", "values": {"a": "1", "list": ["x", "y"]}},
            {"name": "CALL", "type": "call", "url": f"{api}/echo?keep=1&a=0", "inputs": {"query": "Q"}}, ok]),
        "query-empty": workflow("query-empty", [
            {"name": "Q", "type": "jq", "jq": "{}"},
            {"name": "CALL", "type": "call", "url": f"{api}/echo?keep=1", "inputs": {"query": "Q"}}, ok]),
        "query-none": workflow("query-none", [
            {"name": "CALL", "type": "call", "url": f"{api}/echo?keep=1&q=a+b"}, ok]),
        "query-from-request": workflow("query-from-request", [
            {"name": "CALL", "type": "call", "url": f"{api}/echo?static=1", "inputs": {"query": "request.query"}}, ok]),
        "post": workflow("post", [
            {"name": "POST", "type": "call", "url": f"{api}/echo", "method": "POST", "inputs": {"body": "ENTITY"}},
            {"name": "ENTITY", "type": "static", "values": {"id": 123, "name": "Datakit"}},
            {"name": "EXIT", "type": "exit", "inputs": {"body": "POST.body"}}]),
        "post-ct": workflow("post-ct", [
            {"name": "H", "type": "static", "values": {"content-type": "application/vnd.api+json"}},
            {"name": "B", "type": "static", "values": {"id": 1}},
            {"name": "CALL", "type": "call", "url": f"{api}/echo", "method": "POST", "inputs": {"body": "B", "headers": "H"}}, ok]),
        "form": workflow("form", [
            {"name": "H", "type": "static", "values": {"content-type": "application/x-www-form-urlencoded"}},
            {"name": "B", "type": "static", "values": {"grant_type": "client_credentials", "scope": "a b"}},
            {"name": "CALL", "type": "call", "url": f"{api}/echo", "method": "POST", "inputs": {"body": "B", "headers": "H"}}, ok]),
        "dynamic-url": workflow("dynamic-url", [
            {"name": "U", "type": "jq", "input": "request.query", "jq": f'if .to then "{api}/echo/" + .to else null end'},
            {"name": "DYNAMIC_URL", "type": "call", "url": f"{api}/echo/default", "inputs": {"url": "U"}},
            {"name": "EXIT", "type": "exit", "inputs": {"body": "DYNAMIC_URL.body"}}]),
        "async": workflow("async", [
            {"name": "CALL_FOO", "type": "call", "url": f"{api}/slow/foo"},
            {"name": "CALL_BAR", "type": "call", "url": f"{api}/slow/bar"},
            {"name": "JOIN", "type": "jq", "jq": ".", "inputs": {"foo": "CALL_FOO.body", "bar": "CALL_BAR.body"}},
            {"name": "EXIT", "type": "exit", "inputs": {"body": "JOIN"}}]),
        "status": workflow("status", [
            {"name": "CALL", "type": "call", "url": f"{api}/echo", "inputs": {"url": "U"}},
            {"name": "U", "type": "jq", "input": "request.query", "jq": f'"{api}/status/" + .code'},
            {"name": "EXIT", "type": "exit", "inputs": {"body": "CALL.status"}}], debug=True),
        "badjson": workflow("badjson", [
            {"name": "CALL", "type": "call", "url": f"{api}/badjson"}, ok], debug=True),
        "refused": workflow("refused", [
            {"name": "CALL", "type": "call", "url": "http://127.0.0.1:9/closed"}, ok], debug=True),
        "json-out": workflow("json-out", [
            {"name": "CALL", "type": "call", "url": f"{api}/plus-json"},
            {"name": "EXIT", "type": "exit", "inputs": {"body": "CALL.body.n"}}]),
        # GET_STARTED, "Enable Datakit", with httpbin pointed at the mock
        "get-started": workflow("get-started", [
            {"name": "AUTHOR", "type": "call", "url": f"{api}/json"},
            {"name": "UUID", "type": "call", "url": f"{api}/uuid"},
            {"name": "JOIN", "type": "jq", "inputs": {"input1": "AUTHOR.body", "input2": "UUID.body"},
             "jq": "{\n  author: .input1.slideshow.author,\n  uuid: .input2.uuid,\n}\n"},
            {"name": "EXIT", "type": "exit", "inputs": {"body": "JOIN"}, "status": 200}]),
        # HOST_ROUTING config, targets pointed at the mocks (plain http)
        "host-routing": workflow("host-routing", [
            {"name": "GET_CREDENTIAL", "type": "property", "property": "kong.client.credential"},
            {"name": "PICK_TARGET", "type": "jq", "input": "GET_CREDENTIAL", "jq": (
                "{\n"
                f'  "caller-a": {{"target": "{a}", "scheme": "http"}},\n'
                f'  "caller-b": {{"target": "{b}", "scheme": "http"}}\n'
                f'}}[.id] // {{"target": "{default}", "scheme": "http"}}\n')},
            {"name": "EXTRACT_TARGET", "type": "jq", "input": "PICK_TARGET", "jq": ".target"},
            {"name": "SET_TARGET", "type": "property", "property": "kong.service.target", "input": "EXTRACT_TARGET"},
            {"name": "EXTRACT_SCHEME", "type": "jq", "input": "PICK_TARGET", "jq": ".scheme"},
            {"name": "SET_SCHEME", "type": "property", "property": "kong.service.request.scheme", "input": "EXTRACT_SCHEME"}]),
        # UPSTREAM_ROUTING config; the named Upstream entities are the
        # workflow's `upstreams:` map
        "upstream-routing": workflow("upstream-routing", [
            {"name": "GET_CREDENTIAL", "type": "property", "property": "kong.client.credential"},
            {"name": "PICK_UPSTREAM", "type": "jq", "input": "GET_CREDENTIAL",
             "jq": '{\n  "caller-a": "upstream-a",\n  "caller-b": "upstream-b"\n}[.id] // "upstream-default"\n'},
            {"name": "SET_UPSTREAM", "type": "property", "property": "kong.service.upstream", "input": "PICK_UPSTREAM"}],
            upstreams={"upstream-a": a, "upstream-b": b, "upstream-default": default}),
    }


def mock(name: str) -> MockServer:
    server = MockServer()
    server.route("*", "/*", lambda req: Reply(json={"backend": name, "path": req.path}))
    return server


@pytest.fixture(scope="module")
def backends() -> Iterator[dict[str, MockServer]]:
    with ExitStack() as stack:
        yield {name: stack.enter_context(mock(name)) for name in ("a", "b", "default")}


@pytest.fixture(scope="module")
def api() -> Iterator[MockServer]:
    with MockServer() as server:
        server.route("*", "/*", Reply(json={"upstream": True}))
        server.route("*", "/echo*", echo)
        server.route("GET", "/slow/*", lambda req: Reply(json={"from": req.path}, delay=1))
        server.route("GET", "/status/*", lambda req: Reply(status=int(req.path.rsplit("/", 1)[1]), json={}))
        server.route("GET", "/badjson", Reply(body="{nope", headers={"Content-Type": "application/json"}))
        server.route("GET", "/plus-json", Reply(body='{"n": 7}', headers={"Content-Type": "application/problem+json"}))
        server.route("GET", "/json", Reply(json={"slideshow": {"author": "Yours Truly", "title": "Sample Slide Show"}}))
        server.route("GET", "/uuid", Reply(json={"uuid": "cfa1e3f8-6618-4d1f-89f0-da97490d7caa"}))
        yield server


def address(server: MockServer) -> str:
    return server.url.split("://", 1)[1]


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, mitm_confdir, api: MockServer, backends) -> Iterator[Mitmdump]:
    directory = tmp_path_factory.mktemp("call-guides-conformance")
    htpasswd = directory.parent / "callers.htpasswd"
    htpasswd.write_text("".join(
        f"{name}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()}\n" for name in CALLERS))
    write_workflows(directory, workflows(api.url, *(address(backends[n]) for n in ("a", "b", "default"))))
    mitm = Mitmdump(directory, confdir=mitm_confdir, options={"proxyauth": f"@{htpasswd}"}, quiet=True)
    try:
        yield mitm
    finally:
        code = mitm.stop()
        print(f"\n----- {mitm!r} exit={code} log tail -----\n{mitm.log_tail(60)}")


def as_caller(proxy: Mitmdump, caller: str = "caller-a") -> httpx.Client:
    return client(proxy.proxy_url.replace("://", f"://{caller}:{PASSWORD}@", 1))


@pytest.fixture
def c(proxy: Mitmdump) -> Iterator[httpx.Client]:
    with as_caller(proxy) as cl:
        yield cl


# -- call node (INDEX "Call node") ----------------------------------------------


def test_query_input_replaces_the_urls_query(c, api):
    """INDEX "Call node" (query input) with Kong's lua-resty-http semantics: a
    `query` parameter replaces the URL's query; nothing is merged."""
    r = c.get(f"{api.url}/query-replace/x")
    assert r.json()["query"] == "a=1&list=x&list=y"


def test_empty_query_input_sends_no_query(c, api):
    """lua-resty-http: an empty query table encodes to nothing."""
    assert c.get(f"{api.url}/query-empty/x").json()["query"] == ""


def test_unconnected_query_keeps_the_url_as_written(c, api):
    """INDEX "Call node" examples: the configured URL is sent as written."""
    assert c.get(f"{api.url}/query-none/x").json()["query"] == "keep=1&q=a+b"


def test_request_query_into_a_call(c, api):
    """INDEX "Execution debug tracing" example: the call's URL carries the
    request's query (`/status/403?b=123&a=true`), not the configured one."""
    assert c.get(f"{api.url}/query-from-request/x?b=123&a=true").json()["query"] == "b=123&a=true"


def test_post_with_a_json_body(c, api):
    """INDEX "Call node" > "Send a POST request with a JSON body" and
    "Automatic JSON body handling": an object body is JSON with its Content-Type."""
    body = c.get(f"{api.url}/post/x").json()
    assert body["method"] == "POST"
    assert body["ct"] == "application/json"
    assert httpx.Response(200, content=body["body"]).json() == {"id": 123, "name": "Datakit"}


def test_content_type_from_the_headers_input_is_kept(c, api):
    """INDEX "Automatic JSON body handling": `application/json` "unless
    already present in the headers input"."""
    body = c.get(f"{api.url}/post-ct/x").json()
    assert body["ct"] == "application/vnd.api+json"
    assert httpx.Response(200, content=body["body"]).json() == {"id": 1}


def test_form_encoded_body(c, api):
    """INDEX "Request body encoding": with `application/x-www-form-urlencoded`
    in the headers input, an object body is form-encoded."""
    body = c.get(f"{api.url}/form/x").json()
    assert body["ct"] == "application/x-www-form-urlencoded"
    # Kong encodes with ngx.encode_args: a space is %20
    assert sorted(body["body"].split("&")) == ["grant_type=client_credentials", "scope=a%20b"]


@pytest.mark.parametrize("query,path", [("?to=there", "/echo/there"), ("", "/echo/default")])
def test_url_input_or_configured_url(c, api, query, path):
    """INDEX "Resolve URL at runtime": the `url` input replaces the URL; when
    it is nil the configured static URL is used."""
    assert c.get(f"{api.url}/dynamic-url/x{query}").json()["path"] == path


def test_calls_run_concurrently(c, api):
    """INDEX "Async execution": CALL_FOO and CALL_BAR start at once; JOIN waits for both."""
    started = time.monotonic()
    body = c.get(f"{api.url}/async/x").json()
    took = time.monotonic() - started
    assert body == {"foo": {"from": "/slow/foo"}, "bar": {"from": "/slow/bar"}}
    assert took < 1.8, f"two 1 s calls took {took:.2f} s"


@pytest.mark.parametrize("code", [200, 201, 204, 299])
def test_2xx_succeeds(c, api, code):
    """INDEX "Failure conditions": only a non-2xx status fails."""
    r = c.get(f"{api.url}/status/x?code={code}")
    assert (r.status_code, r.json()) == (200, code)


@pytest.mark.parametrize("code", [301, 400, 403, 404, 500, 503])
def test_non_2xx_fails(c, api, code):
    """INDEX "Failure conditions" and "Making node execution errors visible":
    a non-2xx fails the node with `non-2XX response code: N`."""
    r = c.get(f"{api.url}/status/x?code={code}")
    assert r.status_code == 500
    body = r.json()
    assert body["error"] == f"non-2XX response code: {code}"
    assert body["node"] == {"index": 1, "name": "CALL", "type": "call"}


def test_invalid_json_fails(c, api):
    """INDEX "Failure conditions": a JSON Content-Type with a body that is not JSON fails."""
    r = c.get(f"{api.url}/badjson/x")
    assert r.status_code == 500 and r.json()["node"]["name"] == "CALL"


def test_network_error_fails(c, api):
    """INDEX "Failure conditions": a network-level error fails the node."""
    r = c.get(f"{api.url}/refused/x")
    assert r.status_code == 500 and r.json()["message"] == "node execution error"


def test_json_mime_types_are_decoded(c, api):
    """INDEX "Automatic JSON body handling": a response whose Content-Type
    matches the JSON mime-type (`+json` too) is decoded."""
    r = c.get(f"{api.url}/json-out/x")
    assert r.json() == 7


# -- GET_STARTED -----------------------------------------------------------------


def test_get_started_with_datakit(c, api):
    """GET_STARTED "Validate": `GET /anything` answers 200 with the UUID and the author."""
    r = c.get(f"{api.url}/get-started/anything")
    assert r.status_code == 200
    assert r.json() == {"uuid": "cfa1e3f8-6618-4d1f-89f0-da97490d7caa", "author": "Yours Truly"}
    assert r.headers["content-type"].startswith("application/json")


# -- HOST_ROUTING / UPSTREAM_ROUTING ---------------------------------------------


@pytest.mark.parametrize("caller,backend", [("caller-a", "a"), ("caller-b", "b"), ("stranger", "default")])
def test_route_host_by_credential(proxy, api, backends, caller, backend):
    """HOST_ROUTING: the credential's id picks a host:port target and scheme;
    unknown callers fall through to the default backend."""
    with as_caller(proxy, caller) as cl:
        r = cl.get(f"{api.url}/host-routing/orders")
    assert r.json() == {"backend": backend, "path": "/host-routing/orders"}


@pytest.mark.parametrize("caller,backend", [("caller-a", "a"), ("caller-b", "b"), ("stranger", "default")])
def test_route_upstream_by_credential(proxy, api, backends, caller, backend):
    """UPSTREAM_ROUTING: the credential's id picks a named upstream;
    unknown callers get `upstream-default`."""
    with as_caller(proxy, caller) as cl:
        r = cl.get(f"{api.url}/upstream-routing/orders")
    assert r.json() == {"backend": backend, "path": "/upstream-routing/orders"}


def test_without_credentials_the_proxy_refuses(proxy, api):
    """The OIDC plugin's role: no credential, no routing (here: proxyauth's 407)."""
    with client(proxy.proxy_url) as cl:
        assert cl.get(f"{api.url}/host-routing/orders").status_code == 407


SOURCES = (INDEX, GET_STARTED, HOST_ROUTING, UPSTREAM_ROUTING)
