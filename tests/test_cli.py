"""The `datakit` command: validate, graph, run, schema."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mitmdatakit.cli import main
from mitmdatakit.config import load_file
from mitmdatakit.errors import ConfigError
from tests.harness import REPO, MockServer, Reply

DATAKIT = Path(sys.executable).parent / "datakit"


def write(path: Path, doc) -> Path:
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
    return path


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


EXIT = {"name": "EXIT", "type": "exit", "status": 204}

# both phases, a branch, implicit nodes, a call fed node-wise by `request`
TWO_PHASES = {
    "nodes": [
        {"name": "CALL", "type": "call", "url": "http://127.0.0.1:9/x", "input": "request"},
        {"name": "HDRS", "type": "jq", "input": "CALL.body", "jq": '{"x-got": .id}', "output": "service_request.headers"},
        {"name": "IS_OK", "type": "jq", "input": "service_response.status", "jq": ". < 400"},
        {"name": "CHECK", "type": "branch", "input": "IS_OK", "then": ["DECORATE"], "else": ["FAIL"]},
        {"name": "DECORATE", "type": "jq", "inputs": {"up": "service_response.body", "call": "CALL.body"}, "jq": ".up + {call: .call}", "output": "response.body"},
        {"name": "FAIL", "type": "exit", "status": 502},
        {"name": "end", "type": "static", "values": {"x-via": "datakit"}, "output": "response.headers"},
    ]
}


# -- validate ----------------------------------------------------------------------


def test_validate_accepts_the_shipped_workflows(capsys):
    code, out, _ = cli(capsys, "validate", REPO / "workflows")
    assert code == 0
    assert re.search(r"^ok +.*10-hello\.yaml: workflow '10-hello', 4 node\(s\)$", out, re.M)
    assert "0 invalid" in out


def test_validate_reports_every_invalid_file_with_file_node_and_field(tmp_path, capsys):
    d = tmp_path / "wfs"
    d.mkdir()
    write(d / "a-good.yaml", {"nodes": [EXIT]})
    bad_url = write(d / "b-bad-url.yaml", {"nodes": [EXIT, {"name": "CALL", "type": "call", "url": "ftp://x"}]})
    bad_conn = write(d / "c-bad-conn.yaml", {"nodes": [{"name": "J", "type": "jq", "jq": ".", "input": "NOPE.body"}]})
    write(d / "d-not-yaml.json", "{nodes: ")
    (d / "notes.txt").write_text("not a workflow")

    code, out, _ = cli(capsys, "validate", d)
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("ok ") and "a-good.yaml" in lines[0]
    # each error names the file, the node (index, name, type) and the field
    assert f"error {bad_url}: node #2 'CALL' (call): field 'url': invalid URL 'ftp://x'" in out
    assert f"error {bad_conn}: node #1 'J' (jq): field 'input': " in out and "unknown node 'NOPE'" in out
    assert "d-not-yaml.json" in out and "invalid JSON" in out
    assert "notes.txt" not in out
    assert lines[-1] == "4 file(s) checked, 3 invalid"
    # exactly the addon loader's messages
    with pytest.raises(ConfigError) as info:
        load_file(bad_url)
    assert f"error {info.value}" in lines


def test_validate_takes_several_paths_and_reports_missing_ones(tmp_path, capsys):
    good = write(tmp_path / "good.yaml", {"nodes": [EXIT]})
    code, out, _ = cli(capsys, "validate", good, tmp_path / "missing.yaml")
    assert code == 1
    assert "ok    " in out and "missing.yaml" in out and "no such file or directory" in out
    assert cli(capsys, "validate", good, good)[0] == 0


def test_validate_json_output(tmp_path, capsys):
    bad = write(tmp_path / "bad.yaml", {"nodes": [{"name": "E", "type": "exit", "status": 99}]})
    code, out, _ = cli(capsys, "validate", "--json", bad)
    assert code == 1
    doc = json.loads(out)
    assert doc["valid"] is False
    (entry,) = doc["files"]
    assert entry["file"] == str(bad)
    assert (entry["node"], entry["index"], entry["node_type"], entry["field"]) == ("E", 1, "exit", "status")


# -- graph -----------------------------------------------------------------------------


def mermaid_of(tmp_path, capsys, doc) -> str:
    code, out, err = cli(capsys, "graph", write(tmp_path / "wf.yaml", doc))
    assert code == 0, err
    return out


def test_mermaid_graph_shows_nodes_ports_phases_and_branches(tmp_path, capsys):
    out = mermaid_of(tmp_path, capsys, TWO_PHASES)
    lines = out.splitlines()
    assert "flowchart LR" in lines
    before = lines[lines.index('  subgraph before_proxying["Before proxying (request phase)"]'):]
    before = before[: before.index("  end")]
    after = lines[lines.index('  subgraph after_upstream["After the upstream answered (response phase)"]'):]
    after = after[: after.index("  end")]
    ids_before = {re.match(r"\s+(\w+)", line).group(1) for line in before[1:]}
    ids_after = {re.match(r"\s+(\w+)", line).group(1) for line in after[1:]}
    # `end` (a static) feeds `response` but needs nothing: it runs before proxying
    assert ids_before == {"i_request", "n_CALL", "n_HDRS", "n_end", "i_service_request"}
    assert ids_after == {"i_service_response", "n_IS_OK", "n_CHECK", "n_DECORATE", "n_FAIL", "i_response"}
    # node types in the labels; implicit nodes drawn as stadiums
    assert '    n_CALL["CALL<br/><small>call: GET http://127.0.0.1:9/x</small>"]' in lines
    assert '    i_request(["request<br/><small>implicit</small>"])' in lines
    # node-wise object -> object expands to the shared ports, one labelled edge
    assert '  i_request -->|"request.body -> CALL.body<br/>request.headers -> CALL.headers<br/>request.query -> CALL.query"| n_CALL' in lines
    assert '  n_HDRS -->|"HDRS -> service_request.headers"| i_service_request' in lines
    assert '  i_service_response -->|"service_response.body -> DECORATE.up"| n_DECORATE' in lines
    # branch control edges are dotted and labelled
    assert '  n_CHECK -.->|"then"| n_DECORATE' in lines
    assert '  n_CHECK -.->|"else"| n_FAIL' in lines
    assert "  before_proxying ~~~ after_upstream" in lines  # the phases in reading order
    assert "  class i_request,i_service_response,i_service_request,i_response implicit" in lines


def test_mermaid_output_follows_the_syntax_rules(tmp_path, capsys):
    """Ids are plain words (no '-', no keyword like `end`), every label is
    quoted and free of raw quotes and HTML-breaking characters."""
    doc = {"nodes": [
        {"name": "a-b", "type": "static", "values": {'we"ird#<k>&|': 1, "x": 2}},
        {"name": "end", "type": "jq", "inputs": {"w": 'a-b.we"ird#<k>&|', "x": "a-b.x"}, "jq": "."},
        {"name": "a_b", "type": "exit", "input": "end"},
    ]}
    out = mermaid_of(tmp_path, capsys, doc)
    body = [line for line in out.splitlines() if line and not line.startswith("%%")]
    assert body[0] == "flowchart LR"
    opened = sum(line.strip().startswith("subgraph ") for line in body)
    assert opened == sum(line.strip() == "end" for line in body) == 1
    node_line = re.compile(r'^    (\w+)(\["[^"]*"\]|\(\["[^"]*"\]\))$')
    edge_line = re.compile(r'^  (\w+) (-->|-\.->)\|"([^"]*)"\| (\w+)$')
    ids = set()
    for line in body[1:]:
        stripped = line.strip()
        if stripped.startswith(("subgraph ", "classDef ", "class ")) or stripped in ("end", "before_proxying ~~~ after_upstream"):
            continue
        m = node_line.match(line) or edge_line.match(line)
        assert m, f"unexpected Mermaid line: {line!r}"
        if node_line.match(line):
            ids.add(m.group(1))
            label = m.group(2)
        else:
            label = m.group(3)
        assert not re.search(r"[<&]", re.sub(r"</?(br/|small)>", "", label)), label
    assert ids == {"n_a_b", "n_end", "n_a_b_2"}
    assert "a-b.we#34;ird#35;#60;k>#38;#124; -> end.w" in out


@pytest.mark.skipif(not os.environ.get("DATAKIT_MMDC"), reason="set DATAKIT_MMDC to a mermaid-cli (mmdc) command to render")
def test_mermaid_renders_with_mermaid_cli(tmp_path, capsys):
    src = tmp_path / "g.mmd"
    src.write_text(mermaid_of(tmp_path, capsys, TWO_PHASES))
    out = tmp_path / "g.svg"
    proc = subprocess.run([*os.environ["DATAKIT_MMDC"].split(), "-i", str(src), "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    svg = out.read_text()
    assert "Syntax error" not in svg and "DECORATE" in svg and "request.body -&gt; CALL.body" in svg


def test_dot_graph(tmp_path, capsys):
    code, out, _ = cli(capsys, "graph", "--format", "dot", write(tmp_path / "wf.yaml", TWO_PHASES))
    assert code == 0
    assert out.splitlines()[1] == 'digraph "wf" {'
    assert "subgraph cluster_before_proxying {" in out and "subgraph cluster_after_upstream {" in out
    assert '"request" -> "CALL" [label="request.body -> CALL.body\\nrequest.headers -> CALL.headers\\nrequest.query -> CALL.query"];' in out
    assert '"CHECK" -> "FAIL" [label="else", style="dashed"' in out
    assert '"service_response" [label="service_response\\nimplicit", shape=ellipse, style="dashed"];' in out
    if shutil.which("dot"):
        proc = subprocess.run(["dot", "-Tsvg"], input=out, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr


def test_text_graph(tmp_path, capsys):
    code, out, _ = cli(capsys, "graph", "--format", "text", write(tmp_path / "wf.yaml", TWO_PHASES))
    assert code == 0
    assert "implicit nodes used: request, service_response, service_request, response" in out
    before, after = out.split("After the upstream answered (response phase):")
    assert "CALL" in before and "HDRS" in before and "DECORATE" not in before
    assert "DECORATE" in after and "service_response" in after
    assert "  request.headers -> CALL.headers" in out
    assert "  CHECK --else--> FAIL" in out


def test_graph_refuses_directories_and_invalid_workflows(tmp_path, capsys):
    code, _, err = cli(capsys, "graph", REPO / "workflows")
    assert code == 2 and "10-hello.yaml" in err
    bad = write(tmp_path / "bad.yaml", {"nodes": [{"name": "X", "type": "nope"}]})
    code, out, err = cli(capsys, "graph", bad)
    assert code == 1 and out == "" and "unknown node type 'nope'" in err and "node #1 'X'" in err


# -- run ---------------------------------------------------------------------------------


def test_run_a_url_against_the_shipped_workflows(capsys):
    code, out, _ = cli(capsys, "run", REPO / "workflows", "--request", "http://datakit.local/hello?name=cli")
    assert code == 0
    result = json.loads(out)
    assert result["workflow"] == "10-hello" and result["outcome"] == "exit"
    assert result["response"]["status"] == 200
    assert result["response"]["body"]["message"] == "Hello, cli!"
    assert result["response"]["headers"]["x-datakit-workflow"] == "hello"


@pytest.fixture
def api():
    with MockServer() as srv:
        srv.route("GET", "/user", lambda req: Reply(json={"id": 7, "auth": req.header("authorization")}))
        yield srv


@pytest.fixture
def call_workflow(tmp_path, api):
    return write(tmp_path / "wf.yaml", {
        "nodes": [
            {"name": "USER", "type": "call", "url": f"{api.url}/user", "inputs": {"headers": "request.headers"}},
            {"name": "HDRS", "type": "jq", "input": "USER.body", "jq": '{"x-user-id": (.id | tostring), "x-auth-seen": .auth}', "output": "service_request.headers"},
            {"name": "STATUS", "type": "jq", "input": "service_response.status", "jq": '{"x-upstream": tostring}', "output": "response.headers"},
        ]
    })


def test_run_prints_the_service_request(tmp_path, capsys, api, call_workflow):
    request = write(tmp_path / "req.yaml", {
        "method": "POST",
        "url": "http://api.test/items?a=1",
        "headers": {"Authorization": "Bearer abc", "X-Multi": ["1", "2"]},
        "body": {"name": "thing"},
    })
    code, out, _ = cli(capsys, "run", call_workflow, "--request", request)
    assert code == 0
    result = json.loads(out)
    assert result["outcome"] == "service_request"
    sent = result["service_request"]
    assert (sent["method"], sent["url"]) == ("POST", "http://api.test/items?a=1")
    assert sent["body"] == {"name": "thing"}
    assert sent["headers"]["content-type"] == "application/json"
    assert sent["headers"]["x-multi"] == ["1", "2"]
    assert sent["headers"]["x-user-id"] == "7"
    assert sent["headers"]["x-auth-seen"] == "Bearer abc"
    assert "trace" not in result
    # the call really happened
    assert api.last_request.header("authorization") == "Bearer abc"


def test_run_with_a_service_response_and_trace(tmp_path, capsys, call_workflow):
    response = write(tmp_path / "resp.json", json.dumps({"status": 201, "headers": {"x-up": "1"}, "body": {"ok": True}}))
    code, out, _ = cli(capsys, "run", call_workflow, "--request", "http://api.test/", "--service-response", response, "--trace")
    assert code == 0
    result = json.loads(out)
    assert result["outcome"] == "response"
    assert result["response"]["status"] == 201
    assert result["response"]["headers"]["x-upstream"] == "201"
    assert result["response"]["headers"]["x-up"] == "1"
    assert result["response"]["body"] == {"ok": True}
    trace = result["trace"]
    assert trace["status"] == "PLAN_COMPLETE"
    # declared nodes first, then the implicit ones they use (as in Kong's trace)
    assert [n["name"] for n in trace["nodes"]][:3] == ["USER", "HDRS", "STATUS"]
    assert all(n["type"] == n["name"] for n in trace["nodes"][3:])
    assert {e["action"] for e in trace["events"]} >= {"run", "complete"}


def test_run_against_a_real_upstream(capsys, call_workflow):
    with MockServer() as upstream:
        code, out, _ = cli(capsys, "run", call_workflow, "--request", "http://api.test/echo?q=1", "--upstream", upstream.url)
        received = upstream.last_request
    assert code == 0
    result = json.loads(out)
    assert result["response"]["status"] == 200
    assert result["response"]["body"]["path"] == "/echo"
    assert received.header("x-user-id") == "7"


def test_run_failure_exits_1_with_the_client_response(tmp_path, capsys, api):
    api.route("GET", "/user", Reply(status=503))
    wf = write(tmp_path / "wf.yaml", {"debug": True, "nodes": [{"name": "USER", "type": "call", "url": f"{api.url}/user"}]})
    code, out, err = cli(capsys, "run", wf, "--request", "http://api.test/")
    assert code == 1
    result = json.loads(out)
    assert result["outcome"] == "failed"
    assert result["error"]["node"] == "USER" and "503" in result["error"]["message"]
    assert result["response"]["status"] == 500
    assert result["response"]["body"]["node"] == {"index": 1, "name": "USER", "type": "call"}
    assert "failed at node 'USER'" in err


def test_run_a_saved_mitmproxy_flow(tmp_path, capsys, call_workflow):
    from mitmproxy import io

    from mitmdatakit.offline import build_flow, build_response

    saved = build_flow("PUT", "http://saved.test/thing", {"authorization": "Basic eA=="}, "raw text")
    saved.response = build_response({"status": 404, "body": "old answer"})
    path = tmp_path / "flows.mitm"
    with path.open("wb") as f:
        io.FlowWriter(f).add(saved)
    code, out, _ = cli(capsys, "run", call_workflow, "--request", path)
    assert code == 0
    sent = json.loads(out)["service_request"]
    assert (sent["method"], sent["url"], sent["body"]) == ("PUT", "http://saved.test/thing", "raw text")
    assert sent["headers"]["x-auth-seen"] == "Basic eA=="
    # the flow's response can serve as the service response
    code, out, _ = cli(capsys, "run", call_workflow, "--request", path, "--service-response", path)
    assert json.loads(out)["response"]["headers"]["x-upstream"] == "404"


def test_run_reports_bad_input(tmp_path, capsys, call_workflow):
    code, _, err = cli(capsys, "run", call_workflow, "--request", write(tmp_path / "r.yaml", {"method": "GET"}))
    assert code == 2 and "'url' is required" in err
    code, _, err = cli(capsys, "run", call_workflow, "--request", tmp_path / "nope.yaml")
    assert code == 2 and "no such file" in err
    bad = write(tmp_path / "bad.yaml", {"nodes": [{"name": "X", "type": "nope"}]})
    code, _, err = cli(capsys, "run", bad, "--request", "http://a.test/")
    assert code == 2 and "unknown node type" in err


def test_run_without_a_matching_workflow(capsys):
    code, out, err = cli(capsys, "run", REPO / "workflows", "--request", "http://unmatched.test/x")
    assert code == 0
    assert json.loads(out)["outcome"] == "no_workflow"
    assert "no workflow" in err


# -- the installed command -------------------------------------------------------------


def test_the_console_script(tmp_path):
    assert DATAKIT.exists()
    proc = subprocess.run([str(DATAKIT), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for command in ("validate", "graph", "run", "schema"):
        assert command in proc.stdout
    bad = write(tmp_path / "bad.yaml", {"nodes": [{"name": "E", "type": "exit", "stauts": 200}]})
    proc = subprocess.run([str(DATAKIT), "validate", str(REPO / "workflows"), str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "10-hello.yaml: workflow '10-hello'" in proc.stdout
    assert f"error {bad}: node #1 'E' (exit): field 'stauts': unknown attribute 'stauts'" in proc.stdout


def test_graph_labels_leave_out_url_credentials(tmp_path, capsys):
    doc = {"nodes": [{"name": "CALL", "type": "call", "method": "POST", "url": "https://user:s3cret@api.test/x?y=1"}]}
    for fmt in ("mermaid", "dot", "text"):
        code, out, _ = cli(capsys, "graph", "--format", fmt, write(tmp_path / "wf.yaml", doc))
        assert code == 0
        assert "s3cret" not in out and "POST https://api.test/x?y=1" in out


# -- validate: every error, each saying what was expected ------------------------------

MANY_ERRORS = {
    "nodes": [
        {"name": "A", "type": "jq", "jq": ".foo | ("},
        {"name": "B", "type": "exit", "status": 99},
        {"name": "C", "type": "call", "url": "http://x/", "bogus": 1},
        {"name": "D", "type": "nope"},
        {"name": "E", "type": "static", "values": {"a": 1}},
        {"name": "F", "type": "call", "url": "ftp://x"},
    ],
}


def test_validate_reports_every_error_of_a_file(capsys, tmp_path):
    f = write(tmp_path / "many.yaml", MANY_ERRORS)
    code, out, _ = cli(capsys, "validate", f)
    assert code == 1
    errors = [line for line in out.splitlines() if line.startswith("error ")]
    assert [re.search(r"node #(\d)", line).group(1) for line in errors] == ["1", "2", "3", "4", "6"], out
    assert "jq syntax error, unexpected end of file" in errors[0]
    assert "jq: error" not in out and "syntax error: syntax error" not in out  # no doubled prefixes
    assert "field 'status': value should be between 200 and 599 (got 99)" in errors[1]
    assert any("field 'bogus': unknown attribute 'bogus' (known: " in line and "url" in line for line in errors)
    assert any("invalid URL 'ftp://x' (expected http:// or https://)" in line for line in errors)
    assert "unknown node type 'nope' (known: branch, cache, call" in errors[3]
    assert out.endswith("1 file(s) checked, 1 invalid\n")
    # --json: all of them, the first one's fields flat as before
    code, out, _ = cli(capsys, "validate", "--json", f)
    (entry,) = json.loads(out)["files"]
    assert len(entry["errors"]) == 5 and entry["node"] == "A" and entry["field"] == "jq"
    # the addon's loader still stops at the first error
    with pytest.raises(ConfigError, match="jq syntax error") as caught:
        load_file(f)
    assert caught.value.node == "A"


@pytest.mark.parametrize(("inputs", "expected"), [
    ({"input": "A.nope", "jq": "."}, "node 'A' has no output port 'nope' (its output ports: a, b)"),
])
def test_validate_names_the_valid_ports(capsys, tmp_path, inputs, expected):
    doc = {"nodes": [
        {"name": "A", "type": "static", "values": {"a": 1, "b": 2}},
        {"name": "J", "type": "jq", **inputs},
        {"name": "X", "type": "exit", "inputs": {"bodyx": "A"}},
    ]}
    code, out, _ = cli(capsys, "validate", write(tmp_path / "ports.yaml", doc))
    assert code == 1 and expected in out, out
    doc["nodes"][1] = {"name": "J", "type": "jq", "input": "A.a", "jq": "."}
    code, out, _ = cli(capsys, "validate", write(tmp_path / "ports.yaml", doc))
    assert "node 'X' has no input port 'bodyx' (its input ports: body, headers)" in out, out


def test_validate_escapes_terminal_control_characters(tmp_path, capsys):
    """File names (workflow names come from them) cannot repaint the
    terminal: an OSC retitle, a clear screen, a bidi override."""
    write(tmp_path / "a\x1b]0;PWNED\x07\x1b[2J\u202e.yaml", {"nodes": [EXIT]})
    write(tmp_path / "b\x1b[31m.yaml", {"nodes": []})
    code, out, _ = cli(capsys, "validate", str(tmp_path))
    assert code == 1
    assert "a\\x1b]0;PWNED\\x07\\x1b[2J\\u202e.yaml" in out and "b\\x1b[31m.yaml" in out
    assert not re.search("[\x1b\x07\u202e]", out), out
