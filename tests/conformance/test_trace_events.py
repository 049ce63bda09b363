"""Kong conformance of the trace's event model beyond Kong's example report
(test_trace.py): branch skips, failures of the implicit `response` node,
non-call failures, vault-derived values and field-level sources.

Sources in Kong/developer.konghq.com: app/observability/datakit-debugger.md
(DEBUGGER: "Datakit node spans", "Tracing events", "Actions",
"Vault-derived values"), INDEX ("Execution debug tracing": the `nodes`
list and its statuses) and CHANGELOG 3.15.0.0 ("local debug trace
responses using the same tracing event model with inline values").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conformance._support import CHANGELOG, INDEX, TRACE, serve, workflow, write_workflows
from tests.harness import Mitmdump, MockServer
from tests.harness.mock_server import Reply

DEBUGGER = "app/observability/datakit-debugger.md"
SECRET = "v4ult-" + "9" * 26


def workflows(api: str) -> dict[str, dict[str, Any]]:
    return {
        # COND routes BR; AFTER_NO depends on NO only, AFTER_YES on YES only
        "route": workflow("route", [
            {"name": "COND", "type": "jq", "input": "request.query", "jq": '.go == "yes"'},
            {"name": "BR", "type": "branch", "input": "COND", "then": ["YES"], "else": ["NO"]},
            {"name": "YES", "type": "static", "values": {"r": "then"}},
            {"name": "NO", "type": "static", "values": {"r": "else"}},
            {"name": "AFTER_YES", "type": "jq", "input": "YES.r", "jq": "."},
            {"name": "AFTER_NO", "type": "jq", "input": "NO.r", "jq": "."},
        ], debug=True),
        # a header value with CR/LF cannot be written into the response
        "bad-header": workflow("bad-header", [
            {"name": "HEADERS", "type": "jq", "jq": '{"x-bad": "a\\r\\nb"}', "output": "response.headers"},
        ], debug=True),
        "jq-fail": workflow("jq-fail", [
            {"name": "BOOM", "type": "jq", "input": "request.query", "jq": 'error("boom")'},
        ], debug=True),
        "derived": workflow("derived", [
            {"name": "BEARER", "type": "jq", "input": "vault.token", "jq": '"Bearer " + .'},
            {"name": "PLAIN", "type": "jq", "input": "request.query", "jq": ".q"},
        ], debug=True, resources={"vault": {"token": "{vault://env/DK_EVENTS_SECRET}"}}),
        "fields": workflow("fields", [
            {"name": "PAIR", "type": "jq", "inputs": {"q": "request.query", "m": "request.method"}, "jq": "."},
            {"name": "WORD", "type": "jq", "jq": '"w"'},
            {"name": "CALL", "type": "call", "url": f"{api}/json",
             "inputs": {"headers.x-one": "WORD", "headers.x-two": "request.method"}},
        ], debug=True),
    }


@pytest.fixture(scope="module")
def api() -> Iterator[MockServer]:
    with MockServer() as server:
        server.route("*", "/*", Reply(json={"upstream": True}))
        server.route("GET", "/json", Reply(json={"ok": True}))
        yield server


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, mitm_confdir, api: MockServer) -> Iterator[Mitmdump]:
    directory = write_workflows(tmp_path_factory.mktemp("trace-events"), workflows(api.url))
    yield from serve(directory, mitm_confdir, env={"DK_EVENTS_SECRET": SECRET})


@pytest.fixture
def c(proxy: Mitmdump) -> Iterator[httpx.Client]:
    with proxy.client() as client:
        yield client


def trace(c: httpx.Client, api: MockServer, path: str) -> dict[str, Any]:
    return c.get(f"{api.url}/{path}", headers=TRACE).json()


def events(report: dict[str, Any], name: str, action: str | None = None) -> list[dict[str, Any]]:
    return [e for e in report["events"] if e["name"] == name and (action is None or e["action"] == action)]


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {n["name"]: n["status"] for n in report["nodes"]}


# -- skip: the routing value -------------------------------------------------


def test_skip_shows_the_routing_value(c, api):
    """DEBUGGER "Actions": `skip` - "The node was skipped due to branch
    routing. The event shows the routing value that caused the skip." With
    `go=yes` the condition is true, so the `else` node NO is skipped."""
    report = trace(c, api, "route/x?go=yes")
    (skip,) = events(report, "NO", "skip")
    assert skip["values"] == [{"key": "$self", "type": "boolean", "value": True, "source": "BR"}]


def test_skip_of_the_then_branch_shows_false(c, api):
    """DEBUGGER "Actions" (`skip`): the `then` node is skipped by a false routing value."""
    report = trace(c, api, "route/x?go=no")
    assert statuses(report)["YES"] == "NODE_SKIPPED" and statuses(report)["NO"] == "NODE_COMPLETE"
    (skip,) = events(report, "YES", "skip")
    assert skip["values"] == [{"key": "$self", "type": "boolean", "value": False, "source": "BR"}]


def test_nodes_behind_a_skipped_node_are_skipped_with_the_same_cause(c, api):
    """DEBUGGER "Datakit node spans": "If a node is skipped due to branch
    routing rules ... Information about skipped nodes is available in
    Datakit tracing events": a node fed only by a skipped node is skipped
    too, and its `skip` names the same routing value."""
    report = trace(c, api, "route/x?go=yes")
    assert statuses(report)["AFTER_NO"] == "NODE_SKIPPED"
    assert statuses(report)["AFTER_YES"] == "NODE_COMPLETE"
    (skip,) = events(report, "AFTER_NO", "skip")
    assert skip["values"] == [{"key": "$self", "type": "boolean", "value": True, "source": "BR"}]


def test_skipped_nodes_never_run(c, api):
    """DEBUGGER "Datakit node spans": a skipped node "won't create a span
    because execution hasn't started": its only event is `skip`."""
    report = trace(c, api, "route/x?go=no")
    for name in ("YES", "AFTER_YES"):
        assert [e["action"] for e in events(report, name)] == ["skip"]


