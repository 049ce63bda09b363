"""Reliability, secrets: vault values and what a workflow derives from them
stay out of log lines, traces, flow files and `datakit run` output.

Traffic is left as it is: a header a workflow builds from a secret is sent
to the upstream and recorded in a flow file like any other header; what
Datakit itself attaches to a flow (metadata, comment, trace) is redacted.
The workflows here send no secret in traffic, so the whole flow file and
the whole CLI output must be free of it.
"""

from __future__ import annotations

import base64
import json

from mitmproxy import io as mitm_io

from mitmdatakit.cli import main
from tests.harness import free_port
from tests.reliability._support import write_workflows

SECRET = "s3cr3t-Zq9XvW"
DERIVED = base64.b64encode(f"user:{SECRET}".encode()).decode()
BEARER = f"Bearer {SECRET}"
CLEAN = "visible-clean-value"
VAULT = {"vault": {"token": "{vault://env/DK_SECRET_TEST}"}}
TRACE_ON = {"X-DataKit-Debug-Trace": "true"}


def _workflows(closed_port: int) -> dict[str, dict]:
    return {
        # a call to a URL built from the secret fails (nothing listens)
        "leak": {"match": {"paths": ["/leak"]}, "debug": True, "resources": VAULT, "nodes": [
            {"name": "URL", "type": "jq", "inputs": {"token": "vault.token"},
             "jq": f'"http://127.0.0.1:{closed_port}/api/" + .token + "?key=" + .token'},
            {"name": "CALL", "type": "call", "url": "http://127.0.0.1/", "inputs": {"url": "URL"}},
            {"name": "EXIT", "type": "exit", "inputs": {"body": "CALL.body"}},
        ]},
        # values derived from the secret (base64, concatenation) next to a
        # clean one; only the clean one reaches the client
        "derive": {"match": {"paths": ["/derive"]}, "debug": True, "resources": VAULT, "nodes": [
            {"name": "AUTH", "type": "jq", "inputs": {"token": "vault.token"},
             "jq": '{basic: ("user:" + .token | @base64), bearer: ("Bearer " + .token)}'},
            {"name": "CLEAN", "type": "static", "values": {"label": CLEAN}},
            {"name": "MIX", "type": "jq", "inputs": {"auth": "AUTH", "clean": "CLEAN.label"}, "jq": ".clean"},
            {"name": "EXIT", "type": "exit", "inputs": {"body": "MIX"}},
        ]},
    }


def _no_secret(text: str, where: str) -> None:
    for value in (SECRET, DERIVED, BEARER):
        assert value not in text, f"{value!r} leaked into {where}"


def _start(tmp_path, start_mitmdump, args=()):
    cfg = write_workflows(tmp_path / "wf", _workflows(free_port()))
    return start_mitmdump(cfg, env={"DK_SECRET_TEST": SECRET}, args=list(args))


def test_failure_log_and_flow_file_hold_no_secret(tmp_path, start_mitmdump):
    flows_out = tmp_path / "flows.out"
    mitm = _start(tmp_path, start_mitmdump, args=["-w", str(flows_out)])
    with mitm.client() as c:
        r = c.get("http://api.test/leak")
        assert r.status_code == 500
        _no_secret(r.text, "the error body")
        traced = c.get("http://api.test/leak", headers=TRACE_ON)
        assert traced.status_code == 500
        derive = c.get("http://api.test/derive", headers=TRACE_ON)
        assert derive.status_code == 200
    mitm.wait_for_log(r"workflow 00-leak failed at node 'CALL'")
    mitm.stop()

    log = mitm.log_text()
    assert "failed at node 'CALL'" in log
    _no_secret(log, "the mitmdump log")
    assert "/api/[REDACTED]" in log  # the call's URL, named but redacted

    raw = flows_out.read_bytes()
    with flows_out.open("rb") as f:
        flows = list(mitm_io.FlowReader(f).stream())
    assert len(flows) == 3
    assert all("datakit" in f.metadata for f in flows)
    assert all(f.comment.startswith("datakit:") for f in flows)
    for flow in flows:
        _no_secret(json.dumps(flow.metadata, default=str) + flow.comment, "flow metadata or comment")
    _no_secret(raw.decode("utf-8", "replace"), "the flow file")
    assert CLEAN.encode() in raw


def test_debug_trace_redacts_derived_values_and_shows_clean_ones(tmp_path, start_mitmdump):
    mitm = _start(tmp_path, start_mitmdump)
    with mitm.client() as c:
        r = c.get("http://api.test/derive", headers=TRACE_ON)
    assert r.status_code == 200
    trace = r.json()
    _no_secret(r.text, "the trace")
    events = {(e["name"], e["action"]): {v["key"]: v["value"] for v in e["values"]} for e in trace["events"]}
    # tracked through the graph: AUTH derives from the vault, so do its
    # outputs and MIX's `auth` input; MIX's clean input stays visible
    assert set(events[("AUTH", "complete")].values()) == {"[REDACTED]"}
    assert events[("MIX", "run")] == {"auth": "[REDACTED]", "clean": CLEAN}
    assert events[("CLEAN", "complete")] == {"label": CLEAN}


def test_datakit_run_output_holds_no_secret(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DK_SECRET_TEST", SECRET)
    cfg = write_workflows(tmp_path / "wf", _workflows(free_port()))
    for path in ("/leak", "/derive"):
        code = main(["run", str(cfg), "--request", f"http://api.test{path}", "--trace"])
        captured = capsys.readouterr()
        assert code in (0, 1), captured
        _no_secret(captured.out + captured.err, f"`datakit run` output for {path}")
        assert "[REDACTED]" in captured.out
