"""`datakit replay` and the plugin's `datakit.replay`: traffic recorded by a
real `mitmdump -w` through workflows, replayed offline against the recorded
client responses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from mitmdatakit.cli import main
from tests.harness import MockServer, Reply

# request phase: the user header goes upstream renamed; response phase: the
# upstream's orders are counted and the response stamped
ORDERS = {
    "match": {"paths": ["/orders"]},
    "nodes": [
        {"name": "USER", "type": "jq", "input": "request.headers", "jq": '{"x-forwarded-user": ."x-user"}',
         "output": "service_request.headers"},
        {"name": "COUNT", "type": "jq", "input": "service_response.body",
         "jq": "{orders: .orders, count: (.orders | length)}", "output": "response.body"},
        {"name": "STAMP", "type": "static", "values": {"x-stamp": "v1"}, "output": "response.headers"},
    ],
}
HELLO = {
    "match": {"paths": ["/hello"]},
    "nodes": [
        {"name": "BODY", "type": "static", "values": {"greeting": "hello"}},
        {"name": "EXIT", "type": "exit", "status": 200, "inputs": {"body": "BODY"}},
    ],
}


def write_workflows(directory: Path, orders=ORDERS, hello=HELLO) -> Path:
    directory.mkdir(exist_ok=True)
    (directory / "10-orders.yaml").write_text(yaml.safe_dump(orders, sort_keys=False))
    (directory / "20-hello.yaml").write_text(yaml.safe_dump(hello, sort_keys=False))
    return directory


@pytest.fixture
def recording(tmp_path, start_mitmdump) -> tuple[Path, Path]:
    """Three flows recorded by a real mitmdump -w: a proxied one the
    workflow rewrote both ways, an exit, and one no workflow touched.
    The upstream is gone once recorded: a replay must not need it."""
    workflows = write_workflows(tmp_path / "workflows")
    flowfile = tmp_path / "flows.mitm"
    with MockServer() as upstream:
        upstream.route("GET", "/orders", lambda req: Reply(
            json={"orders": [1, 2, 3], "saw": req.header("x-forwarded-user")}, headers={"x-up": "yes"}))
        upstream.route("GET", "/plain", Reply(body="just text\n", headers={"content-type": "text/plain"}))
        mitm = start_mitmdump(workflows, args=["-w", str(flowfile)], quiet=True)
        with mitm.client() as c:
            r = c.get(f"{upstream.url}/orders", headers={"x-user": "ada"})
            assert r.json() == {"orders": [1, 2, 3], "count": 3}  # COUNT rewrote the upstream's body
            assert r.headers["x-stamp"] == "v1"
            assert upstream.last_request.header("x-forwarded-user") == "ada"
            assert c.get(f"{upstream.url}/hello").json() == {"greeting": "hello"}
            assert c.get(f"{upstream.url}/plain").text == "just text\n"
        assert mitm.stop() == 0
    assert flowfile.stat().st_size > 0
    return flowfile, workflows


def replay(capsys, *args) -> tuple[int, str, str]:
    code = main(["replay", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_unchanged_workflows_replay_the_same(recording, capsys):
    flowfile, workflows = recording
    code, out, err = replay(capsys, flowfile, "--workflows", workflows)
    assert code == 0, out + err
    assert re.search(r"^same +#1 GET http://127\.0\.0\.1:\d+/orders \(10-orders\)$", out, re.M)
    assert re.search(r"^same +#2 GET .*/hello \(20-hello\)$", out, re.M)
    assert re.search(r"^same +#3 GET .*/plain \(no workflow\)$", out, re.M)
    assert "3 flow(s): 3 same, 0 changed, 0 skipped" in out


def test_a_changed_workflow_shows_the_field_that_changed(recording, capsys, tmp_path):
    flowfile, _ = recording
    orders = yaml.safe_load(yaml.safe_dump(ORDERS))
    orders["nodes"][1]["jq"] = "{orders: .orders, count: (.orders | length), first: .orders[0]}"
    orders["nodes"][2]["values"] = {"x-stamp": "v2"}
    hello = yaml.safe_load(yaml.safe_dump(HELLO))
    hello["nodes"][1]["status"] = 201
    changed = write_workflows(tmp_path / "changed", orders, hello)

    code, out, _ = replay(capsys, flowfile, "--workflows", changed)

    assert code == 1
    assert re.search(r"^changed +#1 GET .*/orders \(10-orders\)$", out, re.M)
    assert "header x-stamp: 'v1' -> 'v2'" in out
    assert "body $.first: added 1" in out
    assert "status: 200 -> 201" in out
    assert re.search(r"^same +#3 ", out, re.M)
    assert "3 flow(s): 1 same, 2 changed, 0 skipped" in out


def test_the_replay_starts_from_the_client_request(recording, capsys, tmp_path):
    """The flow file's request is the rewritten one; the replay must run
    the workflow on what the client sent (x-user, not x-forwarded-user)."""
    flowfile, _ = recording
    orders = yaml.safe_load(yaml.safe_dump(ORDERS))
    orders["nodes"][0]["output"] = "response.headers"  # now visible to the client
    del orders["nodes"][2]  # (one writer per input port)
    code, out, _ = replay(capsys, flowfile, "--workflows", write_workflows(tmp_path / "w2", orders))
    assert code == 1
    assert "header x-forwarded-user: added 'ada'" in out
    assert "header x-stamp: removed (was 'v1')" in out


def test_a_corrupt_flow_file_is_bad_input(recording, capsys, tmp_path):
    flowfile, workflows = recording
    broken = tmp_path / "broken.mitm"
    broken.write_bytes(flowfile.read_bytes()[:-40])
    code, out, err = replay(capsys, broken, "--workflows", workflows)
    assert code == 2 and out == ""
    assert "not a mitmproxy flow file" in err
    garbage = tmp_path / "garbage.mitm"
    garbage.write_bytes(b"this is not a flow file")
    assert replay(capsys, garbage, "--workflows", workflows)[0] == 2
    assert replay(capsys, tmp_path / "missing.mitm", "--workflows", workflows)[0] == 2


def test_the_plugin_replays_and_asserts(recording, datakit, tmp_path):
    flowfile, workflows = recording
    report = datakit.replay(flowfile, workflows=workflows)
    assert [f.outcome for f in report.flows] == ["same", "same", "same"]
    report.assert_unchanged()

    orders = yaml.safe_load(yaml.safe_dump(ORDERS))
    orders["nodes"][2]["values"] = {"x-stamp": "v2"}
    changed = datakit.replay(flowfile, workflows=write_workflows(tmp_path / "w3", orders))
    (flow,) = changed.changed
    assert flow.number == 1 and flow.diff == ["header x-stamp: 'v1' -> 'v2'"]
    with pytest.raises(AssertionError, match=r"1 flow\(s\) changed[\s\S]*x-stamp"):
        changed.assert_unchanged()
    # headers that vary by design can be left out
    assert datakit.replay(flowfile, workflows=tmp_path / "w3", ignore_headers=["x-stamp"]).ok


async def test_the_plugin_replays_in_async_tests(recording, datakit):
    flowfile, workflows = recording
    report = await datakit.areplay(flowfile, workflows=workflows)
    assert report.ok and len(report.flows) == 3


def test_a_response_the_workflow_left_alone_is_replayed_from_the_record(tmp_path, start_mitmdump, capsys):
    """A workflow that changes only the request keeps no copy of the
    upstream's response (the recorded one is it): the replay still
    serves the upstream's answer from the record."""
    from mitmproxy import io

    tagged = {"match": {"paths": ["/tagged"]},
              "nodes": [{"name": "TAG", "type": "static", "values": {"x-tag": "t1"}, "output": "service_request.headers"}]}
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    (workflows / "tagged.yaml").write_text(yaml.safe_dump(tagged, sort_keys=False))
    flowfile = tmp_path / "flows.mitm"
    with MockServer() as upstream:
        upstream.route("GET", "/tagged", lambda req: Reply(json={"tag": req.header("x-tag")}, headers={"x-up": "yes"}))
        mitm = start_mitmdump(workflows, args=["-w", str(flowfile)], quiet=True)
        with mitm.client() as c:
            assert c.get(f"{upstream.url}/tagged").json() == {"tag": "t1"}
        assert mitm.stop() == 0
    with flowfile.open("rb") as f:
        (flow,) = list(io.FlowReader(f).stream())
    assert flow.metadata["datakit_originals"]["service_response"] == "as recorded"

    code, out, err = replay(capsys, flowfile, "--workflows", workflows)
    assert code == 0, out + err
    assert "1 flow(s): 1 same, 0 changed, 0 skipped" in out

    tagged["nodes"].append({"name": "MARK", "type": "static", "values": {"x-mark": "m"}, "output": "response.headers"})
    (workflows / "tagged.yaml").write_text(yaml.safe_dump(tagged, sort_keys=False))
    code, out, _ = replay(capsys, flowfile, "--workflows", workflows)
    assert code == 1
    assert "header x-mark: added 'm'" in out
    assert "body" not in out.split("changed", 1)[1]  # the upstream's body, from the record


