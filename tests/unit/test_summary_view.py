"""Every run's summary on the flow, the `Datakit` contentview and the
`datakit.*` commands, in process (mitmproxy's test context)."""

from __future__ import annotations

import io
import json

import pytest
from mitmproxy import contentviews, exceptions
from mitmproxy import io as mio
from mitmproxy.contentviews import prettify_message

from tests.unit.addon_support import make_flow, upstream_response

PASSING = """\
nodes:
  - name: FIRST
    type: static
    values: {a: 1}
  - name: SECOND
    type: jq
    input: FIRST
    jq: '.a + 1'
  - name: OUT
    type: exit
    inputs: {body: SECOND}
"""

FAILING = """\
{debug}
nodes:
  - name: OK
    type: static
    values: {{token: "s3cret-value", a: 1}}
  - name: BAD
    type: jq
    input: OK.a
    jq: 'error("nope")'
  - name: NEVER
    type: exit
    inputs: {{body: BAD}}
"""


def view_text(flow, message=None, view="datakit"):
    return prettify_message(message if message is not None else flow.response, flow, view_name=view)


async def test_summary_is_recorded_without_debug(dk):
    dk.load(PASSING)
    flow = await dk.roundtrip(make_flow())
    record = flow.metadata["datakit"]
    assert record["workflow"] == "wf"
    assert record["status"] == "PLAN_COMPLETE"
    assert record["debug"] is False and "trace" not in record
    assert [(n["name"], n["type"], n["status"]) for n in record["nodes"]] == [
        ("FIRST", "static", "NODE_COMPLETE"), ("SECOND", "jq", "NODE_COMPLETE"), ("OUT", "exit", "NODE_COMPLETE"),
    ]
    for n in record["nodes"]:
        assert 0 <= n["start"] <= n["end"] <= record["duration"]
    starts = [n["start"] for n in record["nodes"]]
    assert starts == sorted(starts)  # dependencies run in order
    assert flow.marked == ""
    assert flow.comment.startswith("datakit: wf PLAN_COMPLETE in ")
    json.dumps(record)


async def test_failed_run_marks_the_flow_and_names_the_node(dk):
    dk.load(FAILING.format(debug=""))
    flow = await dk.roundtrip(make_flow())
    assert flow.response.status_code == 500
    record = flow.metadata["datakit"]
    assert record["status"] == "PLAN_ERROR"
    assert record["failure"]["node"] == "BAD" and record["failure"]["type"] == "jq" and record["failure"]["index"] == 2  # counted from 1, as the 500 body and the log number it
    assert flow.marked == ":x:"
    assert flow.marked in __import__("mitmproxy.utils.emoji", fromlist=["emoji"]).emoji  # mitmproxy accepts it
    assert flow.comment.startswith("datakit: wf failed at node BAD (jq): ")
    assert "nope" in flow.comment


async def test_a_users_marker_and_comment_are_kept(dk):
    dk.load(FAILING.format(debug=""))
    flow = make_flow()
    flow.marked = ":star:"
    flow.comment = "mine"
    await dk.roundtrip(flow)
    assert flow.marked == ":star:"
    assert flow.comment.startswith("mine\ndatakit: wf failed at node BAD")


async def test_contentview_without_debug_shows_no_values(dk):
    dk.load(FAILING.format(debug=""))
    flow = await dk.roundtrip(make_flow())
    result = view_text(flow)
    assert result.view_name == "Datakit"
    text = result.text
    assert "workflow    wf" in text and "PLAN_ERROR" in text
    assert "failed at   node BAD (jq, #2)" in text and "nope" in text
    for name, status in (("OK", "NODE_COMPLETE"), ("BAD", "NODE_ERROR"), ("NEVER", "NODE_CANCELED")):
        line = next(line for line in text.splitlines() if line.strip().startswith(name + " "))
        assert status in line
    assert "█" in text
    assert "s3cret-value" not in text and "values: shown for debug runs" in text


async def test_contentview_with_debug_shows_values_redacted_as_the_trace(dk):
    dk.load(FAILING.format(debug="debug: true"))
    flow = await dk.roundtrip(make_flow())
    text = view_text(flow).text
    assert "out    a = 1" in text
    assert "in     $self = 1" in text  # BAD's input
    assert "values: shown for debug runs" not in text


async def test_contentview_is_automatic_only_for_failed_responses(dk):
    dk.load(FAILING.format(debug=""))
    failed = await dk.roundtrip(make_flow())
    assert view_text(failed, view="auto").view_name == "Datakit"
    assert view_text(failed, failed.request, view="auto").view_name != "Datakit"
    dk.load(PASSING)
    ok = await dk.roundtrip(make_flow())
    assert view_text(ok, view="auto").view_name != "Datakit"
    assert view_text(ok, view="Datakit").view_name == "Datakit"  # still selectable
    plain = make_flow()
    plain.response = upstream_response()
    assert view_text(plain, view="auto").view_name != "Datakit"
    assert view_text(plain).text.strip() == "No Datakit workflow ran on this flow."


