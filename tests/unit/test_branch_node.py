"""`branch` in process: which nodes run, which are skipped (with what needs
their output), nested branches, and errors (docs/nodes.md#branch).

The real addon in mitmproxy's `taddons.context` (fixtures: conftest.py)."""

from __future__ import annotations

import pytest

from tests.unit.addon_support import body_json, events, make_flow, node_status, trace_of

BRANCH = """\
debug: true
nodes:
  - name: COND
    type: jq
    input: request.query
    jq: '.go == "yes"'
  - name: BR
    type: branch
    input: COND
    then: [YEP]
    else: [NOPE]
  - name: YEP
    type: exit
    status: 201
  - name: NOPE
    type: jq
    jq: '"no"'
  - name: AFTER_NOPE
    type: exit
    status: 202
    inputs: {body: NOPE}
"""


async def test_branch_then(dk):
    dk.load(BRANCH)
    flow = await dk.roundtrip(make_flow("/?go=yes"))
    assert flow.response.status_code == 201
    report = trace_of(flow)
    assert node_status(report) == {
        "request": "NODE_COMPLETE",  # implicit nodes are listed, as in Kong's trace
        "COND": "NODE_COMPLETE",
        "BR": "NODE_COMPLETE",
        "YEP": "NODE_COMPLETE",
        "NOPE": "NODE_SKIPPED",
        "AFTER_NOPE": "NODE_SKIPPED",  # needs the skipped node's output
    }
    assert events(report, "NOPE", "skip") and events(report, "AFTER_NOPE", "skip")
    assert not events(report, "NOPE", "run") and not events(report, "AFTER_NOPE", "run")
    # YES has no data input but waited for the decision
    assert events(report, "YEP", "run")[0]["at"] >= events(report, "BR", "complete")[0]["at"]


async def test_branch_else(dk):
    dk.load(BRANCH)
    flow = await dk.roundtrip(make_flow("/?go=no"))
    assert dk.upstream_calls == 0
    assert flow.response.status_code == 202
    assert flow.response.content == b"no"
    report = trace_of(flow)
    assert node_status(report)["YEP"] == "NODE_SKIPPED"
    assert node_status(report)["NOPE"] == "NODE_COMPLETE"
    assert events(report, "YEP", "skip") and not events(report, "YEP", "run")


NESTED = """\
debug: true
nodes:
  - name: INNER
    type: branch
    input: C2
    then: [E_IN_THEN]
    else: [E_IN_ELSE]
  - name: OUTER
    type: branch
    input: C1
    then: [INNER]
    else: [E_OUTER]
  - name: C1
    type: jq
    input: request.query
    jq: '.a == "1"'
  - name: C2
    type: jq
    input: request.query
    jq: '.b == "1"'
  - {name: E_IN_THEN, type: exit, status: 201}
  - {name: E_IN_ELSE, type: exit, status: 202}
  - {name: E_OUTER, type: exit, status: 203}
"""


@pytest.mark.parametrize(
    ("query", "status", "skipped"),
    [
        ("a=1&b=1", 201, {"E_IN_ELSE", "E_OUTER"}),
        ("a=1&b=0", 202, {"E_IN_THEN", "E_OUTER"}),
        ("a=0&b=1", 203, {"INNER", "E_IN_THEN", "E_IN_ELSE"}),
    ],
)
async def test_nested_branch(dk, query, status, skipped):
    dk.load(NESTED)
    flow = await dk.roundtrip(make_flow("/?" + query))
    assert dk.upstream_calls == 0
    assert flow.response.status_code == status
    statuses = node_status(trace_of(flow))
    assert {n for n, s in statuses.items() if s == "NODE_SKIPPED"} == skipped
    assert {n for n, s in statuses.items() if s != "NODE_SKIPPED"} == set(statuses) - skipped
    assert all(s == "NODE_COMPLETE" for n, s in statuses.items() if n not in skipped)


async def test_skipped_source_of_a_sink_sends_nothing(dk):
    dk.load(
        """\
        nodes:
          - name: BR
            type: branch
            input: COND
            then: [H]
          - name: COND
            type: jq
            jq: 'false'
          - name: H
            type: static
            values: {x-h: "from-h"}
          - name: SET_H
            type: jq
            input: H
            jq: '.["x-h"]'
            output: response.headers.x-h
          - name: SET_OTHER
            type: static
            values: {v: "other"}
            outputs: {v: response.headers.x-other}
        """
    )
    flow = await dk.roundtrip(make_flow())
    assert flow.response.status_code == 200
    assert flow.response.headers["x-other"] == "other"
    assert "x-h" not in flow.response.headers


@pytest.mark.parametrize("value", ['"true"', "1", "null", "{}"])
async def test_branch_input_must_be_boolean(dk, value):
    dk.load(
        f"""\
        debug: true
        nodes:
          - name: COND
            type: jq
            jq: '{value}'
          - name: BR
            type: branch
            input: COND
            then: [YEP]
          - {{name: YEP, type: exit, status: 201}}
        """
    )
    flow = await dk.roundtrip(make_flow())
    assert dk.upstream_calls == 0
    assert flow.response.status_code == 500
    assert body_json(flow)["node"] == {"index": 2, "name": "BR", "type": "branch"}
    assert "boolean" in body_json(flow)["error"]
