"""The engine inside a real mitmdump: concurrency, phases, failures, traces,
reloads and proxy modes (docs/nodes.md#phases-and-execution, README.md#debugging, README.md#running)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.harness import REPO, Mitmdump, MockServer, Reply, ssl_context


def write(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def calls(url: str, n: int) -> list[dict]:
    return [{"name": f"CALL{i}", "type": "call", "url": f"{url}/slow/{i}"} for i in range(n)]


def test_shipped_workflows_answer_the_readme_request(start_mitmdump):
    """`uv run mitmdump -s addon/datakit.py` serves `workflows/` by default."""
    mitm = start_mitmdump(None)
    assert str(REPO / "workflows") in mitm.log_text()
    with mitm.client() as c:
        r = c.get("http://datakit.local/hello?name=you")
    assert r.status_code == 200
    assert r.json()["message"] == "Hello, you!"


def test_independent_calls_run_concurrently(tmp_path, mock_server: MockServer, start_mitmdump):
    mock_server.route("GET", "/slow/*", Reply(json={"ok": 1}, delay=0.4))
    nodes = [
        *calls(mock_server.url, 4),
        {"name": "JOIN", "type": "jq", "inputs": {f"c{i}": f"CALL{i}.body" for i in range(4)}, "jq": "[.[] | .ok] | add"},
        {"name": "EXIT", "type": "exit", "inputs": {"body": "JOIN"}},
    ]
    mitm = start_mitmdump(write(tmp_path / "wf.yaml", {"nodes": nodes}))
    with mitm.client() as c:
        c.get("http://warm.test/")  # first flow pays for connection setup
        started = time.perf_counter()
        r = c.get("http://api.test/")
        elapsed = time.perf_counter() - started
    assert r.json() == 4
    assert elapsed < 0.75, f"4 x 400 ms calls took {elapsed:.2f} s"


def test_a_slow_workflow_does_not_delay_other_flows(tmp_path, mock_server: MockServer, start_mitmdump):
    mock_server.route("GET", "/slow/*", Reply(json={}, delay=1.5))
    doc = {
        "match": {"paths": ["/slow"]},
        "nodes": [*calls(mock_server.url, 1), {"name": "EXIT", "type": "exit", "inputs": {"body": "CALL0.body"}}],
    }
    fast = {"nodes": [{"name": "EXIT", "type": "exit", "status": 203}]}
    d = tmp_path / "wfs"
    d.mkdir()
    write(d / "a-slow.yaml", doc)
    write(d / "b-fast.yaml", fast)
    mitm = start_mitmdump(d)

    async def scenario():
        async with mitm.async_client() as c:
            slow = asyncio.ensure_future(c.get("http://api.test/slow"))
            await asyncio.sleep(0.2)
            started = time.perf_counter()
            r = await c.get("http://api.test/fast")
            fast_elapsed = time.perf_counter() - started
            assert (await slow).status_code == 200
            return r, fast_elapsed

    r, fast_elapsed = asyncio.run(scenario())
    assert r.status_code == 203
    assert fast_elapsed < 0.5, fast_elapsed


def failing_workflow(url: str, debug: bool) -> dict:
    return {
        "debug": debug,
        "nodes": [
            {"name": "SLOW", "type": "call", "url": f"{url}/slow/3"},
            {"name": "BROKEN", "type": "call", "url": f"{url}/missing"},
            {"name": "EXIT", "type": "exit", "inputs": {"body": "SLOW.body"}},
        ],
    }


@pytest.mark.parametrize("debug", [False, True])
def test_a_failing_node_cancels_the_others_and_answers_500(tmp_path, mock_server: MockServer, start_mitmdump, debug):
    mock_server.route("GET", "/slow/*", Reply(json={}, delay=3))
    mock_server.route("GET", "/missing", Reply(status=404, json={"error": "nope"}))
    mitm = start_mitmdump(write(tmp_path / "wf.yaml", failing_workflow(mock_server.url, debug)))
    with mitm.client() as c:
        started = time.perf_counter()
        r = c.get("http://api.test/")
        elapsed = time.perf_counter() - started
        assert elapsed < 1.5, f"the client waited {elapsed:.2f} s for a cancelled call"
        assert r.status_code == 500
        body = r.json()
        request_id = body["request_id"]
        assert isinstance(request_id, str) and request_id
        if debug:
            assert body == {
                "message": "node execution error",
                "request_id": request_id,
                "error": body["error"],
                "node": {"index": 2, "name": "BROKEN", "type": "call"},
            }
            assert "404" in body["error"]
        else:
            assert body == {"message": "An unexpected error occurred", "request_id": request_id}
        # the proxy keeps serving
        assert c.get("http://api.test/").status_code == 500
    log = mitm.wait_for_log(r"BROKEN.*404")
    assert log
    assert request_id in mitm.log_text()


def test_response_phase_transforms_the_upstreams_answer(tmp_path, mock_server: MockServer, start_mitmdump):
    mock_server.route("GET", "/items", Reply(json={"items": [1, 2, 3]}, headers={"X-Upstream": "1"}))
    doc = {
        "nodes": [
            {"name": "PRE", "type": "static", "values": {"x-before": "set-before-proxying"}, "output": "response.headers"},
            {"name": "COUNT", "type": "jq", "inputs": {"body": "service_response.body", "status": "service_response.status"},
             "jq": "{count: (.body.items | length), upstream_status: .status}", "output": "response.body"},
            {"name": "TAG", "type": "jq", "input": "request.headers", "jq": "{\"x-upstream-seen\": \"yes\"}",
             "output": "service_request.headers"},
        ]
    }
    mitm = start_mitmdump(write(tmp_path / "wf.yaml", doc), mode=f"reverse:{mock_server.url}")
    r = httpx.get(f"{mitm.url}/items", trust_env=False)
    assert r.status_code == 200
    assert r.json() == {"count": 3, "upstream_status": 200}
    assert r.headers["x-before"] == "set-before-proxying"
    assert r.headers["x-upstream"] == "1"
    assert int(r.headers["content-length"]) == len(r.content)
    assert mock_server.requests[0].header("x-upstream-seen") == "yes"


def test_exit_in_response_phase_replaces_upstream_answer(tmp_path, mock_server: MockServer, start_mitmdump):
    mock_server.route("GET", "/", Reply(status=200, body="original"))
    doc = {"nodes": [
        {"name": "CHECK", "type": "jq", "input": "service_response.status", "jq": "{code: .}"},
        {"name": "EXIT", "type": "exit", "status": 418, "inputs": {"body": "CHECK"}},
    ]}
    mitm = start_mitmdump(write(tmp_path / "wf.yaml", doc), mode=f"reverse:{mock_server.url}")
    r = httpx.get(f"{mitm.url}/", trust_env=False)
    assert r.status_code == 418
    assert r.json() == {"code": 200}


def test_exit_before_proxying_never_contacts_the_upstream(tmp_path, mock_server: MockServer, start_mitmdump):
    doc = {"nodes": [
        {"name": "EXIT", "type": "exit", "status": 401, "inputs": {"body": "MSG"}},
        {"name": "MSG", "type": "static", "values": {"error": "no"}},
        {"name": "AFTER", "type": "jq", "input": "service_response.body", "jq": ".", "output": "response.body"},
    ]}
    mitm = start_mitmdump(write(tmp_path / "wf.yaml", doc), mode=f"reverse:{mock_server.url}")
    r = httpx.get(f"{mitm.url}/", trust_env=False)
    assert r.status_code == 401
    assert r.json() == {"error": {"error": "no"}} or r.json() == {"error": "no"}
    assert mock_server.requests == []


def test_service_request_body_query_and_headers(tmp_path, mock_server: MockServer, start_mitmdump):
    doc = {"nodes": [
        {"name": "BODY", "type": "jq", "input": "request.body", "jq": "{wrapped: ., n: 1}", "output": "service_request.body"},
        {"name": "QUERY", "type": "jq", "input": "request.query", "jq": ". + {added: \"1\", flag: null}", "output": "service_request.query"},
        {"name": "HEADERS", "type": "static", "values": {"X-Removed": None, "X-New": ["a", "b"]}, "output": "service_request.headers"},
    ]}
    mitm = start_mitmdump(write(tmp_path / "wf.yaml", doc))
    with mitm.client() as c:
        r = c.post(f"{mock_server.url}/submit?keep=yes", content=b"plain text", headers={"X-Removed": "1", "Content-Type": "text/plain"})
    assert r.status_code == 200
    (got,) = mock_server.requests
    assert got.json() == {"wrapped": "plain text", "n": 1}
    # a non-string body is JSON and says so (no headers input sets a type)
    assert got.header("content-type") == "application/json"
    assert got.raw_query == "keep=yes&added=1&flag"
    assert got.header("x-removed") is None
    assert got.headers.get_all("x-new") == ["a", "b"]
    assert int(got.header("content-length")) == len(got.body)


def test_json_body_written_without_content_type_gets_application_json(tmp_path, mock_server, start_mitmdump):
    doc = {"nodes": [{"name": "BODY", "type": "static", "values": {"b": {"a": 1}}, "outputs": {"b": "service_request.body"}}]}
    mitm = start_mitmdump(write(tmp_path / "wf.yaml", doc))
    with mitm.client() as c:
        c.post(f"{mock_server.url}/x", content=b"orig")
    (got,) = mock_server.requests
    assert got.header("content-type") == "application/json"
    assert got.json() == {"a": 1}


def trace_doc(debug: bool) -> dict:
    return {"debug": debug, "nodes": [
        {"name": "J", "type": "jq", "input": "request.query", "jq": "{q: .q}"},
        {"name": "EXIT", "type": "exit", "inputs": {"body": "J"}},
    ]}


@pytest.mark.parametrize(
    "debug,option,header,traced",
    [
        (True, False, "1", True),
        (True, False, "yes", True),
        (True, False, "0", False),
        (True, False, "FALSE", False),
        (True, False, "Off", False),
        (False, False, "1", False),
        (False, True, "1", True),
    ],
)
def test_debug_trace_header(tmp_path, start_mitmdump, debug, option, header, traced):
    flows = tmp_path / "flows.mitm"
    mitm = start_mitmdump(
        write(tmp_path / "wf.yaml", trace_doc(debug)),
        options={"datakit_debug": option, "save_stream_file": str(flows)},
    )
    with mitm.client() as c:
        r = c.get("http://api.test/?q=1", headers={"X-DataKit-Debug-Trace": header})
    assert r.status_code == 200
    body = r.json()
    if not traced:
        assert body == {"q": "1"}
        return
    assert body["status"] == "PLAN_COMPLETE"
    assert {n["name"]: n["status"] for n in body["nodes"]} == {"J": "NODE_COMPLETE", "EXIT": "NODE_COMPLETE", "request": "NODE_COMPLETE"}
    actions = [(e["name"], e["action"]) for e in body["events"]]
    assert ("J", "run") in actions and ("J", "complete") in actions and ("EXIT", "complete") in actions
    complete = next(e for e in body["events"] if e["name"] == "J" and e["action"] == "complete")
    assert complete["values"] == [{"key": "$self", "type": "any", "value": {"q": "1"}}]  # the port's type, as Kong shows it
    assert body["started_at"] <= body["ended_at"] and body["duration"] >= 0
    mitm.stop()
    from mitmproxy import io

    with open(flows, "rb") as f:
        (flow,) = list(io.FlowReader(f).stream())
    assert flow.metadata["datakit"]["trace"]["status"] == "PLAN_COMPLETE"


def test_trace_is_attached_to_saved_flows_without_altering_the_response(tmp_path, start_mitmdump):
    flows = tmp_path / "flows.mitm"
    mitm = start_mitmdump(write(tmp_path / "wf.yaml", trace_doc(True)), options={"save_stream_file": str(flows)})
    with mitm.client() as c:
        r = c.get("http://api.test/?q=2")
    assert r.json() == {"q": "2"}
    mitm.stop()
    from mitmproxy import io

    with open(flows, "rb") as f:
        (flow,) = list(io.FlowReader(f).stream())
    trace = flow.metadata["datakit"]["trace"]
    assert trace["status"] == "PLAN_COMPLETE"
    assert [n["name"] for n in trace["nodes"]] == ["J", "EXIT", "request"]  # Kong lists the implicit nodes too
    assert "PLAN_COMPLETE" in flow.comment


def test_trace_of_a_failed_plan(tmp_path, mock_server, start_mitmdump):
    mock_server.route("GET", "/slow/*", Reply(json={}, delay=2))
    mock_server.route("GET", "/missing", Reply(status=500))
    mitm = start_mitmdump(write(tmp_path / "wf.yaml", failing_workflow(mock_server.url, True)))
    with mitm.client() as c:
        r = c.get("http://api.test/", headers={"X-DataKit-Debug-Trace": "true"})
    body = r.json()
    assert body["status"] == "PLAN_ERROR"
    statuses = {n["name"]: n["status"] for n in body["nodes"]}
    assert statuses == {"SLOW": "NODE_CANCELED", "BROKEN": "NODE_ERROR", "EXIT": "NODE_CANCELED"}
    assert "500" in next(n for n in body["nodes"] if n["name"] == "BROKEN")["error"]
    assert ("SLOW", "cancel") in [(e["name"], e["action"]) for e in body["events"]]


def test_invalid_config_at_start_exits_with_the_message(tmp_path, mitm_confdir):
    bad = write(tmp_path / "bad.yaml", {"nodes": [{"name": "J", "type": "jq", "jq": ".[[["}]})
    code, output = Mitmdump.run_and_expect_exit(bad, confdir=mitm_confdir, timeout=30)
    assert code != 0
    assert "bad.yaml" in output and "node #1 'J' (jq)" in output and "field 'jq'" in output and "jq syntax error" in output


def test_reload_on_save_and_bad_reload_keeps_serving(tmp_path, start_mitmdump):
    path = write(tmp_path / "wf.yaml", {"nodes": [{"name": "EXIT", "type": "exit", "status": 201}]})
    mitm = start_mitmdump(path)
    with mitm.client() as c:
        assert c.get("http://api.test/").status_code == 201
        offset = mitm.log_offset()
        write(path, {"nodes": [{"name": "EXIT", "type": "exit", "status": 202}]})
        mitm.wait_for_log(r"loaded 1 workflow", timeout=10, since=offset)
        assert c.get("http://api.test/").status_code == 202
        offset = mitm.log_offset()
        write(path, {"nodes": [{"name": "EXIT", "type": "exit", "status": 202, "bogus": 1}]})
        mitm.wait_for_log(r"reload failed, still serving.*field 'bogus'", timeout=10, since=offset)
        assert c.get("http://api.test/").status_code == 202
        assert mitm.is_running


def test_https_through_mitmproxy_ca_and_http2(tmp_path, make_mock_server, start_mitmdump):
    upstream = make_mock_server(tls=True)
    doc = {"nodes": [{"name": "H", "type": "static", "values": {"x-datakit": "on"}, "output": "service_request.headers"}]}
    mitm = start_mitmdump(write(tmp_path / "wf.yaml", doc), options={"ssl_insecure": True})
    with httpx.Client(proxy=mitm.proxy_url, verify=ssl_context(mitm.ca_cert_path), trust_env=False) as c:
        r = c.get(f"{upstream.url}/secure")
    assert r.status_code == 200
    assert upstream.requests[0].header("x-datakit") == "on"


def test_http2_client_in_reverse_mode(tmp_path, mock_server, start_mitmdump):
    doc = {"nodes": [
        {"name": "H", "type": "static", "values": {"x-datakit": "h2"}, "output": "service_request.headers"},
        {"name": "V", "type": "jq", "input": "request.version", "jq": "{\"x-client-version\": (. | tostring)}", "output": "response.headers"},
    ]}
    # lazy: mitmproxy does not learn the (h1-only) upstream's ALPN first, so it offers h2
    mitm = start_mitmdump(write(tmp_path / "wf.yaml", doc), mode=f"reverse:{mock_server.url}", options={"connection_strategy": "lazy"})
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is needed for an HTTP/2 client")
    out = subprocess.run(
        [curl, "-s", "--http2", "--cacert", str(mitm.ca_cert_path), "-D", "-", "-o", "/dev/null",
         "-w", "%{http_version}", f"https://127.0.0.1:{mitm.port}/h2"],
        capture_output=True, text=True, timeout=20, check=True,
    ).stdout
    assert out.startswith("HTTP/2 200")
    assert "x-client-version: 2" in out
    assert out.endswith("2")
    assert mock_server.requests[0].header("x-datakit") == "h2"


def test_upstream_proxy_mode(tmp_path, make_mock_server, start_mitmdump, mitm_confdir):
    upstream = make_mock_server()
    outer_doc = {"nodes": [{"name": "H", "type": "static", "values": {"x-hop": "datakit"}, "output": "service_request.headers"}]}
    inner = start_mitmdump(None, script=None)
    mitm = start_mitmdump(write(tmp_path / "wf.yaml", outer_doc), mode=f"upstream:{inner.proxy_url}")
    with mitm.client() as c:
        assert c.get(f"{upstream.url}/via").status_code == 200
    assert upstream.requests[0].header("x-hop") == "datakit"