def test_skip_events_name_their_phase(c, api):
    """CHANGELOG 3.15.0.2 (runtime phase metadata) applies to `skip` too."""
    report = trace(c, api, "route/x?go=yes")
    assert events(report, "NO", "skip")[0]["phase"] == "access"


def test_the_branch_node_completes_with_its_routing_input(c, api):
    """DEBUGGER "Actions": the branch node itself runs with its input (the
    routing value) and completes."""
    report = trace(c, api, "route/x?go=yes")
    (run,) = events(report, "BR", "run")
    assert run["values"] == [{"key": "$self", "type": "boolean", "value": True, "source": "COND"}]
    assert statuses(report)["BR"] == "NODE_COMPLETE"


# -- failures ------------------------------------------------------------------


def test_a_response_node_failure_is_node_error(c, api):
    """DEBUGGER "Actions" (`fail`: "The node encountered an error. The event
    includes an error message") and INDEX's report (a failed node is
    NODE_ERROR with its `error`; the plan is PLAN_ERROR): the implicit
    `response` node failing to write its headers is reported like any node."""
    report = trace(c, api, "bad-header/x")
    assert report["status"] == "PLAN_ERROR"
    (entry,) = [n for n in report["nodes"] if n["name"] == "response"]
    assert entry["status"] == "NODE_ERROR"
    assert "x-bad" in entry["error"]
    (fail,) = events(report, "response", "fail")
    assert fail["values"] == [{"type": "error", "value": entry["error"]}]
    assert statuses(report)["HEADERS"] == "NODE_COMPLETE"


def test_a_response_node_failure_without_tracing(c, api):
    """INDEX "Making node execution errors visible": the debug body names
    the failed node (`response`, which has no index in `nodes`)."""
    r = c.get(f"{api.url}/bad-header/x")
    assert r.status_code == 500
    body = r.json()
    assert body["message"] == "node execution error"
    assert body["node"] == {"index": None, "name": "response", "type": "response"}


def test_a_failure_without_partial_output_carries_only_the_error(c, api):
    """DEBUGGER "Actions": `fail` carries "Partial output value (if any)": a
    jq error has none, so the only value is the error."""
    report = trace(c, api, "jq-fail/x?q=1")
    (fail,) = events(report, "BOOM", "fail")
    assert len(fail["values"]) == 1
    assert fail["values"][0]["type"] == "error" and "boom" in fail["values"][0]["value"]
    assert statuses(report)["BOOM"] == "NODE_ERROR"


def test_final_node_statuses(c, api):
    """DEBUGGER "Datakit node spans" (final status complete, fail or
    cancel) and INDEX's `nodes` list: every declared node ends with one of
    Kong's statuses, never pending or running."""
    report = trace(c, api, "route/x?go=yes")
    assert set(statuses(report).values()) <= {"NODE_COMPLETE", "NODE_SKIPPED"}
    report = trace(c, api, "jq-fail/x")
    assert set(statuses(report).values()) <= {"NODE_COMPLETE", "NODE_ERROR", "NODE_CANCELED"}


# -- values --------------------------------------------------------------------


def test_output_derived_from_a_vault_value_is_redacted_whole(c, api):
    """DEBUGGER "Vault-derived values": "If a node's output is derived from a
    Vault-resolved value, the entire output is redacted." (Here the mark is
    `[REDACTED]`, docs/coming-from-kong.md "The debug trace".)"""
    r = c.get(f"{api.url}/derived/x?q=plain", headers=TRACE)
    assert SECRET not in r.text
    report = r.json()
    (complete,) = events(report, "BEARER", "complete")
    assert complete["values"][0]["value"] == "[REDACTED]"
    (plain,) = events(report, "PLAIN", "complete")
    assert plain["values"][0]["value"] == "plain"  # only what derives from the secret


def test_field_level_inputs_name_each_source(c, api):
    """DEBUGGER "Tracing events" (`run` maps to input values) and CHANGELOG
    3.15.0.2 (node source metadata): each input names the output it came
    from; a map assembled key by key names each key's source."""
    report = trace(c, api, "fields/x?q=1")
    (run,) = events(report, "PAIR", "run")
    sources = {v["key"]: v["source"] for v in run["values"]}
    assert sources == {"q": "request.query", "m": "request.method"}
    first = events(report, "CALL", "run")[0]
    (headers,) = [v for v in first["values"] if v["key"] == "headers"]
    assert headers["source"] == {"x-one": "WORD", "x-two": "request.method"}
    assert headers["value"] == {"x-one": "w", "x-two": "GET"}


def test_events_carry_the_documented_fields(c, api):
    """DEBUGGER "Tracing events": each event has the node's `name`, `type`,
    an `action` and its time (`at`, INDEX's example)."""
    report = trace(c, api, "route/x?go=yes")
    actions = {"run", "complete", "fail", "skip", "cancel", "resume"}
    for event in report["events"]:
        assert {"name", "type", "action", "at"} <= set(event)
        assert event["action"] in actions


SOURCES = (INDEX, CHANGELOG, DEBUGGER)
