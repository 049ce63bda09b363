"""Datakit inside mitmproxy's own tools, through a real mitmweb (and a real
mitmdump for saved flows): every run's summary on the flow, the `Datakit`
contentview over mitmweb's REST API, the failure marker and comment, the
`datakit.*` commands from mitmweb's command endpoint, and what breaks them:
flows no workflow ran on, huge traced values, an invalid reload, a flow
filter that names no flow or several.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.harness import Mitmdump, MockServer, Reply
from tests.harness.mitmweb import Mitmweb, WebApi
from tests.reliability._support import GENERIC_MESSAGE, write_workflows

HUGE = 1_000_000


def workflows(mock: MockServer) -> dict[str, dict]:
    return {
        "failing": {"match": {"paths": ["/fail"]}, "nodes": [
            {"name": "PREP", "type": "static", "values": {"q": 1}},
            {"name": "CALL", "type": "call", "method": "POST", "url": mock.url_for("/broken"), "inputs": {"body": "PREP"}},
            {"name": "REPLY", "type": "exit", "inputs": {"body": "CALL.body"}},
        ]},
        "passing": {"match": {"paths": ["/ok"]}, "nodes": [
            {"name": "GREETING", "type": "static", "values": {"hello": "world"}},
            {"name": "REPLY", "type": "exit", "inputs": {"body": "GREETING"}},
        ]},
        "traced": {"match": {"paths": ["/traced"]}, "debug": True, "nodes": [
            {"name": "ECHO", "type": "jq", "input": "request.body", "jq": ".v"},
            {"name": "REPLY", "type": "exit", "inputs": {"body": "ECHO"}},
        ]},
    }


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServer]:
    with MockServer() as srv:
        srv.route("POST", "/broken", Reply(status=500, json={"upstream": "down"}))
        srv.route("GET", "/plain", Reply(json={"plain": True}))
        yield srv


@pytest.fixture(scope="module")
def config(tmp_path_factory, mock) -> Path:
    return write_workflows(tmp_path_factory.mktemp("view") / "workflows", workflows(mock))


@pytest.fixture(scope="module")
def web(config) -> Iterator[Mitmweb]:
    with Mitmweb(config, quiet=True) as w:
        yield w


@pytest.fixture(scope="module")
def api(web) -> Iterator[WebApi]:
    with web.api() as a:
        yield a


def send(web: Mitmweb, path: str, **kw) -> httpx.Response:
    with web.client() as c:
        return c.get(f"http://api.test{path}", **kw)


def flow_for(api: WebApi, path: str) -> dict:
    (flow,) = [f for f in api.flows() if f["type"] == "http" and f["request"]["path"] == path]
    return flow


def row(text: str, node: str) -> str:
    return next(line for line in text.splitlines() if line.strip().startswith(node + " "))


def test_failed_run_is_marked_and_shown(web, api):
    r = send(web, "/fail/one")
    assert r.status_code == 500 and r.json()["message"] == GENERIC_MESSAGE
    flow = flow_for(api, "/fail/one")
    assert flow["marked"] == "❌"  # mitmweb sends the emoji of the `:x:` marker
    assert flow["comment"].startswith("datakit: 00-failing failed at node CALL (call): ")
    shown = api.content(flow["id"], "response", "datakit")
    assert shown["view_name"] == "Datakit"
    text = shown["text"]
    assert "workflow    00-failing" in text and "status      PLAN_ERROR" in text
    assert "failed at   node CALL (call" in text
    assert "NODE_COMPLETE" in row(text, "PREP") and "█" in row(text, "PREP")
    assert "NODE_ERROR" in row(text, "CALL") and "█" in row(text, "CALL")
    assert "NODE_CANCELED" in row(text, "REPLY")
    assert "values: shown for debug runs" in text
    # the failed run's response opens on the Datakit view by itself
    assert api.content(flow["id"], "response", "auto")["view_name"] == "Datakit"


def test_passing_run_keeps_the_body_as_the_default_view(web, api):
    r = send(web, "/ok")
    assert r.json() == {"hello": "world"}
    flow = flow_for(api, "/ok")
    assert flow["marked"] == ""
    assert flow["comment"].startswith("datakit: 01-passing PLAN_COMPLETE in ")
    assert api.content(flow["id"], "response", "auto")["view_name"] == "JSON"
    text = api.content(flow["id"], "response", "datakit")["text"]
    assert "status      PLAN_COMPLETE" in text and "NODE_COMPLETE" in row(text, "GREETING")
    assert "world" not in text  # no values without debug
    assert "workflow    01-passing" in api.content(flow["id"], "request", "datakit")["text"]


def test_traced_values_are_shown_and_cut(web, api):
    with web.client() as c:
        assert c.post("http://api.test/traced/short", json={"v": "short-value"}).text == "short-value"
        assert c.post("http://api.test/traced/huge", json={"v": "x" * HUGE}).status_code == 200
    text = api.content(flow_for(api, "/traced/short")["id"], "response", "datakit")["text"]
    assert "out    $self = short-value" in text
    text = api.content(flow_for(api, "/traced/huge")["id"], "response", "datakit")["text"]
    assert "characters)" in text
    assert len(text) < 5_000  # a 1 MB value does not flood the view


def test_flows_without_a_run_say_so(web, api, mock):
    with web.client() as c:
        r = c.get(mock.url_for("/plain"))
    assert r.json() == {"plain": True}
    flow = flow_for(api, "/plain")
    assert flow["marked"] == "" and flow["comment"] == ""
    assert api.content(flow["id"], "response", "auto")["view_name"] == "JSON"
    shown = api.content(flow["id"], "response", "datakit")
    assert shown["text"].strip() == "No Datakit workflow ran on this flow."


def test_graph_and_summary_commands(web, api):
    send(web, "/fail/graph")
    graph = api.command("datakit.graph", "~u /fail/graph")
    assert graph["value"].startswith("%% Datakit workflow 00-failing") and "CALL" in graph["value"]
    summary = api.command("datakit.summary", "~u /fail/graph")
    assert "failed at   node CALL" in summary["value"]
    assert "error" in api.command("datakit.graph", "~u /no-such-flow")
    assert "No Datakit workflow" in api.command("datakit.graph", "~u /plain")["error"]


def test_reload_command_and_a_broken_reload(web, api, config):
    assert api.command("datakit.reload")["value"].startswith("Datakit: loaded 3 workflow(s) from ")
    bad = config / "99-bad.yaml"
    bad.write_text(yaml.safe_dump({"nodes": [{"name": "X", "type": "no-such-type"}]}))
    try:
        answer = api.command("datakit.reload")
        assert "reload failed, still serving the previous workflows" in answer["error"]
        assert "no-such-type" in answer["error"]
        assert send(web, "/ok").json() == {"hello": "world"}  # the previous workflows serve
    finally:
        bad.unlink()
    assert "value" in api.command("datakit.reload")
    assert web.is_running()


def test_summary_survives_saved_flows(tmp_path, config):
    from mitmproxy import io as mio
    from mitmproxy.contentviews import prettify_message
    from mitmproxy.test import taddons

    from mitmdatakit.commands import register_view

    saved = tmp_path / "flows.mitm"
    with Mitmdump(config, quiet=True, options={"save_stream_file": str(saved)}) as mitm, mitm.client() as c:
        assert c.get("http://api.test/fail/saved").status_code == 500
    with open(saved, "rb") as f:
        (flow,) = list(mio.FlowReader(f).stream())
    json.dumps(flow.metadata["datakit"])
    assert flow.metadata["datakit"]["status"] == "PLAN_ERROR"
    assert flow.marked == ":x:"
    register_view()
    with taddons.context():  # contentviews read mitmproxy's options
        text = prettify_message(flow.response, flow, view_name="Datakit").text
    assert "failed at   node CALL" in text and "NODE_ERROR" in row(text, "CALL")

