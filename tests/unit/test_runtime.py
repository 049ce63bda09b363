"""The runtime, in process: scheduling, phases and failure
(docs/nodes.md#phases-and-execution). `branch`, `jq` and traces: test_branch_node.py,
test_jq_node.py, test_traces.py.

Drives the real addon class (`mitmdatakit.addon.Datakit`) inside mitmproxy's
`taddons.context` with real `HTTPFlow` objects from `mitmproxy.test`; calls
go to a local `MockServer`. No mitmdump subprocess.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from tests.unit.addon_support import active_runs, body_json, events, make_flow, node_status, trace_of, upstream_response

# --------------------------------------------------------------------------- #
# scheduling
# --------------------------------------------------------------------------- #

JOIN_NODES = [
    """\
  - name: JOIN
    type: jq
    inputs: {a: A.body, b: B.body}
    jq: '{a: .a.n, b: .b.n}'
""",
    """\
  - name: EXIT
    type: exit
    status: 201
    inputs: {body: JOIN}
""",
    """\
  - name: A
    type: call
    url: {url}/a
""",
    """\
  - name: B
    type: call
    url: {url}/b
""",
]


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (3, 2, 1, 0), (2, 0, 3, 1)], ids=["consumers-first", "reversed", "mixed"])
async def test_each_node_runs_once_when_its_inputs_are_ready_in_any_file_order(dk, srv, order):
    nodes = "".join(JOIN_NODES[i].replace("{url}", srv.url) for i in order)
    dk.load("debug: true\nnodes:\n" + nodes)
    flow = await dk.roundtrip(make_flow())

    assert dk.upstream_calls == 0
    assert flow.response.status_code == 201
    assert body_json(flow) == {"a": 1, "b": 2}
    report = trace_of(flow)
    assert report["status"] == "PLAN_COMPLETE"
    assert node_status(report) == {"JOIN": "NODE_COMPLETE", "EXIT": "NODE_COMPLETE", "A": "NODE_COMPLETE", "B": "NODE_COMPLETE"}
    for name in ("A", "B", "JOIN", "EXIT"):
        # one `run` with the inputs (call nodes add a second, without values: Kong's async model)
        assert len([e for e in events(report, name, "run") if "values" in e]) == 1, name
        assert len(events(report, name, "complete")) == 1, name
    # A and B have no inputs: both start at once, before anything completes
    first_complete = min(e["at"] for e in events(report, action="complete") if e["name"] in ("A", "B"))
    assert events(report, "A", "run")[0]["at"] <= first_complete
    assert events(report, "B", "run")[0]["at"] <= first_complete
    # JOIN waits for both (B is the slower one), EXIT for JOIN
    assert events(report, "JOIN", "run")[0]["at"] >= events(report, "B", "complete")[0]["at"]
    assert events(report, "JOIN", "run")[0]["at"] >= events(report, "A", "complete")[0]["at"]
    assert events(report, "EXIT", "run")[0]["at"] >= events(report, "JOIN", "complete")[0]["at"]
    # the run event carries the gathered inputs
    assert {v["key"]: v["value"] for v in events(report, "JOIN", "run")[0]["values"]} == {"a": {"n": 1}, "b": {"n": 2}}


async def test_nodes_without_inputs_run_at_phase_start(dk):
    dk.load(
        """\
        debug: true
        nodes:
          - name: LATE
            type: jq
            input: EARLY2
            jq: '. + 1'
            output: response.headers.x-late
          - name: EARLY1
            type: static
            values: {v: 1}
          - name: EARLY2
            type: jq
            jq: '41'
          - name: EARLY3
            type: property
            property: kong.version
        """
    )
    flow = await dk.roundtrip(make_flow())
    report = trace_of(flow)
    declared = {"LATE", "EARLY1", "EARLY2", "EARLY3"}
    runs = [e["name"] for e in events(report, action="run") if e["name"] in declared]
    assert set(runs[:3]) == {"EARLY1", "EARLY2", "EARLY3"}
    assert runs[3:] == ["LATE"]
    assert flow.response.headers["x-late"] == "42"
    assert dk.upstream_calls == 1


async def test_independent_calls_overlap(dk, srv):
    calls = "".join(f"  - name: C{i}\n    type: call\n    url: {srv.url}/slow300?i={i}\n" for i in range(4))
    dk.load(
        """\
nodes:
  - name: ALL
    type: jq
    inputs: {a: C0.body, b: C1.body, c: C2.body, d: C3.body}
    jq: '[.a, .b, .c, .d] | map(.slow) | all'
  - name: EXIT
    type: exit
    inputs: {body: ALL}
