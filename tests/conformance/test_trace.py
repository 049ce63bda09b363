"""Kong conformance of the debug trace and debug error bodies, through one
real mitmdump serving a directory of workflows (see `_support`).

Sources in Kong/developer.konghq.com: INDEX ("Debugging", "Making node
execution errors visible", "Execution debug tracing": the whole example
report), CHANGELOG (3.15.0.0 "local debug trace responses using the same
tracing event model with inline values"; 3.15.0.2 "node source and runtime
phase metadata"), and app/observability/datakit-debugger.md ("Actions":
run = inputs, complete/fail = outputs, resume = call nodes only).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conformance._support import CHANGELOG, INDEX, TRACE, serve, workflow, write_workflows
from tests.harness import Mitmdump, MockServer
from tests.harness.mock_server import Reply

DEBUGGER = "app/observability/datakit-debugger.md"
SECRET = "s3cr3t-" + "7" * 24
FORBIDDEN = {"status": 403, "reason": "denied"}


def workflows(api: str) -> dict[str, dict[str, Any]]:
    return {
        # INDEX, "Execution debug tracing": API fails with 403 while SLOW_API
        # runs; FILTER waits for both. The calls take the request's
        # body, headers and query (the example's run values).
        "kong-example": workflow("kong-example", [
            {"name": "API", "type": "call", "url": f"{api}/status/403", "input": "request"},
            {"name": "SLOW_API", "type": "call", "url": f"{api}/slow", "input": "request"},
            {"name": "FILTER", "type": "jq", "inputs": {"a": "API.body", "b": "SLOW_API.body"}, "jq": "."},
        ], debug=True),
        "no-debug": workflow("no-debug", [
            {"name": "API", "type": "call", "url": f"{api}/status/403"},
        ]),
        # the upstream answers; `response` gets a header
        "complete": workflow("complete", [
            {"name": "CALL", "type": "call", "url": f"{api}/json"},
            {"name": "PICK", "type": "jq", "input": "CALL.body", "jq": ".author"},
            {"name": "HEADERS", "type": "jq", "inputs": {"author": "PICK"}, "jq": '{"x-author": .author}',
             "output": "response.headers"},
        ], debug=True),
        "after": workflow("after", [
            {"name": "STATUS", "type": "jq", "input": "service_response.status", "jq": ". + 1"},
        ], debug=True),
        "branch": workflow("branch", [
            {"name": "COND", "type": "jq", "input": "request.query", "jq": '.go == "yes"'},
            {"name": "BR", "type": "branch", "input": "COND", "then": ["YES"], "else": ["NO"]},
            {"name": "YES", "type": "static", "values": {"r": "then"}},
            {"name": "NO", "type": "static", "values": {"r": "else"}},
        ], debug=True),
        "secret": workflow("secret", [
            {"name": "AUTH", "type": "call", "url": f"{api}/json", "inputs": {"headers.x-token": "vault.token"}},
        ], debug=True, resources={"vault": {"token": "{vault://env/DK_TRACE_SECRET}"}}),
    }


@pytest.fixture(scope="module")
def api() -> Iterator[MockServer]:
    with MockServer() as server:
        server.route("*", "/*", Reply(json={"upstream": True}))  # the upstream (later routes win)
        server.route("GET", "/status/403", Reply(status=403, json=FORBIDDEN, headers={"X-Powered-By": "mock_upstream"}))
        server.route("GET", "/slow", Reply(json={}, delay=3))
        server.route("GET", "/json", Reply(json={"slideshow": {"author": "Yours Truly"}, "author": "Yours Truly"}))
        yield server


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, mitm_confdir, api: MockServer) -> Iterator[Mitmdump]:
    directory = write_workflows(tmp_path_factory.mktemp("trace-conformance"), workflows(api.url))
    yield from serve(directory, mitm_confdir, env={"DK_TRACE_SECRET": SECRET})


@pytest.fixture
def c(proxy: Mitmdump) -> Iterator[httpx.Client]:
    with proxy.client() as client:
        yield client


@pytest.fixture(scope="module")
def example(proxy: Mitmdump, api: MockServer) -> dict[str, Any]:
    """Kong's example report, reproduced: GET with `?b=123&a=true`."""
    with proxy.client() as client:
        started = time.monotonic()
        r = client.get(f"{api.url}/kong-example/x?b=123&a=true", headers=TRACE)
        took = time.monotonic() - started
    assert r.status_code == 500  # the report replaces the body, the status stays
    assert took < 2.5, "the failure must cancel SLOW_API (3 s)"
    return r.json()


