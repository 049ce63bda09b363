"""The `call` node against real local servers, through a real mitmdump."""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from tests.harness import MockServer, Reply


def workflows(tmp_path: Path, docs: dict[str, dict]) -> Path:
    """One directory, one workflow per path prefix (`/NAME`)."""
    d = tmp_path / "wfs"
    d.mkdir()
    for name, doc in docs.items():
        doc = {"debug": True, "match": {"paths": [f"/{name}"]}, **doc}
        (d / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return d


def exit_with(call: dict, port: str = "body") -> list[dict]:
    return [call, {"name": "EXIT", "type": "exit", "inputs": {"body": f"{call['name']}.{port}"}}]


def test_call_options(tmp_path, make_mock_server, start_mitmdump):
    api = make_mock_server()
    tls_api = make_mock_server(tls=True)
    api.route("GET", "/slow", Reply(json={}, delay=2))
    api.route("GET", "/badjson", Reply(body="{not json", headers={"Content-Type": "application/json"}))
    api.route("POST", "/echo-json", lambda req: Reply(json={"got": req.json(), "ct": req.header("content-type"), "q": req.raw_query}))
    api.route("GET", "/status/*", lambda req: Reply(status=int(req.path.rsplit("/", 1)[1]), json={"s": 1}))
    tls_api.route("GET", "/tls", Reply(json={"secure": True}))
    d = workflows(tmp_path, {
        "timeout": {"nodes": exit_with({"name": "C", "type": "call", "url": f"{api.url}/slow", "timeout": 200})},
        "badjson": {"nodes": exit_with({"name": "C", "type": "call", "url": f"{api.url}/badjson"})},
        "post": {"nodes": [
            {"name": "B", "type": "static", "values": {"body": {"a": [1, 2]}, "query": {"x": "1", "flag": None}}},
            {"name": "C", "type": "call", "method": "POST", "url": f"{api.url}/echo-json?keep=1",
             "inputs": {"body": "B.body", "query": "B.query"}},
            {"name": "EXIT", "type": "exit", "inputs": {"body": "C.body"}},
        ]},
        "dynamic": {"nodes": [
            {"name": "U", "type": "jq", "input": "request.query", "jq": f"\"{api.url}/status/\" + .code"},
            {"name": "C", "type": "call", "url": "http://127.0.0.1:9/never-used", "inputs": {"url": "U"}},
            {"name": "EXIT", "type": "exit", "inputs": {"body": "C.status"}},
        ]},
        "tlsverify": {"nodes": exit_with({"name": "C", "type": "call", "url": f"{tls_api.url}/tls"})},
        "tlsinsecure": {"nodes": exit_with({"name": "C", "type": "call", "url": f"{tls_api.url}/tls", "ssl_verify": False,
                                            "ssl_server_name": "localhost"})},
        "refused": {"nodes": exit_with({"name": "C", "type": "call", "url": "http://127.0.0.1:9/closed"})},
    })
    mitm = start_mitmdump(d)
    with mitm.client() as c:
        started = time.perf_counter()
        r = c.get("http://api.test/timeout")
        assert time.perf_counter() - started < 1.5
        assert r.status_code == 500 and "timed out" in r.json()["error"]

        r = c.get("http://api.test/badjson")
        assert r.status_code == 500 and "invalid JSON" in r.json()["error"]

        r = c.get("http://api.test/post")
        assert r.status_code == 200
        assert r.json() == {"got": {"a": [1, 2]}, "ct": "application/json", "q": "x=1&flag"}  # the query input replaces the URL's (Kong, lua-resty-http)
        assert api.requests_for("/echo-json")[0].method == "POST"

        assert c.get("http://api.test/dynamic?code=201").json() == 201
        r = c.get("http://api.test/dynamic?code=503")
        assert r.status_code == 500 and "non-2XX response code: 503" in r.json()["error"]
        assert r.json()["node"] == {"index": 2, "name": "C", "type": "call"}

        r = c.get("http://api.test/tlsverify")
        assert r.status_code == 500 and "certificate" in r.json()["error"].lower()
        assert c.get("http://api.test/tlsinsecure").json() == {"secure": True}

        r = c.get("http://api.test/refused")
        assert r.status_code == 500 and "failed" in r.json()["error"]


def test_call_connections_are_pooled_across_flows(tmp_path, mock_server: MockServer, start_mitmdump):
    mock_server.route("GET", "/pooled", Reply(json={"ok": True}))
    d = workflows(tmp_path, {"pool": {"nodes": exit_with({"name": "C", "type": "call", "url": f"{mock_server.url}/pooled"})}})
    mitm = start_mitmdump(d)
    with mitm.client() as c:
        for _ in range(5):
            assert c.get("http://api.test/pool").json() == {"ok": True}
    remotes = {req.remote for req in mock_server.requests_for("/pooled")}
    assert len(mock_server.requests_for("/pooled")) == 5
    assert len(remotes) == 1, f"expected one pooled connection, saw {remotes}"


def test_call_through_a_proxy_with_auth(tmp_path, mock_server: MockServer, start_mitmdump):
    mock_server.route("GET", "/via-proxy", Reply(json={"proxied": True}))
    forward = start_mitmdump(None, script=None, options={"proxyauth": "bob:hunter2"})
    d = workflows(tmp_path, {
        "auth": {"nodes": [
            {"name": "P", "type": "static", "values": {"http_proxy": forward.proxy_url, "proxy_auth_username": "bob",
                                                        "proxy_auth_password": "hunter2"}},
            {"name": "C", "type": "call", "url": f"{mock_server.url}/via-proxy", "input": "P"},
            {"name": "EXIT", "type": "exit", "inputs": {"body": "C.body"}},
        ]},
        "noauth": {"nodes": [
            {"name": "P", "type": "static", "values": {"http_proxy": forward.proxy_url}},
            {"name": "C", "type": "call", "url": f"{mock_server.url}/via-proxy", "input": "P"},
            {"name": "EXIT", "type": "exit", "inputs": {"body": "C.body"}},
        ]},
    })
    mitm = start_mitmdump(d)
    with mitm.client() as c:
        assert c.get("http://api.test/auth").json() == {"proxied": True}
        r = c.get("http://api.test/noauth")
        assert r.status_code == 500 and "407" in r.json()["error"]
    forward.wait_for_log(r"GET http://127\.0\.0\.1:\d+/via-proxy")
    assert len(mock_server.requests_for("/via-proxy")) == 1
