"""Kong conformance of app/gateway/datakit-flow-editor.md ("Datakit flow
editor"): the editor is a Konnect UI; what the page says about the config it
edits is checked here through a real mitmdump (see `_support`).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conformance._support import config_error, serve, workflow, write_workflows
from tests.harness import Mitmdump, MockServer, RecordedRequest, Reply


def echo(req: RecordedRequest) -> Reply:
    return Reply(json={"path": req.path, "body": req.body.decode()})


@pytest.fixture(scope="module")
def api() -> Iterator[MockServer]:
    with MockServer() as server:
        server.route("*", "/*", echo)
        yield server


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, mitm_confdir, api: MockServer) -> Iterator[Mitmdump]:
    w = workflow
    docs = {
        # the FAQ's call node "in the response section"
        "response-call": w("response-call", [
            {"name": "CALL", "type": "call", "url": f"{api.url}/audit", "method": "POST",
             "inputs": {"body": "service_response.body"}},
            {"name": "OUT", "type": "jq", "input": "CALL.body", "jq": "{audited: .path}", "output": "response.body"}]),
        # one output, many inputs
        "fan-out": w("fan-out", [
            {"name": "V", "type": "static", "values": {"n": 2}},
            {"name": "A", "type": "jq", "input": "V", "jq": ".n + 1"},
            {"name": "B", "type": "jq", "input": "V", "jq": ".n * 10"},
            {"name": "J", "type": "jq", "inputs": {"a": "A", "b": "B", "v": "V.n"}, "jq": "."},
            {"name": "EXIT", "type": "exit", "inputs": {"body": "J"}}]),
        # no implicit node connected at all
        "standalone": w("standalone", [
            {"name": "V", "type": "static", "values": {"alone": True}},
            {"name": "EXIT", "type": "exit", "status": 202, "inputs": {"body": "V"}}]),
    }
    yield from serve(write_workflows(tmp_path_factory.mktemp("flow-editor-conformance"), docs), mitm_confdir)


@pytest.fixture
def c(proxy: Mitmdump) -> Iterator[httpx.Client]:
    with proxy.client() as client:
        yield client


def test_call_node_in_the_response_section(c, api):
    """app/gateway/datakit-flow-editor.md FAQ: a `call` node fed by the
    service response runs (3.13+), no "circular dependency" error."""
    r = c.get(f"{api.url}/response-call/x")
    assert (r.status_code, r.json()) == (200, {"audited": "/audit"})
    (sent,) = api.requests_for("/audit")[-1:]
    assert httpx.Response(200, content=sent.body).json() == {"path": "/response-call/x", "body": ""}


def test_one_output_feeds_many_inputs(c, api):
    """app/gateway/datakit-flow-editor.md "Notes": "one output can accept many inputs"."""
    assert c.get(f"{api.url}/fan-out/x").json() == {"a": 3, "b": 20, "v": 2}


def test_nodes_need_not_touch_the_implicit_nodes(c, api):
    """app/gateway/datakit-flow-editor.md "Notes": "Your nodes don't have to
    connect to the prepopulated request/service request or response/service
    response nodes"."""
    r = c.get(f"{api.url}/standalone/x")
    assert (r.status_code, r.json()) == (202, {"alone": True})
    assert not api.requests_for("/standalone/x")


@pytest.mark.parametrize("nodes", [
    # EXIT.body from V (EXIT's input) and from W (W's output)
    [{"name": "V", "type": "static", "values": {"a": 1}},
     {"name": "W", "type": "static", "values": {"b": 2}, "output": "EXIT.body"},
     {"name": "EXIT", "type": "exit", "inputs": {"body": "V"}}],
    # two nodes writing the same input
    [{"name": "V", "type": "static", "values": {"a": 1}, "output": "EXIT.body"},
     {"name": "W", "type": "static", "values": {"b": 2}, "output": "EXIT.body"},
     {"name": "EXIT", "type": "exit"}],
])
def test_an_input_connects_to_only_one_output(tmp_path, nodes):
    """app/gateway/datakit-flow-editor.md "Notes": "Each input can connect to
    only one output": a second connection to the same input is refused."""
    output = config_error(tmp_path, {"nodes": nodes})
    assert "EXIT" in output
