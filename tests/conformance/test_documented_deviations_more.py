"""The entries of docs/coming-from-kong.md that still had no specific test,
each shown through a real mitmdump or `datakit validate` (the first ones are
in test_documented_deviations.py, whose helpers this module reuses).

Each test names the doc entry it shows and the Kong source it follows or
differs from: paths in Kong/developer.konghq.com (see `_support`: INDEX is
the plugin page, SCHEMA the 3.15 plugin schema), or in Kong/datakit
(`docs/datakit.md`, the older proxy-wasm design, which states defaults the
3.11+ pages leave out).
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conformance._support import INDEX, SCHEMA, TRACE, serve, workflow, write_workflows
from tests.conformance.test_documented_deviations import validate
from tests.harness import Mitmdump, MockServer
from tests.harness.mock_server import Reply
from tests.redis_server import RedisServer, redis_binary, running_redis

KONG_DATAKIT_DOC = "Kong/datakit docs/datakit.md"
assert INDEX and SCHEMA  # the sources the docstrings cite

ADDED = {"name": "ADDED", "type": "static", "values": {"x-added": "by-datakit"}, "output": "response.headers"}
MEMORY = {"cache": {"strategy": "memory", "memory": {"dictionary_name": "dk_shared_more"}}}
OTHER_MEMORY = {"cache": {"strategy": "memory", "memory": {"dictionary_name": "dk_other_more"}}}
CALL_HEADERS = {
    "host": "evil.example", "content-length": "5", "transfer-encoding": "chunked",
    "connection": "close, x-listed", "x-listed": "dropped too", "keep-alive": "timeout=5",
    "te": "trailers", "upgrade": "h2c", "proxy-authorization": "Basic eDp5", "x-kept": "kept",
}


def call_exit(url: str, **inputs: str) -> list[dict[str, Any]]:
    """A call whose body (or failure, with debug) is the answer."""
    return [
        {"name": "CALL", "type": "call", "url": url, **({"inputs": inputs} if inputs else {})},
        {"name": "EXIT", "type": "exit", "status": 200, "inputs": {"body": "CALL.body"}},
    ]


def cache_store(key: str, **attrs: Any) -> list[dict[str, Any]]:
    return [
        {"name": "K", "type": "static", "values": {"key": key, "data": {"stored": key}}},
        {"name": "SET", "type": "cache", "inputs": {"key": "K.key", "data": "K.data"}, **attrs},
        {"name": "EXIT", "type": "exit", "status": 200, "inputs": {"body": "SET"}},
    ]


def cache_fetch(key: str) -> list[dict[str, Any]]:
    return [
        {"name": "K", "type": "static", "values": {"key": key}},
        {"name": "GET", "type": "cache", "inputs": {"key": "K.key"}},
        {"name": "EXIT", "type": "exit", "status": 200, "inputs": {"body": "GET"}},
    ]


def prop(name: str, key: str) -> dict[str, Any]:
    return {"name": name, "type": "property", "property": key}


def workflows(api: str, redis: RedisServer | None) -> dict[str, dict[str, Any]]:
    docs = {
        # "Execution": response inputs made before proxying apply to the upstream's answer ...
        "resp-upstream": workflow("resp-upstream", [ADDED]),
        # ... and to an exit's
        "resp-exit": workflow("resp-exit", [ADDED, {"name": "EXIT", "type": "exit", "status": 201}]),
        # "Execution": the trace report replaces the body, keeps the status
        "report-exit": workflow("report-exit", [{"name": "EXIT", "type": "exit", "status": 202}], debug=True),
        "report-upstream": workflow("report-upstream", [{"name": "A", "type": "static", "values": {"a": 1}}], debug=True),
        "report-fail": workflow("report-fail", [{"name": "CALL", "type": "call", "url": f"{api}/forbidden"}], debug=True),
        # "Nodes", call: the headers it does not send; Accept-Encoding and decoding
        "call-headers": workflow("call-headers", [
            {"name": "H", "type": "static", "values": CALL_HEADERS},
            *call_exit(f"{api}/echo", headers="H"),
        ]),
        "call-gzip": workflow("call-gzip", call_exit(f"{api}/gzipped")),
        "call-proxy": workflow("call-proxy", [
            {"name": "P", "type": "static", "values": {"proxy": api}},
            *call_exit("http://upstream.invalid/through-proxy", http_proxy="P.proxy"),
        ]),
        "call-slow": workflow("call-slow", call_exit(f"{api}/slow"), debug=True),
        # "Nodes", cache: workflows with the same dictionary_name share entries
        "cache-store": workflow("cache-store", cache_store("shared"), resources=MEMORY),
        "cache-fetch": workflow("cache-fetch", cache_fetch("shared"), resources=MEMORY),
        "cache-other": workflow("cache-other", cache_fetch("shared"), resources=OTHER_MEMORY),
        "cache-zero": workflow("cache-zero", cache_store("zero", ttl=0), resources=MEMORY),
        "cache-zero-get": workflow("cache-zero-get", cache_fetch("zero"), resources=MEMORY),
        "cache-short": workflow("cache-short", cache_store("short", ttl=1), resources=MEMORY),
        "cache-short-get": workflow("cache-short-get", cache_fetch("short"), resources=MEMORY),
        # "Nodes", property: the mitmproxy meaning of Kong's properties
        "props": workflow("props", [
            prop("KPORT", "kong.request.port"), prop("VERSION", "kong.version"),
            prop("ROUTE", "kong.router.route"), prop("FIP", "kong.client.forwarded_ip"),
            prop("FPORT", "kong.client.forwarded_port"), prop("LISTEN", "kong.configuration.listen_port"),
            {"name": "OUT", "type": "jq", "jq": ".", "inputs": {
                "kong_port": "KPORT", "url_port": "request.port", "version": "VERSION", "route": "ROUTE",
                "forwarded_ip": "FIP", "forwarded_port": "FPORT", "listen_port": "LISTEN"}},
            {"name": "EXIT", "type": "exit", "status": 200, "inputs": {"body": "OUT"}},
        ]),
        "ctx-json": workflow("ctx-json", [
            {"name": "V", "type": "static", "values": {"n": 1, "list": [1, "a"], "flag": True}},
            {"name": "SET", "type": "property", "property": "kong.ctx.shared.value", "input": "V"},
            {"name": "ANSWERED", "type": "jq", "input": "service_response.status", "jq": "true"},
            {"name": "LATER", "type": "branch", "input": "ANSWERED", "then": ["GET", "OUT"]},
            {"name": "GET", "type": "property", "property": "kong.ctx.shared.value"},
            {"name": "OUT", "type": "jq", "input": "GET", "jq": "{value: ., type: type}", "output": "response.body"},
        ]),
    }
    if redis is not None:
        resources = {"cache": {"strategy": "redis", "redis": {"host": "127.0.0.1", "port": redis.port}}}
        docs["redis-default"] = workflow("redis-default", cache_store("dflt"), resources=resources)
        docs["redis-zero"] = workflow("redis-zero", cache_store("forever", ttl=0), resources=resources)
    return docs


@pytest.fixture(scope="module")
def api() -> Iterator[MockServer]:
    with MockServer() as server:
        server.route("*", "/*", Reply(json={"upstream": True}, headers={"X-Upstream": "yes"}))
        server.route("*", "/report-upstream/*", Reply(status=404, json={"missing": True}))
        server.route("GET", "/forbidden", Reply(status=403, json={"no": True}))
        server.route("GET", "/gzipped", Reply(body=gzip.compress(b'{"unzipped": true}'),
                                              headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}))
        server.route("GET", "/slow", Reply(json={"late": True}, delay=1.5))
        server.route("GET", "/echo", lambda req: Reply(json={"headers": req.headers.to_dict()}))
        yield server


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer | None]:
    if redis_binary() is None:  # the redis tests skip themselves with the reason
        yield None
        return
    with running_redis() as server:
        yield server


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, mitm_confdir, api: MockServer, redis: RedisServer | None) -> Iterator[Mitmdump]:
    directory = write_workflows(tmp_path_factory.mktemp("deviations-more"), workflows(api.url, redis))
    yield from serve(directory, mitm_confdir)


@pytest.fixture
def c(proxy: Mitmdump) -> Iterator[httpx.Client]:
    with proxy.client(timeout=30) as client:
        yield client


# -- Execution ----------------------------------------------------------------------


def test_response_inputs_apply_to_the_upstreams_answer(c, api):
    """coming-from-kong.md "Execution", `response` inputs: a header written
    to `response.headers` before proxying is on the upstream's answer, whose
    status and body are kept (INDEX "Implicit nodes": `response` "Updates
    properties of the outgoing client response"; the page is silent on when)."""
    r = c.get(f"{api.url}/resp-upstream/x")
    assert (r.status_code, r.json()) == (200, {"upstream": True})
    assert r.headers["x-upstream"] == "yes"
    assert r.headers["x-added"] == "by-datakit"


def test_response_inputs_apply_to_an_exits_answer(c, api):
    """coming-from-kong.md "Execution", `response` inputs: the same header is
    on an exit's answer, which the upstream never saw."""
    api.clear()
    r = c.get(f"{api.url}/resp-exit/x")
    assert r.status_code == 201
    assert r.headers["x-added"] == "by-datakit"
    assert "x-upstream" not in r.headers
    assert api.requests == []


@pytest.mark.parametrize(("path", "status", "body_key"), [
    pytest.param("report-exit/x", 202, None, id="exit"),
    pytest.param("report-upstream/x", 404, "missing", id="upstream"),
    pytest.param("report-fail/x", 500, None, id="node-failure"),
])
def test_the_trace_report_replaces_the_body_and_keeps_the_status(c, api, path, status, body_key):
    """coming-from-kong.md "Execution", the trace report: INDEX "Execution
    debug tracing" returns "a full report in the client response" and does
    not say with which status; here the body is the report and the status
    is the one the answer had (the exit's, the upstream's, the failure's)."""
    r = c.get(f"{api.url}/{path}", headers=TRACE)
    assert r.status_code == status
    report = r.json()
    assert {"started_at", "status", "nodes", "events"} <= set(report)
    if body_key:
        assert body_key not in report
    assert r.headers["content-type"].startswith("application/json")


# -- Nodes: call ----------------------------------------------------------------------


def test_a_call_does_not_send_framing_hop_by_hop_or_host_headers(c, api):
    """coming-from-kong.md "Nodes", call: `host`, `content-length`,
    `transfer-encoding` and hop-by-hop headers of the headers input (and
    names its `connection` lists) are not sent; the rest is. INDEX's call
    node takes "headers" without saying which are sent."""
    api.clear()
    r = c.get(f"{api.url}/call-headers/x")
    assert r.status_code == 200
    sent = api.requests_for("/echo")[0].headers
    assert sent["host"] == api.authority
    assert sent.get("x-kept") == "kept"
    for name in ("connection", "x-listed", "keep-alive", "te", "upgrade", "proxy-authorization", "transfer-encoding"):
        assert name not in sent.names() and name.title() not in sent.names(), name
    assert sent.get("content-length") in (None, "0")


def test_a_call_asks_for_compression_and_decodes_the_answer(c, api):
    """coming-from-kong.md "Nodes", call: `Accept-Encoding` is added and a
    gzip answer is decoded before its JSON body is parsed (the page is
    silent)."""
    api.clear()
    r = c.get(f"{api.url}/call-gzip/x")
    assert (r.status_code, r.json()) == (200, {"unzipped": True})
    assert "gzip" in (api.requests_for("/gzipped")[0].header("accept-encoding") or "")


def test_a_call_goes_through_an_http_proxy_input(c, api):
    """coming-from-kong.md "Nodes", call: the `http_proxy` input (INDEX, call
    inputs) names an `http://` proxy: the call to an unresolvable host is
    sent to it, in absolute form."""
    api.clear()
    r = c.get(f"{api.url}/call-proxy/x")
    assert r.status_code == 200, r.text
    [sent] = api.requests
    assert sent.path == "http://upstream.invalid/through-proxy"
    assert sent.header("host") == "upstream.invalid"


def test_a_call_without_timeout_waits_longer_than_a_moment(c, api):
    """coming-from-kong.md "Nodes", call: the default timeout is 60 s.
    SCHEMA gives `timeout` no default; KONG_DATAKIT_DOC: "the dispatch
    timeout, in seconds (default is 60)". An answer after 1.5 s arrives."""
    r = c.get(f"{api.url}/call-slow/x")
    assert (r.status_code, r.json()) == (200, {"late": True})


def test_a_call_without_timeout_has_a_60_second_budget():
    """coming-from-kong.md "Nodes", call: default timeout 60 s
    (KONG_DATAKIT_DOC: "default is 60"). The budget the node hands aiohttp
    is read from the loaded node rather than waited for (a minute of CI);
    that a budget ends a call with "timed out after N s" is shown with a
    short explicit timeout in tests/integration/test_call.py."""
    from mitmdatakit.config import load_text

    wf = load_text("nodes:\n  - {name: CALL, type: call, url: 'http://127.0.0.1:9/x'}\n", source="wf.yaml")
    call = wf.plan.nodes[wf.plan.by_name["CALL"]]
    assert call.timeout.total == 60
    explicit = load_text("nodes:\n  - {name: CALL, type: call, url: 'http://127.0.0.1:9/x', timeout: 1500}\n", source="wf.yaml")
    assert explicit.plan.nodes[explicit.plan.by_name["CALL"]].timeout.total == 1.5


# -- Nodes: cache -----------------------------------------------------------------


def test_memory_cache_entries_are_shared_by_dictionary_name(c, api):
    """coming-from-kong.md "Nodes", cache: an entry stored by one workflow is
    a hit in another with the same `memory.dictionary_name`, and a miss with
    another name (SCHEMA `resources.cache.memory.dictionary_name`: "The name
    of the shared dictionary in which to hold cache entities")."""
    assert c.get(f"{api.url}/cache-store/x").json()["stored"] is True
    assert c.get(f"{api.url}/cache-fetch/x").json() == {"hit": True, "miss": False, "stored": False,
                                                        "data": {"stored": "shared"}}
    assert c.get(f"{api.url}/cache-other/x").json()["miss"] is True


def test_memory_cache_ttl_zero_never_expires(c, api):
    """coming-from-kong.md "Nodes", cache: `ttl: 0` never expires, while a
    1 s entry stored at the same time is gone 1.5 s later (INDEX: `ttl` "The
    TTL (Time to Live) in seconds"; 0 is Kong's no-expiry convention)."""
    assert c.get(f"{api.url}/cache-zero/x").json()["stored"] is True
    assert c.get(f"{api.url}/cache-short/x").json()["stored"] is True
    time.sleep(1.5)
    assert c.get(f"{api.url}/cache-short-get/x").json()["miss"] is True
    assert c.get(f"{api.url}/cache-zero-get/x").json()["hit"] is True


def _redis(redis: RedisServer | None) -> RedisServer:
    if redis is None:
        pytest.skip("redis-server binary not found (apt-get install -y redis-server)")
    return redis


def test_redis_cache_key_value_and_default_ttl(c, api, redis):
    """coming-from-kong.md "Nodes", cache: Redis keys are `datakit:cache:KEY`,
    values JSON, and the default TTL is 300 s (the page and SCHEMA give no
    default for the node's `ttl`)."""
    server = _redis(redis)
    assert c.get(f"{api.url}/redis-default/x").json()["stored"] is True
    value = server.command("GET", "datakit:cache:dflt").split(b"\r\n")[1]
    assert json.loads(value) == {"stored": "dflt"}
    ttl = int(server.command("TTL", "datakit:cache:dflt")[1:].strip())
    assert 290 <= ttl <= 300


def test_redis_cache_ttl_zero_sets_no_expiry(c, api, redis):
    """coming-from-kong.md "Nodes", cache: `ttl: 0` stores a Redis key with no
    expiry (TTL -1)."""
    server = _redis(redis)
    assert c.get(f"{api.url}/redis-zero/x").json()["stored"] is True
    assert server.command("TTL", "datakit:cache:forever").strip() == b":-1"


# -- Nodes: vault -----------------------------------------------------------------


def test_vault_secrets_are_read_when_the_workflow_loads(tmp_path):
    """coming-from-kong.md "Nodes", vault: a reference to a variable that is
    not set refuses the workflow at load, naming the entry (INDEX "Vault
    node": `{vault://env/my-secret1}`); it is not looked up per request."""
    doc = {"resources": {"vault": {"secret1": "{vault://env/dk-more-unset-secret}"}},
           "nodes": [{"name": "J", "type": "jq", "inputs": {"s": "vault.secret1"}, "jq": ".s | length"}]}
    proc = validate(tmp_path, doc)
    assert proc.returncode != 0
    assert "field 'resources.vault.secret1': environment variable DK_MORE_UNSET_SECRET is not set" in proc.stdout


def test_a_reload_re_reads_vault_secrets(tmp_path, mitm_confdir):
    """coming-from-kong.md "Nodes", vault: a reload of the workflow resolves
    its references again (here the file now names another variable)."""
    api = MockServer().start()
    path = tmp_path / "vault.yaml"

    def write(variable: str) -> None:
        doc = {"resources": {"vault": {"token": f"{{vault://env/{variable}}}"}}, "nodes": [
            {"name": "J", "type": "jq", "inputs": {"t": "vault.token"}, "jq": "{token: .t}"},
            {"name": "EXIT", "type": "exit", "status": 200, "inputs": {"body": "J"}}]}
        path.write_text(yaml.safe_dump(doc, sort_keys=False))

    write("dk-more-first")
    env = {"DK_MORE_FIRST": "first", "DK_MORE_SECOND": "second"}
    try:
        with Mitmdump(path, confdir=mitm_confdir, env=env) as mitm, mitm.client() as client:
            assert client.get(f"{api.url}/x").json() == {"token": "first"}
            offset = mitm.log_offset()
            write("dk-more-second")
            mitm.wait_for_log(r"loaded 1 workflow", timeout=10, since=offset)
            assert client.get(f"{api.url}/x").json() == {"token": "second"}
    finally:
        api.stop()


# -- Nodes: property --------------------------------------------------------------


def test_properties_have_their_mitmproxy_meaning(c, api, proxy):
    """coming-from-kong.md "Nodes", property (INDEX "Supported properties"):
    `kong.request.port` is mitmproxy's listen port while the `request`
    node's `port` is the URL's; `kong.version` is 3.15.0;
    `kong.router.route` is the workflow's {name, source, match};
    `kong.client.forwarded_ip`/`_port` are the connection's own address;
    `kong.configuration.listen_port` is the mitmproxy option."""
    out = c.get(f"{api.url}/props/x").json()
    port = int(api.authority.rsplit(":", 1)[1])
    assert out["kong_port"] == proxy.port
    assert out["url_port"] == port
    assert out["listen_port"] == proxy.port
    assert out["version"] == "3.15.0"
    assert out["route"]["name"] == "props"
    assert out["route"]["match"] == {"paths": ["/props/"]}
    assert Path(out["route"]["source"]).name == "props.yaml"
    assert out["forwarded_ip"] == "127.0.0.1"
    assert isinstance(out["forwarded_port"], int) and out["forwarded_port"] not in (proxy.port, port)


@pytest.mark.parametrize("option", ["proxyauth", "upstream_auth"])
def test_credential_like_configuration_is_refused(tmp_path, option):
    """coming-from-kong.md "Nodes", property: `kong.configuration.KEY` reads
    mitmproxy options, but not those whose names suggest credentials."""
    proc = validate(tmp_path, {"nodes": [prop("P", f"kong.configuration.{option}")]})
    assert proc.returncode != 0, proc.stdout
    assert f"kong.configuration.{option}': the option may hold credentials" in proc.stdout + proc.stderr


def test_kong_ctx_keeps_json_values(c, api):
    """coming-from-kong.md "Nodes", property: a map stored in `kong.ctx.*` is
    read back as the same map, not as its text."""
    r = c.get(f"{api.url}/ctx-json/x")
    assert r.json() == {"value": {"n": 1, "list": [1, "a"], "flag": True}, "type": "object"}