def events(report: dict[str, Any], name: str, action: str | None = None) -> list[dict[str, Any]]:
    return [e for e in report["events"] if e["name"] == name and (action is None or e["action"] == action)]


def values(event: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["key"]: v for v in event["values"] if "key" in v}


# -- Kong's example report ---------------------------------------------------


def test_example_plan_status_and_times(example):
    """INDEX "Execution debug tracing": PLAN_ERROR, started_at <= ended_at, duration."""
    assert example["status"] == "PLAN_ERROR"
    assert example["started_at"] <= example["ended_at"]
    assert 0 <= example["duration"] <= example["ended_at"] - example["started_at"] + 0.001


def test_example_node_list_includes_request(example):
    """INDEX example `nodes`: the declared nodes in order, then `request` NODE_COMPLETE."""
    assert example["nodes"] == [
        {"name": "API", "type": "call", "status": "NODE_ERROR", "error": "non-2XX response code: 403"},
        {"name": "SLOW_API", "type": "call", "status": "NODE_CANCELED"},
        {"name": "FILTER", "type": "jq", "status": "NODE_CANCELED"},
        {"name": "request", "type": "request", "status": "NODE_COMPLETE"},
    ]


def test_example_request_node_events(example):
    """INDEX example: `request` runs with `values: []`, completes with its
    connected outputs typed; the GET's null body has no `value`; the query
    is inline (`{"b": "123", "a": "true"}`)."""
    run, complete = events(example, "request")
    assert (run["action"], run["values"]) == ("run", [])
    assert complete["action"] == "complete"
    out = values(complete)
    assert set(out) == {"headers", "body", "query"}
    assert out["query"] == {"key": "query", "type": "map", "value": {"b": "123", "a": "true"}}
    assert out["body"] == {"key": "body", "type": "any"}
    assert out["headers"]["type"] == "map"


def test_example_call_runs_twice(example):
    """INDEX example: a call node's first `run` shows its inputs, a second
    `run` without values follows when the request is dispatched
    (DEBUGGER: run maps to input values)."""
    for name in ("API", "SLOW_API"):
        first, second = events(example, name, "run")
        inputs = values(first)
        assert set(inputs) == {"headers", "body", "query"}
        assert inputs["headers"]["type"] == "map"
        assert inputs["body"] == {"key": "body", "type": "any", "source": "request.body"}
        assert inputs["query"]["type"] == "map" and inputs["query"]["value"] == {"b": "123", "a": "true"}
        assert "values" not in second and second["at"] >= first["at"]


def test_example_resume_carries_a_duration(example):
    """INDEX example: `resume` of the async API node, with `duration`, and no values."""
    (resume,) = events(example, "API", "resume")
    dispatched = events(example, "API", "run")[1]
    assert "values" not in resume
    assert resume["at"] >= dispatched["at"]
    assert 0 <= resume["duration"] <= resume["at"] - dispatched["at"] + 0.001


def test_example_fail_event_has_the_error_and_the_outputs(example, api):
    """INDEX example: `fail` values are `{type: error, value}` then the
    call's headers (map), body (any) and status (number 403); the URL the
    call used carries the request's query (DEBUGGER: fail = partial output)."""
    (fail,) = events(example, "API", "fail")
    assert fail["values"][0] == {"type": "error", "value": "non-2XX response code: 403"}
    out = values(fail)
    assert out["status"] == {"key": "status", "type": "number", "value": 403}
    assert out["body"] == {"key": "body", "type": "any", "value": FORBIDDEN}
    assert out["headers"]["type"] == "map" and out["headers"]["value"]["x-powered-by"] == "mock_upstream"
    (sent,) = api.requests_for("/status/403")[-1:]
    assert sent.raw_query == "b=123&a=true"


