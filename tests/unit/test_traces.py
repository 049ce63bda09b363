"""Execution traces in process: the `X-DataKit-Debug-Trace` report and the
trace kept on the flow (README.md#debugging).

The real addon in mitmproxy's `taddons.context` (fixtures: conftest.py)."""

from __future__ import annotations

import json

import pytest

from tests.unit.addon_support import body_json, events, make_flow, node_status, upstream_response

TRACED = """\
debug: {debug}
nodes:
  - name: S
    type: static
    values: {{n: 1, s: "text", b: true, z: null, l: [1], o: {{k: v}}}}
  - name: J
    type: jq
    input: S.n
    jq: '. + 1'
    output: response.headers.x-j
"""


async def test_trace_report_replaces_body_with_debug_and_header(dk):
    dk.load(TRACED.format(debug="true"))
    flow = make_flow(headers={"X-DataKit-Debug-Trace": "1"})
    await dk.roundtrip(flow, upstream_response(status=201, content=b"original"))
    assert flow.response.status_code == 201
    assert flow.response.headers["content-type"] == "application/json"
    report = body_json(flow)
    assert {"started_at", "ended_at", "duration", "status", "nodes", "events"} <= set(report)
    assert report["status"] == "PLAN_COMPLETE"
    assert report["ended_at"] >= report["started_at"]
    assert report["duration"] >= 0
    # Kong's trace lists implicit nodes; the report replaces the body, so
    # `response` cannot take full effect: NODE_SKIPPED (index.md, "Execution debug tracing")
    assert report["nodes"] == [
        {"name": "S", "type": "static", "status": "NODE_COMPLETE"},
        {"name": "J", "type": "jq", "status": "NODE_COMPLETE"},
        {"name": "response", "type": "response", "status": "NODE_SKIPPED"},
    ]
    for e in report["events"]:
        assert {"name", "type", "action", "at", "phase"} <= set(e) <= {"name", "type", "action", "at", "phase", "values"}
        assert e["action"] in ("run", "complete", "fail", "cancel", "skip")
        assert isinstance(e["at"], (int, float)) and e["at"] >= 0
        for v in e.get("values", ()):
            assert {"key", "type"} <= set(v) <= {"key", "type", "value", "source"}
    ats = [e["at"] for e in report["events"]]
    assert ats == sorted(ats)
    s_done = events(report, "S", "complete")[0]
    # values carry their port's type (static outputs are `any`) and, unless
    # null, the value inline (Kong 3.15.0.0; a null has no value, as in Kong's example)
    assert {v["key"]: (v["type"], v.get("value")) for v in s_done["values"]} == {
        "n": ("any", 1),
        "s": ("any", "text"),
        "b": ("any", True),
        "z": ("any", None),
        "l": ("any", [1]),
        "o": ("any", {"k": "v"}),
    }
    assert "value" not in next(v for v in s_done["values"] if v["key"] == "z")
    assert events(report, "J", "run")[0]["values"] == [{"key": "$self", "type": "any", "value": 1, "source": "S.n"}]
    assert events(report, "J", "complete")[0]["values"] == [{"key": "$self", "type": "any", "value": 2}]
    # the trace is also attached to the flow
    assert flow.metadata["datakit"]["trace"]["status"] == "PLAN_COMPLETE"
    assert flow.metadata["datakit"]["workflow"] == "wf"


async def test_trace_report_on_failure(dk):
    dk.load(
        """\
        debug: true
        nodes:
          - name: OK
            type: static
            values: {a: 1}
          - name: BAD
            type: jq
            input: OK.a
            jq: 'error("nope")'
          - name: NEVER
            type: exit
            inputs: {body: BAD}
        """
    )
    flow = await dk.roundtrip(make_flow(headers={"X-DataKit-Debug-Trace": "yes"}))
    assert flow.response.status_code == 500
    report = body_json(flow)
    assert report["status"] == "PLAN_ERROR"
    statuses = node_status(report)
    assert statuses == {"OK": "NODE_COMPLETE", "BAD": "NODE_ERROR", "NEVER": "NODE_CANCELED"}
    bad = next(n for n in report["nodes"] if n["name"] == "BAD")
    assert "nope" in bad["error"]
    assert [e["action"] for e in events(report, "BAD")] == ["run", "fail"]


@pytest.mark.parametrize("value", ["0", "false", "OFF", "False", " off "])
async def test_trace_header_off_values_do_not_trace(dk, value):
    dk.load(TRACED.format(debug="true"))
    flow = await dk.roundtrip(make_flow(headers={"X-DataKit-Debug-Trace": value}), upstream_response(content=b"original"))
    assert flow.response.content == b"original"
    assert flow.response.headers["x-j"] == "2"
    # still traced on the flow, without altering the response
    assert flow.metadata["datakit"]["trace"]["status"] == "PLAN_COMPLETE"


@pytest.mark.parametrize("value", ["1", "true", "on", "anything"])
async def test_trace_header_without_debug_changes_nothing(dk, value):
    dk.load(TRACED.format(debug="false"))
    flow = await dk.roundtrip(make_flow(headers={"X-DataKit-Debug-Trace": value}), upstream_response(content=b"original"))
    assert flow.response.content == b"original"
    assert flow.response.headers["x-j"] == "2"


async def test_datakit_debug_option_enables_tracing(dk):
    dk.load(TRACED.format(debug="false"), datakit_debug=True)
    flow = await dk.roundtrip(make_flow(headers={"X-DataKit-Debug-Trace": "1"}), upstream_response(content=b"original"))
    report = body_json(flow)
    assert report["status"] == "PLAN_COMPLETE"
    assert node_status(report) == {"S": "NODE_COMPLETE", "J": "NODE_COMPLETE", "response": "NODE_SKIPPED"}
    # switching the option off again turns tracing off
    dk.tctx.configure(dk.addon, datakit_debug=False)
    flow = await dk.roundtrip(make_flow(headers={"X-DataKit-Debug-Trace": "1"}), upstream_response(content=b"original"))
    assert flow.response.content == b"original"


async def test_trace_attached_to_flow_without_altering_response(dk):
    dk.load(TRACED.format(debug="true"))
    flow = await dk.roundtrip(make_flow(), upstream_response(content=b"original"))
    assert flow.response.content == b"original"
    meta = flow.metadata["datakit"]
    assert meta["workflow"] == "wf"
    assert meta["trace"]["status"] == "PLAN_COMPLETE"
    # not replaced by the report, `response` completes
    assert node_status(meta["trace"]) == {"S": "NODE_COMPLETE", "J": "NODE_COMPLETE", "response": "NODE_COMPLETE"}
    json.dumps(meta)  # serializable (saved flow files)
