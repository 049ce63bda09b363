"""`jq` in process: inputs, results and errors of the `jq` node
(docs/nodes.md#jq).

The real addon in mitmproxy's `taddons.context` (fixtures: conftest.py)."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
from mitmproxy import http

from tests.unit.addon_support import body_json, make_flow


async def jq_result(dk, node: str, flow: http.HTTPFlow | None = None) -> Any:
    """Load a workflow with a jq node J (given as YAML lines) whose value is
    returned to the client wrapped as {"v": ...}."""
    dk.load(
        "nodes:\n"
        + textwrap.indent(textwrap.dedent(node), "  ")
        + """\
  - name: WRAP
    type: jq
    inputs: {v: J}
    jq: '{v}'
  - name: EXIT
    type: exit
    inputs: {body: WRAP}
"""
    )
    flow = await dk.roundtrip(flow or make_flow("/p?a=1&a=2&b=x", headers={"X-H": "h"}))
    assert flow.response.status_code == 200, flow.response.content
    return body_json(flow)["v"]


async def test_jq_input_form_is_the_value(dk):
    node = """\
    - name: J
      type: jq
      input: request.query
      jq: '.'
    """
    assert await jq_result(dk, node) == {"a": ["1", "2"], "b": "x"}


async def test_jq_input_of_an_object_node_is_a_map_of_its_ports(dk):
    node = """\
    - name: J
      type: jq
      input: request
      jq: '{keys: keys, method, path, q: .query.b, h: .headers["x-h"]}'
    """
    result = await jq_result(dk, node)
    assert {"body", "headers", "query", "path", "method"} <= set(result["keys"])
    assert result["method"] == "GET" and result["path"] == "/p"
    assert result["q"] == "x" and result["h"] == "h"


async def test_jq_inputs_form_is_an_object_of_named_inputs(dk):
    node = """\
    - name: J
      type: jq
      inputs: {q: request.query.b, m: request.method, s: S.k}
      jq: '.'
    - name: S
      type: static
      values: {k: [1, true, null]}
    """
    assert await jq_result(dk, node) == {"q": "x", "m": "GET", "s": [1, True, None]}


@pytest.mark.parametrize(
    ("jq", "expected"),
    [
        ('.a, .b', [["1", "2"], "x"]),
        ('.a[]', ["1", "2"]),
        ('[.b]', ["x"]),  # one value that is a list stays as is
        ('.b', "x"),
        ('empty', None),
        ('.nothing', None),
    ],
)
async def test_jq_emitted_values(dk, jq, expected):
    node = f"""\
    - name: J
      type: jq
      input: request.query
      jq: '{jq}'
    """
    assert await jq_result(dk, node) == expected


@pytest.mark.parametrize("jq", ['.b | tonumber', '.a + 1', 'error("custom")', '.b.c'])
async def test_jq_runtime_error_is_a_node_error(dk, jq):
    dk.load(
        f"""\
        debug: true
        nodes:
          - name: J
            type: jq
            input: request.query
            jq: '{jq}'
          - name: EXIT
            type: exit
            inputs: {{body: J}}
        """
    )
    flow = await dk.roundtrip(make_flow("/p?a=1&a=2&b=x"))
    assert dk.upstream_calls == 0
    assert flow.response.status_code == 500
    body = body_json(flow)
    assert body["node"] == {"index": 1, "name": "J", "type": "jq"}
    assert body["error"]


async def test_jq_input_with_lone_surrogates_runs_in_process(dk):
    """A lossless JSON body may hold lone surrogates (U+DCFF for a byte that
    is not UTF-8): jq gets them as \\uXXXX escapes, not a crash."""
    flow = make_flow("/p", method="POST", headers={"Content-Type": "application/json"}, body=b'{"a": "\\udcff", "b": "ok"}')
    node = """\
    - name: J
      type: jq
      input: request.body
      jq: '[.b, (.a | length)]'
    """
    assert await jq_result(dk, node, flow) == ["ok", 1]