def test_example_cancel_events(example):
    """INDEX example: the running SLOW_API is cancelled with a `duration`;
    the pending FILTER is cancelled without one; neither has values."""
    (slow,) = events(example, "SLOW_API", "cancel")
    (pending,) = events(example, "FILTER", "cancel")
    assert "values" not in slow and "values" not in pending
    assert slow["duration"] >= 0
    assert "duration" not in pending
    assert not events(example, "FILTER", "run")


def test_example_event_order(example):
    """INDEX example: request run/complete, the call runs, API resume and
    fail, then the cancels; `at` never goes back."""
    actions = [(e["name"], e["action"]) for e in example["events"]]
    assert actions[:2] == [("request", "run"), ("request", "complete")]
    assert actions.index(("API", "resume")) < actions.index(("API", "fail")) < actions.index(("SLOW_API", "cancel"))
    assert actions.index(("API", "fail")) < actions.index(("FILTER", "cancel"))
    ats = [e["at"] for e in example["events"]]
    assert ats == sorted(ats)


def test_example_phase_and_source_metadata(example):
    """CHANGELOG 3.15.0.2: node source and runtime phase metadata on events.
    Every event names its phase (`access` before proxying); run values name
    the output they come from."""
    assert {e["phase"] for e in example["events"]} == {"access"}
    inputs = values(events(example, "API", "run")[0])
    assert {k: v["source"] for k, v in inputs.items()} == {"headers": "request.headers", "body": "request.body", "query": "request.query"}


# -- other reports -----------------------------------------------------------


def test_response_node_is_skipped_when_the_report_replaces_the_body(c, api):
    """INDEX: "The `response` node ... will appear in the tracing report with
    a result of NODE_SKIPPED"; the report replaces the upstream's body."""
    r = c.get(f"{api.url}/complete/x", headers=TRACE)
    assert r.status_code == 200
    report = r.json()
    assert report["status"] == "PLAN_COMPLETE"
    statuses = {n["name"]: n["status"] for n in report["nodes"]}
    assert statuses == {"CALL": "NODE_COMPLETE", "PICK": "NODE_COMPLETE", "HEADERS": "NODE_COMPLETE", "response": "NODE_SKIPPED"}
    assert events(report, "response", "skip")
    complete = values(events(report, "PICK", "complete")[0])
    assert complete["$self"]["value"] == "Yours Truly"


def test_without_the_header_the_response_node_applies(c, api):
    """INDEX: tracing is asked for per request; without the header the
    `response` node takes effect and the upstream's body goes out."""
    r = c.get(f"{api.url}/complete/x")
    assert r.json() == {"upstream": True}
    assert r.headers["x-author"] == "Yours Truly"


def test_complete_call_has_run_run_resume_complete(c, api):
    """INDEX example + DEBUGGER "Actions": a call that succeeds traces
    run (inputs), run, resume (duration), complete (outputs)."""
    report = c.get(f"{api.url}/complete/x", headers=TRACE).json()
    assert [e["action"] for e in events(report, "CALL")] == ["run", "run", "resume", "complete"]
    out = values(events(report, "CALL", "complete")[0])
    assert out["status"] == {"key": "status", "type": "number", "value": 200}
    assert out["body"]["type"] == "any" and out["body"]["value"]["author"] == "Yours Truly"
    assert out["raw_body"]["type"] == "string"


def test_non_call_nodes_run_once(c, api):
    """DEBUGGER: the second run (dispatch) and resume are for call nodes only."""
    report = c.get(f"{api.url}/complete/x", headers=TRACE).json()
    assert [e["action"] for e in events(report, "PICK")] == ["run", "complete"]
    assert values(events(report, "PICK", "run")[0])["$self"]["source"] == "CALL.body"