def _crafted_flowfile(path: Path, **metadata) -> Path:
    """One flow to /hello (answered by HELLO's exit), with `metadata` as a
    hostile flow file could hold it."""
    from mitmproxy import io
    from mitmproxy.test import tflow

    flow = tflow.tflow(resp=True)
    flow.request.path = "/hello"
    flow.metadata.update(metadata)
    with path.open("wb") as f:
        io.FlowWriter(f).add(flow)
    return path


def _request_state() -> dict:
    from mitmproxy.test import tflow

    return tflow.tflow().request.get_state()


@pytest.mark.parametrize(
    ("originals", "says"),
    [
        ({"request": {}}, "flow #1: the kept client request has no"),
        ({"request": {**_request_state(), "host": 5}}, "flow #1: the kept client request's 'host' is a int"),
        ({"request": {**_request_state(), "port": 70000}}, "'port' is out of range"),
        ({"request": {**_request_state(), "headers": [[b"a", 1]]}}, "headers are not a list of [name, value] byte pairs"),
        ({"request": {**_request_state(), "evil": 1}}, "unknown field 'evil'"),
        ({"request": _request_state(), "service_response": {"status_code": "x"}}, "the kept upstream response has no"),
    ],
)
def test_a_flow_with_crafted_originals_is_bad_input_naming_the_flow(tmp_path, capsys, originals, says):
    flowfile = _crafted_flowfile(tmp_path / "crafted.mitm", datakit_originals=originals, datakit={"workflow": "hello", "nodes": []})
    code, out, err = replay(capsys, flowfile, "--workflows", write_workflows(tmp_path / "w"))
    assert code == 2, out + err
    assert f"datakit replay: {flowfile}: {says}" in err if says.startswith("flow") else says in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(None, id="nested 100,000 deep"),
        pytest.param(b"999999999999:" + b"x" * 10, id="a declared length of 1 TB"),
    ],
)
def test_hostile_tnetstrings_are_bad_input(tmp_path, capsys, content):
    if content is None:  # lists in lists: mitmproxy's reader recurses once per level
        content = b"0:]"
        for _ in range(100_000):
            content = b"%d:%s]" % (len(content), content)
    flowfile = tmp_path / "hostile.mitm"
    flowfile.write_bytes(content)
    code, out, err = replay(capsys, flowfile, "--workflows", write_workflows(tmp_path / "w"))
    assert code == 2 and out == ""
    assert f"datakit replay: {flowfile}: not a mitmproxy flow file" in err
    # datakit run reads flow files too
    assert main(["run", str(tmp_path / "w"), "--request", str(flowfile)]) == 2
    assert "not a mitmproxy flow file" in capsys.readouterr().err