"""
        + calls
    )
    srv.clear()
    start = time.perf_counter()
    flow = await dk.request(make_flow())
    elapsed = time.perf_counter() - start
    assert body_json(flow) is True
    assert len(srv.requests_for("/slow300")) == 4
    assert elapsed < 0.8, f"4 x 300 ms calls took {elapsed:.2f} s: they did not overlap"


async def test_a_slow_workflow_does_not_block_other_flows(dk, srv):
    wfdir = dk.tmp_path / "wfs"
    wfdir.mkdir()
    (wfdir / "a_slow.yaml").write_text(
        f"""\
match: {{hosts: [slow.test]}}
nodes:
  - name: SLOW
    type: call
    url: {srv.url}/slow300
  - name: EXIT
    type: exit
    inputs: {{body: SLOW.body}}
"""
    )
    (wfdir / "b_fast.yaml").write_text("nodes:\n  - {name: EXIT, type: exit, status: 202}\n")
    dk.tctx.configure(dk.addon, datakit_config=str(wfdir))
    assert [w.name for w in dk.addon.workflows] == ["a_slow", "b_fast"]

    slow_flow = make_flow(host="slow.test")
    slow = asyncio.ensure_future(dk.request(slow_flow))
    await asyncio.sleep(0.05)  # the call is in flight
    other = await dk.request(make_flow(host="fast.test"))
    assert other.response.status_code == 202
    assert not slow.done()  # the fast flow was not queued behind the slow one
    await slow
    assert body_json(slow_flow) == {"slow": True}


# --------------------------------------------------------------------------- #
# phases
# --------------------------------------------------------------------------- #


async def test_request_and_response_phases(dk):
    dk.load(
        """\
        debug: true
        nodes:
          - name: OUT
            type: jq
            inputs: {req: REQ, resp: RESP}
            jq: '{req, resp}'
            output: response.body
          - name: RESP
            type: jq
            input: service_response.body
            jq: '.v + 1'
          - name: REQ
            type: jq
            input: request.headers
            jq: '.["x-in"]'
          - name: TO_UPSTREAM
            type: static
            values: {x-to-upstream: "added"}
            output: service_request.headers
        """
    )
    flow = make_flow(headers={"X-In": "hello"})
    await dk.addon.request(flow)
    assert flow.response is None  # proxied
    run = active_runs(dk.addon)[flow.id]
    status = dict(zip((n.name for n in run.plan.nodes), run.status, strict=True))
    assert status["REQ"] == "NODE_COMPLETE"
    assert status["TO_UPSTREAM"] == "NODE_COMPLETE"
    assert status["RESP"] == "NODE_PENDING"
    assert status["OUT"] == "NODE_PENDING"
    # service_request inputs were applied before proxying
    assert flow.request.headers["x-to-upstream"] == "added"

    flow.response = upstream_response(json_body={"v": 41})
    await dk.response(flow)
    assert flow.response.status_code == 200
    assert body_json(flow) == {"req": "hello", "resp": 42}
    report = trace_of(flow)
    assert set(node_status(report).values()) == {"NODE_COMPLETE"}
    assert not active_runs(dk.addon)  # nothing kept after the flow is done


async def test_exit_in_request_phase_never_runs_response_phase(dk):
    dk.load(
        """\
        debug: true
        nodes:
          - name: LATE
            type: jq
            input: service_response.status
            jq: '"late"'
            output: response.headers.x-late
          - name: EXIT
            type: exit
            status: 203
            inputs: {body: BODY}
          - name: BODY
            type: static
            values: {answered: early}
        """
    )
    flow = make_flow()
    await dk.addon.request(flow)
    assert flow.response is not None and flow.response.status_code == 203
    exit_response = flow.response
    # mitmproxy still calls the response hook for an addon-set response
    await dk.response(flow)
    assert flow.response is exit_response
    assert flow.response.status_code == 203
    assert body_json(flow) == {"answered": "early"}
    assert "x-late" not in flow.response.headers
    report = trace_of(flow)
    assert node_status(report)["LATE"] == "NODE_PENDING"
    assert not events(report, "LATE")
    assert not active_runs(dk.addon)


async def test_response_inputs_set_before_proxying_apply_to_upstream_response(dk):
    dk.load(
        """\
        nodes:
          - name: HEADERS
            type: static
            values: {x-added: "yes", header-response: null}
            output: response.headers
          - name: BODY
            type: jq
            input: request.query
            jq: '{echo: .q}'
            output: response.body
        """
    )
    flow = make_flow("/p?q=hi")
    await dk.addon.request(flow)
    assert flow.response is None
    assert "x-added" not in flow.request.headers  # a response header, not a request one
    flow.response = upstream_response(content=b"upstream text", headers={"content-type": "text/plain"})
    await dk.response(flow)
    assert flow.response.status_code == 200
    assert flow.response.headers["x-added"] == "yes"
    assert "header-response" not in flow.response.headers
    assert body_json(flow) == {"echo": "hi"}
    assert flow.response.headers["content-length"] == str(len(flow.response.content))


async def test_exit_in_response_phase_replaces_upstream_response(dk):
    dk.load(
        """\
        nodes:
          - name: EXIT
            type: exit
            status: 418
            inputs: {body: WRAP}
          - name: WRAP
            type: jq
            input: service_response
            jq: '{upstream_status: .status, upstream_body: .body}'
        """
    )
    flow = await dk.roundtrip(make_flow(), upstream_response(status=202, json_body={"k": "v"}))
    assert dk.upstream_calls == 1
    assert flow.response.status_code == 418
    assert body_json(flow) == {"upstream_status": 202, "upstream_body": {"k": "v"}}
    assert "header-response" not in flow.response.headers


async def test_workflow_without_match_is_skipped_for_other_flows(dk):
    dk.load(
        """\
        match: {hosts: [only.test]}
        nodes:
          - {name: EXIT, type: exit, status: 204}
        """
    )
    other = await dk.roundtrip(make_flow(host="api.test"))
    assert other.response.status_code == 200 and dk.upstream_calls == 1
    mine = await dk.roundtrip(make_flow(host="only.test"))
    assert mine.response.status_code == 204 and dk.upstream_calls == 1


# --------------------------------------------------------------------------- #
# failure
# --------------------------------------------------------------------------- #

FAILING = """\
debug: {debug}
nodes:
  - name: SLOW
    type: call
    url: {url}/slow3s
  - name: FAST
    type: call
    url: {url}/fast
  - name: BOOM
    type: jq
    input: FAST.body
    jq: 'error("boom \\(.x)")'
  - name: EXIT
    type: exit
    inputs: {{body: SLOW.body}}