async def test_abandoned_run(dk):
    dk.load("""\
        nodes:
          - name: LATER
            type: jq
            input: service_response.body
            jq: '.'
        """)
    flow = make_flow()
    await dk.addon.request(flow)
    await dk.addon.error(flow)
    record = flow.metadata["datakit"]
    assert record["status"] == "abandoned"
    assert record["nodes"][0]["status"] == "NODE_PENDING" and record["nodes"][0]["start"] is None
    assert flow.marked == ""
    assert "abandoned" in view_text(flow, flow.request).text


async def test_summary_survives_a_saved_flow_file(dk):
    dk.load(FAILING.format(debug="debug: true"))
    flow = await dk.roundtrip(make_flow())
    buf = io.BytesIO()
    mio.FlowWriter(buf).add(flow)
    buf.seek(0)
    (loaded,) = list(mio.FlowReader(buf).stream())
    assert loaded.metadata["datakit"] == flow.metadata["datakit"]
    assert loaded.marked == ":x:"
    assert view_text(loaded).text == view_text(flow).text


async def test_contentview_registered_and_removed(dk):
    assert "datakit" in contentviews.registry
    await dk.addon.done()
    assert "datakit" not in contentviews.registry


async def test_reload_command(dk):
    dk.load(PASSING)
    result = dk.tctx.master.commands.call("datakit.reload")
    assert result.startswith("Datakit: loaded 1 workflow(s) from ") and "wf (3 nodes)" in result
    (dk.tmp_path / "wf.yaml").write_text("nodes: [{name: X, type: nope}]\n")
    with pytest.raises(exceptions.CommandError, match=r"reload failed, still serving the previous workflows: .*nope"):
        dk.tctx.master.commands.call("datakit.reload")
    assert [w.name for w in dk.addon.workflows] == ["wf"]


async def test_graph_and_summary_commands(dk):
    dk.load(FAILING.format(debug=""))
    flow = await dk.roundtrip(make_flow())
    graph = dk.tctx.master.commands.call("datakit.graph", flow)
    assert graph.startswith("%% Datakit workflow wf") and "flowchart LR" in graph and "BAD" in graph
    assert "failed at   node BAD" in dk.tctx.master.commands.call("datakit.summary", flow)
    plain = make_flow()
    with pytest.raises(exceptions.CommandError, match="No Datakit workflow ran on this flow"):
        dk.tctx.master.commands.call("datakit.graph", plain)
    dk.load(PASSING, name="other.yaml")
    with pytest.raises(exceptions.CommandError, match="no longer loaded"):
        dk.tctx.master.commands.call("datakit.graph", flow)


def _loaded_with(metadata) -> object:
    """A flow with `metadata["datakit"]` as a crafted flow file holds it."""
    flow = make_flow()
    flow.response = upstream_response()
    flow.metadata["datakit"] = metadata
    buf = io.BytesIO()
    mio.FlowWriter(buf).add(flow)
    buf.seek(0)
    (loaded,) = list(mio.FlowReader(buf).stream())
    return loaded


CRAFTED = {
    "NaN and infinite clocks": {"duration": float("nan"), "nodes": [{"name": "A", "start": float("inf"), "end": float("nan")}]},
    "clocks that overflow the bar": {"duration": 5e-324, "nodes": [{"name": "A", "start": -1e308, "end": 1e308}]},
    "strings and lists for clocks": {"duration": "x", "nodes": [{"name": "A", "start": "1", "end": [2]}]},
    "nodes that are not mappings": {"nodes": ["A", 1, None]},
    "a failure that is a string": {"nodes": [], "failure": "boom"},
    "trace events of any type": {"nodes": [{"name": ["A"]}], "trace": {"events": [1, {"action": "run", "name": ["A"], "values": [1, {"key": "k"}]}]}},
}


@pytest.mark.parametrize("record", CRAFTED.values(), ids=CRAFTED.keys())
async def test_crafted_summaries_render_and_never_raise(dk, record):
    loaded = _loaded_with({"workflow": "wf", **record})
    text = dk.tctx.master.commands.call("datakit.summary", loaded)
    assert text.startswith("workflow    wf\n") and "timeline:" in text
    assert view_text(loaded).text.startswith("workflow    wf")


async def test_huge_summaries_are_cut_and_escaped(dk):
    """10,000 nodes, 1 MB errors and control characters in the names, from
    a flow file: errors are cut, the console gets no escape sequence."""
    nodes = [{"name": f"N{i}\x1b[2J", "type": "jq", "start": i * 1e-5, "end": i * 1e-5} for i in range(10_000)]
    nodes[0]["error"] = "E" * 1_000_000
    loaded = _loaded_with({"workflow": "wf\x1b]0;PWNED\x07", "nodes": nodes, "failure": {"node": "N0", "error": "F" * 1_000_000}})
    text = dk.tctx.master.commands.call("datakit.summary", loaded)
    assert len(text) < 1_000_000  # each error cut to 2,000 characters
    assert "E" * 2000 + "... (1000000 characters)" in text and "F" * 2000 + "... (1000000 characters)" in text
    assert "workflow    wf\\x1b]0;PWNED\\x07" in text and "N9999\\x1b[2J" in text and "\x1b" not in text