def test_a_flow_file_cannot_repaint_the_terminal(tmp_path, capsys):
    """The URL, the body diff: what a flow file holds reaches the terminal escaped."""
    from mitmproxy import io
    from mitmproxy.test import tflow

    flow = tflow.tflow(resp=True)
    flow.request.path = "/hello\x1b]0;PWNED\x07"  # HELLO answers it
    flow.response.headers["content-type"] = "text/plain"
    flow.response.content = b"recorded\x1b[2J\xe2\x80\xae\n"
    flowfile = tmp_path / "crafted.mitm"
    with flowfile.open("wb") as f:
        io.FlowWriter(f).add(flow)
    code, out, _ = replay(capsys, flowfile, "--workflows", write_workflows(tmp_path / "w"))
    assert code == 1
    assert "/hello\\x1b]0;PWNED\\x07" in out and "recorded\\x1b[2J\\u202e" in out, out
    assert not re.search("[\x1b\x07\u202e]", out), out


def test_a_long_flow_file_is_replayed_one_flow_at_a_time(tmp_path, capsys):
    """500 flows of 40 KB (20 MB): the replay holds about one at a time,
    not the file (100,000 flows once took 917 MB, now 143 MB of RSS)."""
    import tracemalloc

    from mitmproxy import io
    from mitmproxy.test import tflow

    flow = tflow.tflow(resp=True)
    flow.request.path = "/plain"
    flow.response.content = b"x" * 40_000
    flowfile = tmp_path / "long.mitm"
    with flowfile.open("wb") as f:
        writer = io.FlowWriter(f)
        for _ in range(500):
            writer.add(flow)
    workflows = write_workflows(tmp_path / "w")
    replay(capsys, _crafted_flowfile(tmp_path / "one.mitm"), "--workflows", workflows)  # imports done before measuring
    tracemalloc.start()
    try:
        code, out, err = replay(capsys, flowfile, "--workflows", workflows)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert code == 0, out + err
    assert "500 flow(s): 500 same, 0 changed, 0 skipped" in out
    assert peak < 5_000_000, peak  # the flows: 20 MB