def test_response_phase_events_name_their_phase(c, api):
    """CHANGELOG 3.15.0.2 (phase metadata): a node fed by `service_response`
    runs after proxying; its events say `response`."""
    report = c.get(f"{api.url}/after/x", headers=TRACE).json()
    (run,) = events(report, "STATUS", "run")
    assert run["phase"] == "response"
    assert values(run)["$self"] == {"key": "$self", "type": "any", "value": 200, "source": "service_response.status"}
    assert values(events(report, "STATUS", "complete")[0])["$self"]["value"] == 201


def test_branch_skips_are_traced(c, api):
    """INDEX "Branch node" + DEBUGGER "skip": the branch not taken is NODE_SKIPPED with a `skip` event."""
    report = c.get(f"{api.url}/branch/x?go=yes", headers=TRACE).json()
    statuses = {n["name"]: n["status"] for n in report["nodes"]}
    assert statuses["YES"] == "NODE_COMPLETE" and statuses["NO"] == "NODE_SKIPPED"
    assert [e["action"] for e in events(report, "NO")] == ["skip"]


def test_vault_values_stay_redacted(c, api):
    """CHANGELOG 3.15.0.0: "sanitized trace content capture with vault-aware
    redaction": a secret reaching a call's headers is never shown."""
    r = c.get(f"{api.url}/secret/x", headers=TRACE)
    assert SECRET not in r.text
    run = values(events(r.json(), "AUTH", "run")[0])
    assert run["headers"]["value"] == "[REDACTED]"
    assert api.requests_for("/json")[-1].header("x-token") == SECRET


@pytest.mark.parametrize("value", ["true", "yes", "on", "1", "enabled", "TRUE"])
def test_kong_header_values_turn_tracing_on(c, api, value):
    """INDEX: `X-DataKit-Debug-Trace` with "true", "yes", "on", "1" or "enabled"."""
    report = c.get(f"{api.url}/complete/x", headers={"X-DataKit-Debug-Trace": value}).json()
    assert report["status"] == "PLAN_COMPLETE"


@pytest.mark.parametrize("value", ["0", "false", "off", "Off"])
def test_off_values_do_not_trace(c, api, value):
    """SPEC §7 (`0`, `false`, `off` leave tracing off), agreeing with INDEX's list."""
    r = c.get(f"{api.url}/complete/x", headers={"X-DataKit-Debug-Trace": value})
    assert r.json() == {"upstream": True}


def test_other_header_values_trace_unlike_kong(c, api):
    """Deviation (docs/coming-from-kong.md): INDEX names five values; this
    project's contract (SPEC §7) traces for any value but 0/false/off, so a
    value Kong would ignore (`please`) traces here."""
    report = c.get(f"{api.url}/complete/x", headers={"X-DataKit-Debug-Trace": "please"}).json()
    assert report["status"] == "PLAN_COMPLETE"


def test_without_debug_the_header_changes_nothing(c, api):
    """INDEX: tracing needs `debug` enabled; without it a failure is the generic 500."""
    r = c.get(f"{api.url}/no-debug/x", headers=TRACE)
    assert r.status_code == 500
    body = r.json()
    assert body == {"message": "An unexpected error occurred", "request_id": body["request_id"]}


def test_debug_error_body(c, api):
    """INDEX "Making node execution errors visible": with `debug` the body
    names the error and the node, its index counted from 1."""
    r = c.get(f"{api.url}/kong-example/x")
    assert r.status_code == 500
    body = r.json()
    assert body == {
        "message": "node execution error",
        "request_id": body["request_id"],
        "error": "non-2XX response code: 403",
        "node": {"index": 1, "name": "API", "type": "call"},
    }
    assert body["request_id"]


SOURCES = (INDEX, CHANGELOG, DEBUGGER)
