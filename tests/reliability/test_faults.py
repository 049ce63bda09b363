"""Faults of third-party APIs: third-party APIs (call nodes) that
time out, refuse connections, reset mid-body, answer 5xx, or send invalid
JSON under a JSON content type.

One real mitmdump serves fault workflows and healthy ones side by side.
After 1,000 failing flows (and healthy flows interleaved with them) every
client got an answer: a clean 500 for the failing workflow, 200 for the
others; the proxy holds no more asyncio tasks, Datakit runs or file
descriptors than before (pooled keep-alive connections aside); it still
serves.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from tests.harness import MockServer, Reply, free_port
from tests.reliability._support import (
    GENERIC_MESSAGE,
    SCRIPTS,
    Spec,
    fd_count,
    probe,
    send_all,
    settle,
    socket_count,
    tally,
    write_workflows,
)

FAULT_FLOWS = 1_000
HEALTHY_FLOWS = 300
ABANDONED = 100
CONCURRENCY = 50
CALL_TIMEOUT_MS = 150

# Extra descriptors allowed after the run beyond the pooled keep-alive
# connections the probe reports (log file buffers, a closing socket...).
FD_SLACK = 4
TASK_SLACK = 2


def _call_exit(url: str, **call: object) -> list[dict]:
    return [
        {"name": "CALL", "type": "call", "url": url, **call},
        {"name": "EXIT", "type": "exit", "inputs": {"body": "CALL.body"}},
    ]


def fault_workflows(mock: MockServer, closed_port: int) -> dict[str, dict]:
    m = mock.url
    return {
        # the API never answers: the call's own `timeout` fires
        "timeout": {"match": {"paths": ["/fault/timeout"]},
                    "nodes": _call_exit(f"{m}/hang", timeout=CALL_TIMEOUT_MS)},
        # nothing listens on the port: connection refused
        "refused": {"match": {"paths": ["/fault/refused"]},
                    "nodes": _call_exit(f"http://127.0.0.1:{closed_port}/nothing")},
        # headers and half the body, then a TCP RST
        "reset": {"match": {"paths": ["/fault/reset"]}, "nodes": _call_exit(f"{m}/reset")},
        "5xx": {"match": {"paths": ["/fault/5xx"]}, "nodes": _call_exit(f"{m}/503")},
        # `Content-Type: application/json` with a body that is not JSON
        "badjson": {"match": {"paths": ["/fault/badjson"]}, "nodes": _call_exit(f"{m}/badjson")},
        # one call fails while an independent slow one is in flight: the
        # slow one must be cancelled (its task and socket released)
        "fanout": {"match": {"paths": ["/fault/fanout"]}, "nodes": [
            {"name": "SLOW", "type": "call", "url": f"{m}/slowok"},
            {"name": "FAIL", "type": "call", "url": f"{m}/503"},
            {"name": "JOIN", "type": "jq", "inputs": {"a": "SLOW.body", "b": "FAIL.body"}, "jq": "."},
            {"name": "EXIT", "type": "exit", "inputs": {"body": "JOIN"}},
        ]},
        # response phase: the upstream answered, then a call on its body fails
        "resp": {"match": {"paths": ["/fault/resp"]}, "nodes": [
            {"name": "CALL", "type": "call", "method": "POST", "url": f"{m}/503",
             "inputs": {"body": "service_response.body"}, "outputs": {"body": "response.body"}},
        ]},
        # healthy neighbours
        "ok-call": {"match": {"paths": ["/ok/call"]}, "nodes": _call_exit(f"{m}/ok")},
        "ok-exit": {"match": {"paths": ["/ok/exit"]}, "nodes": [
            {"name": "S", "type": "static", "values": {"body": {"static": True}}},
            {"name": "EXIT", "type": "exit", "input": "S"},
        ]},
        # the client gives up while the call is in flight
        "abandon": {"match": {"paths": ["/abandon"]}, "nodes": _call_exit(f"{m}/slowok")},
        # /pass matches no workflow: plain proxying to the mock's echo
    }


FAULT_KINDS = ["timeout", "refused", "reset", "5xx", "badjson", "fanout", "resp"]
HEALTHY_KINDS = {"ok-call": "/ok/call", "ok-exit": "/ok/exit", "pass": "/pass"}


def make_specs(mock: MockServer, n_faults: int, n_healthy: int) -> list[Spec]:
    """Faults round-robin over the kinds, healthy flows interleaved evenly."""
    specs: list[Spec] = []
    every = max(1, n_faults // max(1, n_healthy))
    healthy = list(HEALTHY_KINDS.items())
    h = 0
    for i in range(n_faults):
        kind = FAULT_KINDS[i % len(FAULT_KINDS)]
        specs.append(Spec(kind, f"{mock.url}/fault/{kind}?i={i}"))
        if i % every == 0 and h < n_healthy:
            name, path = healthy[h % len(healthy)]
            specs.append(Spec(name, f"{mock.url}{path}?h={h}"))
            h += 1
    while h < n_healthy:
        name, path = healthy[h % len(healthy)]
        specs.append(Spec(name, f"{mock.url}{path}?h={h}"))
        h += 1
    return specs


def test_faulty_apis_answer_500_and_leak_nothing(tmp_path, make_mock_server, start_mitmdump):
    mock = make_mock_server()
    mock.route("GET", "/hang", Reply(hang=True))
    mock.route("GET", "/reset", Reply(reset=True, json={"data": "x" * 8192}))
    mock.route("*", "/503", Reply(status=503, json={"error": "unavailable"}))
    mock.route("GET", "/badjson", Reply(body='{"truncated": [1, 2', headers={"Content-Type": "application/json"}))
    mock.route("GET", "/slowok", Reply(json={"ok": True}, delay=0.5))
    mock.route("GET", "/ok", Reply(json={"ok": True}))
    closed_port = free_port()  # bound a moment ago, now closed: refused

    cfg = write_workflows(tmp_path / "wf", fault_workflows(mock, closed_port))
    mitm = start_mitmdump(cfg, script=SCRIPTS, quiet=True)
    pid = mitm.pid
    assert pid is not None

    def run(specs):
        return asyncio.run(send_all(mitm.proxy_url, specs, CONCURRENCY, timeout=20))

    def run_abandoning(mitm, specs):
        return asyncio.run(send_all(mitm.proxy_url, specs, CONCURRENCY, timeout=0.15))

    # warm-up: the same mix, to fill pools and lazily created state
    run(make_specs(mock, 140, 40))
    idle = probe(mitm)
    before = settle(mitm, tasks_at_most=idle["tasks"])
    fds_before = fd_count(pid)
    sockets_before = socket_count(pid)

    specs = make_specs(mock, FAULT_FLOWS, HEALTHY_FLOWS)
    mock.clear()
    started = time.perf_counter()
    results = run(specs)
    duration = time.perf_counter() - started

    # -- every client got an answer, the right one -------------------------
    lost = [r for r in results if r.error is not None]
    assert not lost, f"{len(lost)} flows without a response, e.g. {lost[:3]}"
    counts = tally(results)
    per_kind = Counter(s.kind for s in specs)
    expected = Counter({(k, 500): per_kind[k] for k in FAULT_KINDS} | {(k, 200): per_kind[k] for k in HEALTHY_KINDS})
    assert counts == expected
    assert sum(per_kind[k] for k in FAULT_KINDS) == FAULT_FLOWS

    request_ids = set()
    for r in results:
        body = r.json()
        if r.kind in FAULT_KINDS:
            assert set(body) == {"message", "request_id"}, body
            assert body["message"] == GENERIC_MESSAGE
            request_ids.add(body["request_id"])
        elif r.kind == "ok-call":
            assert body == {"ok": True}
        elif r.kind == "ok-exit":
            assert body == {"static": True}
        else:
            assert body["path"] == "/pass"
    assert len(request_ids) == FAULT_FLOWS  # one id per flow

    # the API side saw what the workflows sent; request-phase failures never
    # reached the upstream, the response-phase one did (once per flow)
    seen = Counter(r.path for r in mock.requests)
    # (a timed-out call may give up before a busy mock server even read it)
    assert 0 < seen["/hang"] <= per_kind["timeout"]
    assert seen["/reset"] == per_kind["reset"]
    assert seen["/badjson"] == per_kind["badjson"]
    assert seen["/503"] == per_kind["5xx"] + per_kind["fanout"] + per_kind["resp"]
    assert seen["/slowok"] <= per_kind["fanout"]
    assert seen["/fault/resp"] == per_kind["resp"]
    assert not any(seen[f"/fault/{k}"] for k in FAULT_KINDS if k != "resp")
    assert seen["/ok"] == per_kind["ok-call"] and seen["/pass"] == per_kind["pass"]

    # clients that disconnect while their flow's call is in flight: mitmproxy
    # reports the flow's error, Datakit must drop the run and its tasks
    abandoned = run_abandoning(mitm, [Spec("abandon", f"{mock.url}/abandon?i={i}") for i in range(ABANDONED)])
    assert all(r.error is not None for r in abandoned)

    # -- nothing leaked ----------------------------------------------------
    after = settle(mitm, tasks_at_most=before["tasks"])
    fds_after = fd_count(pid)
    sockets_after = socket_count(pid)
    print(
        f"\n{FAULT_FLOWS} fault flows + {HEALTHY_FLOWS} healthy, {CONCURRENCY} concurrent: {duration:.1f} s; "
        f"then {ABANDONED} flows abandoned by their clients mid-call; "
        f"tasks {before['tasks']} -> {after['tasks']}, runs {before['runs']} -> {after['runs']}, "
        f"fds {fds_before} -> {fds_after} (sockets {sockets_before} -> {sockets_after}; "
        f"pooled keep-alive {before['pooled']} -> {after['pooled']})"
    )
    assert after["runs"] == 0, "the engine still tracks finished flows"
    assert after["tasks"] <= before["tasks"] + TASK_SLACK, (before["task_names"], after["task_names"])
    pooled_growth = max(0, (after["pooled"] or 0) - (before["pooled"] or 0))
    assert fds_after <= fds_before + pooled_growth + FD_SLACK, (fds_before, fds_after, before, after)
    assert sockets_after <= sockets_before + pooled_growth + FD_SLACK, (sockets_before, sockets_after)

    # -- still serving, and every failure was a clean node error --------------
    ok = run([Spec("ok-call", f"{mock.url}/ok/call"), Spec("pass", f"{mock.url}/pass")])
    assert [r.status for r in ok] == [200, 200]
    log = mitm.log_text()
    assert log.count("Datakit: workflow") >= FAULT_FLOWS
    assert "Traceback" not in log and "crashed" not in log and "internal error" not in log, log[-3000:]


def test_debug_error_bodies_name_the_failing_node(tmp_path, make_mock_server, start_mitmdump):
    """With `debug: true` the 500 says which node failed and why, for each
    kind of fault (docs/nodes.md#call), with the URL but without its query."""
    mock = make_mock_server()
    mock.route("GET", "/hang", Reply(hang=True))
    mock.route("GET", "/reset", Reply(reset=True, json={"data": "x" * 8192}))
    mock.route("*", "/503", Reply(status=503, json={"error": "unavailable"}))
    mock.route("GET", "/badjson", Reply(body="{", headers={"Content-Type": "application/problem+json"}))
    closed_port = free_port()
    docs = fault_workflows(mock, closed_port)
    for name in ("timeout", "refused", "reset", "5xx", "badjson"):
        docs[name]["debug"] = True
        docs[name]["nodes"][0]["url"] += "?api_key=hunter2"
    mitm = start_mitmdump(write_workflows(tmp_path / "wf", docs), quiet=True)

    wanted = {
        "timeout": "timed out",
        "refused": "ClientConnectorError",
        "reset": "ClientPayloadError",
        "5xx": "non-2XX response code: 503",
        "badjson": "invalid JSON body",
    }
    with mitm.client() as c:
        for kind, text in wanted.items():
            r = c.get(f"{mock.url}/fault/{kind}")
            assert r.status_code == 500, (kind, r.text)
            body = r.json()
            assert body["message"] == "node execution error"
            assert body["node"] == {"index": 1, "name": "CALL", "type": "call"}, body
            assert text in body["error"], (kind, body["error"])
            assert "hunter2" not in body["error"] and "Traceback" not in r.text
    assert "hunter2" not in mitm.log_text()