"""


async def test_node_failure_cancels_running_calls_and_answers_500(dk, srv, caplog):
    dk.load(FAILING.format(debug="false", url=srv.url))
    srv.clear()
    flow = make_flow()
    caplog.set_level(logging.ERROR, logger="mitmdatakit")
    start = time.perf_counter()
    await dk.addon.request(flow)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"the failing workflow waited for the slow call ({elapsed:.2f} s)"
    assert len(srv.requests_for("/slow3s")) == 1  # it really was in flight
    # and it was aborted, not left running in the background
    await asyncio.sleep(0)
    leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert leftover == []
    assert flow.response.status_code == 500
    assert flow.response.headers["content-type"] == "application/json"
    assert body_json(flow) == {"message": "An unexpected error occurred", "request_id": flow.id}
    # the full error is logged
    assert "boom 1" in caplog.text and "BOOM" in caplog.text
    # no second phase after the failure
    await dk.response(flow)
    assert body_json(flow) == {"message": "An unexpected error occurred", "request_id": flow.id}
    assert not active_runs(dk.addon)


async def test_node_failure_with_debug_names_the_node(dk, srv):
    dk.load(FAILING.format(debug="true", url=srv.url))
    flow = make_flow()
    start = time.perf_counter()
    await dk.addon.request(flow)
    assert time.perf_counter() - start < 1.0
    assert flow.response.status_code == 500
    body = body_json(flow)
    assert set(body) == {"message", "request_id", "error", "node"}
    assert body["message"] == "node execution error"
    assert body["request_id"] == flow.id
    assert "boom 1" in body["error"]
    assert body["node"] == {"index": 3, "name": "BOOM", "type": "jq"}
    report = trace_of(flow)
    assert report["status"] == "PLAN_ERROR"
    statuses = node_status(report)
    assert statuses == {"SLOW": "NODE_CANCELED", "FAST": "NODE_COMPLETE", "BOOM": "NODE_ERROR", "EXIT": "NODE_CANCELED"}
    assert "boom 1" in next(n for n in report["nodes"] if n["name"] == "BOOM")["error"]
    assert events(report, "SLOW", "cancel")
    fail = events(report, "BOOM", "fail")
    assert len(fail) == 1 and "boom 1" in fail[0]["values"][0]["value"]
    assert not events(report, "EXIT", "run")


async def test_failure_in_response_phase_replaces_upstream_response(dk):
    dk.load(
        """\
        debug: true
        nodes:
          - name: OK
            type: static
            values: {a: 1}
          - name: BAD
            type: jq
            input: service_response.body
            jq: '.missing.deeper | ascii_downcase'
            output: response.body
        """
    )
    flow = await dk.roundtrip(make_flow(), upstream_response(json_body={"missing": 5}))
    assert flow.response.status_code == 500
    body = body_json(flow)
    assert body["message"] == "node execution error"
    assert body["node"] == {"index": 2, "name": "BAD", "type": "jq"}
    assert "header-response" not in flow.response.headers


@pytest.mark.parametrize(
    ("jq", "target", "port_type"),
    [
        ('"not-a-map"', "headers", "map"),
        ("[1, 2]", "headers", "map"),
    ],
)
async def test_any_to_typed_runtime_mismatch_is_a_node_error(dk, jq, target, port_type):
    dk.load(
        f"""\
        debug: true
        nodes:
          - name: VALUE
            type: jq
            jq: '{jq}'
          - name: EXIT
            type: exit
            inputs: {{{target}: VALUE}}
        """
    )
    flow = await dk.roundtrip(make_flow())
    assert dk.upstream_calls == 0
    assert flow.response.status_code == 500
    body = body_json(flow)
    assert body["node"] == {"index": 2, "name": "EXIT", "type": "exit"}
    assert port_type in body["error"]


async def test_any_to_typed_runtime_match_passes(dk):
    dk.load(
        """\
        nodes:
          - name: VALUE
            type: jq
            jq: '{"x-ok": "1"}'
          - name: EXIT
            type: exit
            status: 202
            inputs: {headers: VALUE}
        """
    )
    flow = await dk.roundtrip(make_flow())
    assert flow.response.status_code == 202
    assert flow.response.headers["x-ok"] == "1"


async def test_any_to_string_mismatch_into_call_url(dk, srv):
    dk.load(
        f"""\
        debug: true
        nodes:
          - name: URL
            type: jq
            jq: 'true'
          - name: CALL
            type: call
            url: {srv.url}/a
            inputs: {{url: URL}}
        """
    )
    srv.clear()
    flow = await dk.roundtrip(make_flow())
    assert flow.response.status_code == 500
    assert body_json(flow)["node"] == {"index": 2, "name": "CALL", "type": "call"}
    assert "string" in body_json(flow)["error"]
    assert srv.requests_for("/a") == []


async def test_any_into_a_node_wise_object_input_is_checked_at_run_time(dk):
    wf = """\
        debug: true
        nodes:
          - name: VALUE
            type: jq
            jq: '{jq}'
          - name: EXIT
            type: exit
            status: 202
            input: VALUE
        """
    dk.load(wf.replace("{jq}", '{"body": {"ok": true}, "headers": {"x-a": "1"}, "ignored": 1}'))
    flow = await dk.roundtrip(make_flow())
    assert flow.response.status_code == 202
    assert body_json(flow) == {"ok": True} and flow.response.headers["x-a"] == "1"
    for bad in ('"text"', '{"headers": "oops"}'):
        dk.load(wf.replace("{jq}", bad))
        flow = await dk.roundtrip(make_flow())
        assert flow.response.status_code == 500, bad
        assert body_json(flow)["node"] == {"index": 2, "name": "EXIT", "type": "exit"}


@pytest.mark.parametrize("sink", ["service_request.headers", "response.headers", "EXIT.headers"])
@pytest.mark.parametrize("value", ['{"x-evil": "a\\r\\nset-cookie: b"}', '{"x-evil\\n": "a"}', '{"x-evil": "a\\u0000"}'])
async def test_header_injection_is_a_node_error(dk, sink, value):
    dk.load(
        f"""\
        nodes:
          - name: H
            type: jq
            jq: '{value}'
            output: {sink}
          - name: EXIT
            type: exit
            status: 202
            inputs: {{body: LATER}}
          - name: LATER
            type: jq
            input: service_response.status
            jq: '.'
        """
    )
    flow = await dk.roundtrip(make_flow())
    assert flow.response.status_code == 500
    assert body_json(flow) == {"message": "An unexpected error occurred", "request_id": flow.id}
    assert "x-evil" not in flow.request.headers
    assert "set-cookie" not in flow.response.headers
