"""The pytest plugin (`datakit` fixture, pytest11 entry point): workflows run
in process with the real engine against real local servers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import uuid
from importlib.metadata import entry_points

import pytest

from mitmdatakit.errors import ConfigError
from tests.harness import REPO, MockServer, Reply

# Gets a token from a third-party API, sends it upstream, denies requests
# without X-User, and stamps the client response with the upstream status.
AUTH_WORKFLOW = """
match:
  hosts: [api.test]
nodes:
  - name: HAS_USER
    type: jq
    input: request.headers
    jq: 'has("x-user")'
  - name: CHECK
    type: branch
    input: HAS_USER
    then: [TOKEN]
    else: [DENY]
  - name: TOKEN
    type: call
    method: POST
    url: {tokens}/token
    inputs:
      body: CREDS
  - name: CREDS
    type: static
    values: {{client_id: demo}}
  - name: AUTH
    type: jq
    inputs:
      token: TOKEN.body
      user: request.headers.x-user
    jq: '{{authorization: "Bearer \\(.token.access_token)", "x-forwarded-user": .user}}'
    output: service_request.headers
  - name: DENY
    type: exit
    status: 401
    inputs:
      body: DENY_BODY
  - name: DENY_BODY
    type: static
    values: {{message: missing X-User}}
  - name: STAMP
    type: jq
    input: service_response.status
    jq: '{{"x-upstream-status": tostring}}'
    output: response.headers
