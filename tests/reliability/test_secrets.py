"""Reliability, secrets: vault values and what a workflow derives from them
stay out of log lines, traces, flow files and `datakit run` output.

Traffic is left as it is: a header, query value or body a workflow builds
from a secret reaches the upstream (or, in its answer, the client) for real;
the recorded flow (`-w` flow files, HAR files, mitmdump's flow log line at
any `flow_detail`, mitmweb) shows `[REDACTED]` in its place: Datakit scrubs
the request after sending it, and the response before mitmproxy's recorders
see it, restoring it for the client just before mitmproxy sends it
(scrub.py, restore.py).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from mitmproxy import io as mitm_io

from mitmdatakit.cli import main
from tests.harness import Reply, free_port
from tests.harness.mitmweb import Mitmweb
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


# -- the traffic a workflow writes from a secret ---------------------------------

CLIENT_HEADER = "client-sent-visible"
STATIC_QUERY = "static-visible"


def _writer_nodes() -> list[dict]:
    """Writes the secret into the service request three ways: a Bearer
    header, a base64 query value, a JSON body; next to clean values."""
    return [
        {"name": "BEARER", "type": "jq", "inputs": {"token": "vault.token"}, "jq": '"Bearer " + .token',
         "output": "service_request.headers.authorization"},
        {"name": "BASIC", "type": "jq", "inputs": {"token": "vault.token"}, "jq": '"user:" + .token | @base64',
         "output": "service_request.query.sig"},
        {"name": "PLAIN", "type": "static", "values": {"page": STATIC_QUERY}, "outputs": {"page": "service_request.query.page"}},
        {"name": "BODY", "type": "jq", "inputs": {"token": "vault.token"}, "jq": "{password: .token}",
         "output": "service_request.body"},
    ]


def _traffic_workflows(closed_port: int) -> dict[str, dict]:
    return {
        # proxied: the upstream gets the real values
        "send": {"match": {"paths": ["/send"]}, "resources": VAULT, "nodes": _writer_nodes()},
        # answered before proxying: the request was written, never sent
        "exit": {"match": {"paths": ["/exit"]}, "resources": VAULT, "nodes": [
            *_writer_nodes(),
            {"name": "EXIT", "type": "exit", "status": 203, "inputs": {"body": "PLAIN.page"}},
        ]},
        # a failing call after the request was written: the 500 answer
        "fail": {"match": {"paths": ["/fail"]}, "resources": VAULT, "nodes": [
            *_writer_nodes(),
            {"name": "CALL", "type": "call", "url": f"http://127.0.0.1:{closed_port}/down"},
        ]},
    }


def _no_derived(text: str, where: str) -> None:
    _no_secret(text, where)
    assert json.dumps({"password": SECRET}) not in text, f"the body leaked into {where}"


def test_traffic_reaches_upstream_but_records_are_scrubbed(tmp_path, make_mock_server, start_mitmdump):
    mock = make_mock_server()
    mock.route("*", "/send", Reply(body="upstream-answer"))  # not the default echo: it would echo the secret back
    closed = free_port()
    flows_out = tmp_path / "flows.out"
    cfg = write_workflows(tmp_path / "wf", _traffic_workflows(free_port()))
    mitm = start_mitmdump(cfg, env={"DK_SECRET_TEST": SECRET},
                          args=["-w", str(flows_out), "--set", "flow_detail=3"])
    client_headers = {"X-Client": CLIENT_HEADER}
    with mitm.client() as c:
        sent = c.get(mock.url_for("/send"), headers=client_headers)
        exited = c.get(mock.url_for("/exit"), headers=client_headers)
        failed = c.get(mock.url_for("/fail"), headers=client_headers)
        # the upstream is down: mitmproxy's own error (502), after sending
        unreachable = c.get(f"http://127.0.0.1:{closed}/send", headers=client_headers)
    assert sent.status_code == 200 and sent.text == "upstream-answer"
    assert exited.status_code == 203 and exited.text == STATIC_QUERY
    assert failed.status_code == 500
    assert unreachable.status_code == 502
    mitm.wait_for_log(r"workflow 02-fail failed at node 'CALL'")
    mitm.stop()

    # the wire: only the proxied flow reached the upstream, with the real values
    assert len(mock.requests) == 1
    got = mock.requests[0]
    assert got.header("authorization") == BEARER
    assert got.query == {"sig": [DERIVED], "page": [STATIC_QUERY]}
    assert got.json() == {"password": SECRET}
    assert got.header("x-client") == CLIENT_HEADER

    # the flow file: every flow's request scrubbed, clean values kept
    raw = flows_out.read_bytes()
    _no_derived(raw.decode("utf-8", "replace"), "the flow file")
    with flows_out.open("rb") as f:
        flows = {f.request.path.split("?")[0] + f":{f.request.port}": f for f in mitm_io.FlowReader(f).stream()}
    assert len(flows) == 4, list(flows)
    for flow in flows.values():
        req = flow.request
        assert req.headers["authorization"] == "[REDACTED]", flow
        assert req.headers["x-client"] == CLIENT_HEADER
        assert req.query.get("page") == STATIC_QUERY
        assert "sig=[REDACTED]" in req.path
        assert req.get_content() == b"[REDACTED]"
    assert flows[f"/send:{closed}"].error is not None

    # mitmdump's flow lines, headers and bodies (flow_detail=3)
    log = mitm.log_text()
    _no_derived(log, "the mitmdump log at flow_detail=3")
    assert "sig=[REDACTED]" in log and "authorization: [REDACTED]" in log
    assert CLIENT_HEADER in log and STATIC_QUERY in log


# -- the answer a workflow sends the client from a secret -------------------------

SIG = "sig-" + DERIVED  # a response header built from the secret
CLIENT_BODY = json.dumps({"basic": DERIVED}, separators=(",", ":"))


def _answer_workflows() -> dict[str, dict]:
    return {
        # answered before proxying: a body and a header built from the secret
        "exit": {"match": {"paths": ["/exit"]}, "resources": VAULT, "nodes": [
            {"name": "BEARER", "type": "jq", "inputs": {"token": "vault.token"}, "jq": '"Bearer " + .token'},
            {"name": "BODY", "type": "jq", "inputs": {"token": "vault.token"}, "jq": '{basic: ("user:" + .token | @base64)}'},
            {"name": "CLEAN", "type": "static", "values": {"v": CLEAN}},
            {"name": "EXIT", "type": "exit", "status": 201,
             "inputs": {"body": "BODY", "headers.authorization": "BEARER", "headers.x-clean": "CLEAN.v"}},
        ]},
        # proxied: a header built from the secret on the upstream's response
        "respond": {"match": {"paths": ["/respond"]}, "resources": VAULT, "nodes": [
            {"name": "SIG", "type": "jq", "inputs": {"token": "vault.token"}, "jq": '"sig-" + ("user:" + .token | @base64)',
             "output": "response.headers.x-sig"},
        ]},
    }


def _assert_client_got_the_real_answer(exited: httpx.Response, responded: httpx.Response) -> None:
    assert exited.status_code == 201
    assert exited.headers["authorization"] == BEARER
    assert exited.headers["x-clean"] == CLEAN
    assert exited.text == CLIENT_BODY
    assert exited.headers["content-length"] == str(len(CLIENT_BODY))
    assert responded.status_code == 200 and responded.text == "upstream-answer"
    assert responded.headers["x-sig"] == SIG


def _no_answer_secret(text: str, where: str) -> None:
    _no_secret(text, where)
    assert SIG not in text and CLIENT_BODY not in text, f"the answer leaked into {where}"


def test_answer_built_from_a_secret_reaches_the_client_but_not_the_records(tmp_path, make_mock_server, start_mitmdump):
    mock = make_mock_server()
    mock.route("*", "/respond", Reply(body="upstream-answer"))
    flows_out, har_out = tmp_path / "flows.out", tmp_path / "flows.har"
    cfg = write_workflows(tmp_path / "wf", _answer_workflows())
    mitm = start_mitmdump(cfg, env={"DK_SECRET_TEST": SECRET},
                          args=["-w", str(flows_out), "--set", "flow_detail=4", "--set", f"hardump={har_out}"])
    with mitm.client() as c:
        exited = c.get(mock.url_for("/exit"))
        responded = c.get(mock.url_for("/respond"))
    _assert_client_got_the_real_answer(exited, responded)
    mitm.stop()

    log = mitm.log_text()
    _no_answer_secret(log, "the mitmdump log at flow_detail=4")
    assert "vault secret" not in log  # no load-time warning any more
    assert "authorization: [REDACTED]" in log and "x-sig: [REDACTED]" in log
    assert CLEAN in log and "upstream-answer" in log

    raw = flows_out.read_bytes()
    _no_answer_secret(raw.decode("utf-8", "replace"), "the flow file")
    with flows_out.open("rb") as f:
        flows = {fl.request.path: fl for fl in mitm_io.FlowReader(f).stream()}
    assert set(flows) == {"/exit", "/respond"}
    exit_rec, respond_rec = flows["/exit"].response, flows["/respond"].response
    assert exit_rec.status_code == 201
    assert exit_rec.headers["authorization"] == "[REDACTED]"
    assert exit_rec.headers["x-clean"] == CLEAN
    assert exit_rec.get_content() == b"[REDACTED]"
    assert exit_rec.headers["content-length"] == str(len(b"[REDACTED]"))
    assert respond_rec.headers["x-sig"] == "[REDACTED]"
    assert respond_rec.get_content() == b"upstream-answer"

    # SaveHar keeps the flows and writes them at shutdown: after the
    # response went out, so the sent values were taken out again
    har = har_out.read_text()
    _no_answer_secret(har, "the HAR file")
    assert "[REDACTED]" in har


def test_answer_built_from_a_secret_over_http2(tmp_path, start_mitmdump):
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is needed for an HTTP/2 client (httpx prefers http/1.1 in its ALPN)")
    cfg = write_workflows(tmp_path / "wf", _answer_workflows())
    flows_out = tmp_path / "flows.out"
    # lazy: mitmproxy answers the client's TLS (and takes its h2) before connecting upstream
    mitm = start_mitmdump(cfg, env={"DK_SECRET_TEST": SECRET}, args=["-w", str(flows_out)],
                          options={"connection_strategy": "lazy"})
    out = subprocess.run(
        [curl, "-s", "--http2", "--proxy", mitm.proxy_url, "--noproxy", "", "--cacert", str(mitm.ca_cert_path),
         "-D", "-", "https://api.test/exit"],
        capture_output=True, text=True, timeout=20, check=True,
    ).stdout
    head, _, body = out.rpartition("\n\n")  # text mode: CRLF read as LF
    assert "HTTP/2 201" in head
    assert f"authorization: {BEARER}" in head
    assert f"content-length: {len(CLIENT_BODY)}" in head
    assert body == CLIENT_BODY
    mitm.stop()
    _no_answer_secret(flows_out.read_bytes().decode("utf-8", "replace"), "the flow file (HTTP/2)")
    _no_answer_secret(mitm.log_text(), "the mitmdump log (HTTP/2)")


def test_mitmweb_shows_the_answer_scrubbed(tmp_path, make_mock_server):
    mock = make_mock_server()
    mock.route("*", "/respond", Reply(body="upstream-answer"))
    cfg = write_workflows(tmp_path / "wf", _answer_workflows())
    with Mitmweb(cfg, env={"DK_SECRET_TEST": SECRET}, quiet=True) as web, web.api() as api:
        with web.client() as c:
            exited = c.get(mock.url_for("/exit"))
            responded = c.get(mock.url_for("/respond"))
        _assert_client_got_the_real_answer(exited, responded)
        flows = {f["request"]["path"]: f for f in api.flows() if f["type"] == "http"}
        _no_answer_secret(json.dumps(flows), "mitmweb's flow list")
        assert ["authorization", "[REDACTED]"] in flows["/exit"]["response"]["headers"]
        assert ["x-sig", "[REDACTED]"] in flows["/respond"]["response"]["headers"]
        body = api.http.get(f"/flows/{flows['/exit']['id']}/response/content.data")
        body.raise_for_status()
        assert body.content == b"[REDACTED]"
        log = web.log_text()
    _no_answer_secret(log, "the mitmweb log")


def test_an_intercepted_answer_is_sent_real_once_resumed_and_recorded_scrubbed(tmp_path, make_mock_server):
    # the hook task waits for the resume before sending: the rescrub must wait too
    mock = make_mock_server()
    mock.route("*", "/respond", Reply(body="upstream-answer"))
    cfg = write_workflows(tmp_path / "wf", _answer_workflows())
    with Mitmweb(cfg, env={"DK_SECRET_TEST": SECRET}, quiet=True, options={"intercept": "~s"}) as web, web.api() as api:
        with ThreadPoolExecutor(1) as pool, web.client() as c:
            pending = pool.submit(c.get, mock.url_for("/respond"))
            deadline = time.monotonic() + 15
            while not (held := [f for f in api.flows() if f["type"] == "http" and f["intercepted"]]):
                assert time.monotonic() < deadline and not pending.done(), "the response was not intercepted"
                time.sleep(0.05)
            # (while held, the live flow has the real values back: docs/hardening.md, "Intercepted responses")
            api.http.post(f"/flows/{held[0]['id']}/resume", headers={"X-XSRFToken": api.xsrf}).raise_for_status()
            responded = pending.result(timeout=15)
        assert responded.status_code == 200 and responded.headers["x-sig"] == SIG
        (flow,) = [f for f in api.flows() if f["type"] == "http"]
        assert ["x-sig", "[REDACTED]"] in flow["response"]["headers"]
        _no_answer_secret(json.dumps(flow), "mitmweb's flow list after the resume")


def test_datakit_run_redacts_the_service_request_it_prints(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DK_SECRET_TEST", SECRET)
    cfg = write_workflows(tmp_path / "wf", _traffic_workflows(free_port()))
    code = main(["run", str(cfg), "--request", "http://api.test/send"])
    captured = capsys.readouterr()
    assert code == 0, captured
    _no_derived(captured.out + captured.err, "`datakit run` output")
    printed = json.loads(captured.out)["service_request"]
    assert printed["headers"]["authorization"] == "[REDACTED]"
    assert printed["body"] == "[REDACTED]"
    assert printed["url"] == f"http://api.test/send?sig=[REDACTED]&page={STATIC_QUERY}"