"""


@pytest.fixture
def tokens():
    with MockServer() as srv:
        srv.route("POST", "/token", lambda req: Reply(json={"access_token": f"tok-for-{req.json()['client_id']}"}))
        yield srv


@pytest.fixture
def upstream():
    with MockServer() as srv:  # unrouted requests: an echo of the request
        srv.route("GET", "/teapot", Reply(status=418, json={"short": "stout"}))
        yield srv


@pytest.fixture
def auth_workflow(tokens):
    return AUTH_WORKFLOW.format(tokens=tokens.url)


def test_the_plugin_is_registered_through_the_pytest11_entry_point(pytestconfig):
    (ep,) = [ep for ep in entry_points(group="pytest11") if ep.name == "datakit"]
    assert ep.value == "mitmdatakit.pytest_plugin"
    assert pytestconfig.pluginmanager.get_plugin("datakit") is not None


def test_proxies_to_a_real_upstream_with_the_token(datakit, auth_workflow, tokens, upstream):
    result = datakit.run(auth_workflow, "GET", "http://api.test/orders?page=2", headers={"X-User": "ada"}, upstream=upstream.url)

    assert not result.failed and not result.exited
    assert result.outcome == "response"
    assert result.workflow == "workflow"
    # the third-party API was really called
    (token_call,) = tokens.requests
    assert token_call.json() == {"client_id": "demo"}
    # what went upstream
    sent = result.service_request
    assert sent.method == "GET"
    assert sent.url == "http://api.test/orders?page=2"
    assert sent.path == "/orders" and sent.query == {"page": "2"}
    assert sent.headers["authorization"] == "Bearer tok-for-demo"
    assert sent.headers["x-forwarded-user"] == "ada"
    # and what the upstream really received
    received = upstream.last_request
    assert received.path == "/orders" and received.query == {"page": ["2"]}
    assert received.header("authorization") == "Bearer tok-for-demo"
    assert received.header("x-user") == "ada"
    # the client response: the upstream's echo, stamped in the response phase
    assert result.response.status == 200
    assert result.response.headers["x-upstream-status"] == "200"
    assert result.response.json()["headers"]["authorization"] == "Bearer tok-for-demo"
    # the trace shows every node, the skipped one too
    statuses = {n["name"]: n["status"] for n in result.trace["nodes"]}
    assert statuses["TOKEN"] == statuses["AUTH"] == statuses["STAMP"] == "NODE_COMPLETE"
    assert statuses["DENY"] == "NODE_SKIPPED"
    assert result.trace["status"] == "PLAN_COMPLETE"


def test_upstream_status_flows_into_the_response_phase(datakit, auth_workflow, upstream):
    result = datakit.run(auth_workflow, "GET", "http://api.test/teapot", headers={"x-user": "ada"}, upstream=upstream)
    assert result.response.status == 418
    assert result.response.headers["x-upstream-status"] == "418"
    assert result.response.json() == {"short": "stout"}


def test_an_exit_answers_without_the_upstream(datakit, auth_workflow, tokens, upstream):
    result = datakit.run(auth_workflow, "GET", "http://api.test/orders", upstream=upstream.url)
    assert result.exited and not result.failed
    assert result.outcome == "exit"
    assert result.service_request is None
    assert result.response.status == 401
    assert result.response.json() == {"message": "missing X-User"}
    assert result.response.body == {"message": "missing X-User"}
    assert tokens.requests == [] and upstream.requests == []


def test_a_failing_call_fails_the_workflow(datakit, auth_workflow, tokens):
    tokens.route("POST", "/token", Reply(status=503, body="down"))
    result = datakit.run(auth_workflow, "GET", "http://api.test/orders", headers={"x-user": "ada"})
    assert result.failed and result.outcome == "failed"
    assert result.failed_node == "TOKEN"
    assert "503" in result.error
    assert result.response.status == 500
    assert result.response.json() == {"message": "An unexpected error occurred", "request_id": result.flow.id}
    assert result.service_request is None
    assert result.trace["status"] == "PLAN_ERROR"


def test_without_upstream_the_run_stops_at_the_service_request(datakit, auth_workflow):
    result = datakit.run(auth_workflow, "POST", "http://api.test/items", headers={"x-user": "bo"}, json={"n": 1})
    assert result.outcome == "service_request"
    assert result.response is None
    assert result.service_request.method == "POST"
    assert result.service_request.json() == {"n": 1}
    assert result.service_request.headers["content-type"] == "application/json"
    assert result.service_request.headers["x-forwarded-user"] == "bo"


def test_a_given_service_response_runs_the_response_phase(datakit, auth_workflow, upstream):
    result = datakit.run(
        auth_workflow, "GET", "http://api.test/x", headers={"x-user": "ada"},
        service_response={"status": 201, "headers": {"x-from": "fake"}, "body": {"made": True}},
    )
    assert result.response.status == 201
    assert result.response.headers["x-upstream-status"] == "201"
    assert result.response.headers["x-from"] == "fake"
    assert result.response.json() == {"made": True}
    assert upstream.requests == []


def test_a_workflow_that_does_not_match_leaves_the_request_alone(datakit, auth_workflow):
    result = datakit.run(auth_workflow, "GET", "http://elsewhere.test/", headers={"x-user": "ada"})
    assert result.workflow is None and result.outcome == "no_workflow"
    assert "authorization" not in result.service_request.headers


async def test_async_tests_await_arun(datakit, auth_workflow, upstream):
    results = await asyncio.gather(*[
        datakit.arun(auth_workflow, "GET", f"http://api.test/n/{i}", headers={"x-user": f"u{i}"}, upstream=upstream.url)
        for i in range(3)
    ])
    assert [r.response.json()["headers"]["x-user"] for r in results] == ["u0", "u1", "u2"]
    with pytest.raises(RuntimeError, match="arun"):
        datakit.run(auth_workflow, "GET", "http://api.test/")


async def test_arun_leaves_the_test_loop_free_for_a_local_api(datakit):
    """An API served on the test's own event loop answers while we await."""
    from aiohttp import web

    async def hello(request):
        return web.json_response({"hello": request.query.get("name")})

    app = web.Application()
    app.router.add_get("/hello", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        wf = {"nodes": [
            {"name": "CALL", "type": "call", "url": f"http://127.0.0.1:{port}/hello", "inputs": {"query": "request.query"}},
            {"name": "EXIT", "type": "exit", "inputs": {"body": "CALL.body"}},
        ]}
        result = await datakit.arun(wf, "GET", "http://x.test/?name=ada")
    finally:
        await runner.cleanup()
    assert result.response.json() == {"hello": "ada"}


def test_a_loaded_workflow_keeps_its_memory_cache_across_runs(datakit, upstream):
    upstream.route("GET", "/count", lambda req: Reply(json={"n": len(upstream.requests)}))
    key = f"counter-{uuid.uuid4()}"  # the memory cache is process-wide
    [wf] = datakit.load(textwrap.dedent(f"""
        resources:
          cache: {{strategy: memory}}
        nodes:
          - {{name: KEY, type: static, values: {{key: {key}}}}}
          - {{name: GET, type: cache, inputs: {{key: KEY.key}}}}
          - {{name: HIT, type: branch, input: GET.hit, then: [CACHED], else: [FETCH, STORE, FRESH]}}
          - {{name: FETCH, type: call, url: "{upstream.url}/count"}}
          - {{name: STORE, type: cache, inputs: {{key: KEY.key, data: FETCH.body}}, ttl: 60}}
          - {{name: FRESH, type: exit, inputs: {{body: FETCH.body}}}}
          - {{name: CACHED, type: exit, status: 203, inputs: {{body: GET.data}}}}
    """))
    first = datakit.run(wf, "GET", "http://c.test/")
    second = datakit.run(wf, "GET", "http://c.test/")
    assert (first.response.status, first.response.json()) == (200, {"n": 1})
    assert (second.response.status, second.response.json()) == (203, {"n": 1})
    assert len(upstream.requests) == 1


def test_the_trace_header_answers_with_the_report_only_in_debug(datakit, auth_workflow, upstream):
    headers = {"x-user": "ada", "X-DataKit-Debug-Trace": "1"}
    plain = datakit.run(auth_workflow, "GET", "http://api.test/", headers=headers, upstream=upstream.url)
    assert plain.response.json()["path"] == "/"  # the echo: the header changed nothing
    debug = datakit.run(auth_workflow, "GET", "http://api.test/", headers=headers, upstream=upstream.url, debug=True)
    report = debug.response.json()
    assert report["status"] == "PLAN_COMPLETE"
    assert {n["name"] for n in report["nodes"]} >= {"TOKEN", "AUTH", "STAMP"}
    assert debug.trace["status"] == "PLAN_COMPLETE"


def test_a_workflow_retargeted_by_property_goes_where_it_says(datakit, upstream):
    with MockServer() as other:
        wf = {"nodes": [
            {"name": "TARGET", "type": "static", "values": {"t": other.authority}},
            {"name": "SET", "type": "property", "property": "kong.service.target", "input": "TARGET.t"},
        ]}
        result = datakit.run(wf, "GET", "http://api.test/moved", upstream=upstream.url)
        assert [r.path for r in other.requests] == ["/moved"]
    assert upstream.requests == []
    assert result.response.status == 200
    assert result.service_request.url == f"http://{other.authority}/moved"


def test_workflows_load_from_paths_and_mappings(datakit, tmp_path):
    doc = {"nodes": [{"name": "EXIT", "type": "exit", "status": 204}]}
    (tmp_path / "wf.json").write_text(__import__("json").dumps(doc))
    assert datakit.run(tmp_path / "wf.json", "GET", "http://a.test/").response.status == 204
    assert datakit.run(str(tmp_path), "GET", "http://a.test/").response.status == 204
    assert datakit.run(doc, "GET", "http://a.test/").response.status == 204
    with pytest.raises(ConfigError, match="unknown node type"):
        datakit.run({"nodes": [{"name": "X", "type": "nope"}]}, "GET", "http://a.test/")


def test_the_mock_api_fixture(datakit, datakit_mock_api):
    api = datakit_mock_api().route("GET", "/users/*", json={"id": 7}, headers={"x-api": "yes"})
    wf = {"nodes": [
        {"name": "USER", "type": "call", "url": f"{api.url}/users/7", "inputs": {"headers": "request.headers"}},
        {"name": "EXIT", "type": "exit", "inputs": {"body": "USER.body", "headers": "USER.headers"}},
    ]}
    result = datakit.run(wf, "GET", "http://a.test/", headers={"x-trace-id": "abc"})
    assert result.response.json() == {"id": 7}
    assert result.response.headers["x-api"] == "yes"
    assert api.requests[0].headers["x-trace-id"] == "abc"
    echo = datakit_mock_api()
    result = datakit.run({"nodes": [{"name": "E", "type": "call", "url": f"{echo.url}/p?q=1"},
                                    {"name": "X", "type": "exit", "inputs": {"body": "E.body"}}]}, "GET", "http://a.test/")
    assert result.response.json()["path"] == "/p" and result.response.json()["query"] == {"q": "1"}


def test_the_shipped_example_test_file_passes():
    """examples/test_example_workflow.py, as a user runs it: no conftest,
    the fixtures come from the entry point."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "examples/test_example_workflow.py"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " passed" in proc.stdout and "failed" not in proc.stdout


def test_debug_gives_the_detailed_error_body(datakit, auth_workflow, tokens):
    tokens.route("POST", "/token", Reply(status=503, body="down"))
    result = datakit.run(auth_workflow, "GET", "http://api.test/", headers={"x-user": "ada"}, debug=True)
    body = result.response.json()
    assert body["message"] == "node execution error"
    assert body["node"] == {"index": 3, "name": "TOKEN", "type": "call"}
    assert "503" in body["error"]


USER_ASYNC_TESTS = '''
import pytest

WORKFLOW = {"nodes": [{"name": "EXIT", "type": "exit", "status": 203}]}


def test_sync(datakit):
    assert datakit.run(WORKFLOW, "GET", "http://a.test/").response.status == 203


@pytest.mark.MARK
async def test_async(datakit):
    assert (await datakit.arun(WORKFLOW, "GET", "http://a.test/")).response.status == 203
'''


@pytest.mark.parametrize(("mark", "plugins"), [
    ("anyio", ["-p", "no:asyncio"]),  # a project without pytest-asyncio: anyio's plugin comes with httpx/anyio
    ("asyncio", []),                  # pytest-asyncio in its default (strict) mode
])
def test_async_user_tests_need_one_documented_plugin(tmp_path, mark, plugins):
    """As docs/testing.md says: sync tests need nothing; `async def` tests
    need an async plugin's mark, anyio's or pytest-asyncio's."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not this repo's asyncio_mode=auto
    (tmp_path / "test_user.py").write_text(USER_ASYNC_TESTS.replace("MARK", mark))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugins, "test_user.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout
