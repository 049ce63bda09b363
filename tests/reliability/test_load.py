"""Load: 10,000 flows, 100 concurrent, through
mixed workflows selected by `match:` blocks (exit-only, call-based,
response-phase, plain proxying) with 10% injected faults.

Zero lost or hung flows, and the counts reconcile: requests sent = responses
received, per kind and per status class; what the mock upstream/API received
matches what the workflows should have sent; each answer belongs to its own
request (no cross-talk between concurrent flows).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter

import pytest

from tests.harness import MockServer, RecordedRequest, Reply
from tests.reliability._support import (
    GENERIC_MESSAGE,
    SCRIPTS,
    Spec,
    probe,
    send_all,
    settle,
    status_class,
    write_workflows,
)

FLOWS = 10_000
CONCURRENCY = 100
# per 10 flows: 3 exit, 2 call, 2 response-phase, 2 plain, 1 fault (10%)
PATTERN = ["exit", "call", "resp", "plain", "exit", "call", "resp", "plain", "exit", "fault"]
FAULTS = ["fault-exit", "fault-call", "fault-resp", "fault-timeout"]


def workflows(mock: MockServer) -> dict[str, dict]:
    m = mock.url
    return {
        "exit": {"match": {"paths": ["/exit"], "methods": ["GET"]}, "nodes": [
            {"name": "S", "type": "static", "values": {"greeting": "hi"}},
            {"name": "J", "type": "jq", "inputs": {"s": "S", "q": "request.query"}, "jq": "{greeting: .s.greeting, i: .q.i}"},
            {"name": "EXIT", "type": "exit", "inputs": {"body": "J"}},
        ]},
        # a call whose answer becomes a header of the proxied request
        "call": {"match": {"paths": ["/call"], "methods": ["POST"]}, "nodes": [
            {"name": "API", "type": "call", "method": "POST", "url": f"{m}/api",
             "inputs": {"body": "request.body", "query": "request.query"}},
            {"name": "HDR", "type": "jq", "input": "API.body", "jq": '{"x-token": .token}', "output": "service_request.headers"},
        ]},
        # the upstream's answer rewritten after proxying
        "resp": {"match": {"filter": "~m GET & ~u '^http://[^/]+/resp'"}, "nodes": [
            {"name": "WRAP", "type": "jq", "input": "service_response.body", "jq": "{wrapped: .query.i, path: .path}",
             "output": "response.body"},
            {"name": "H", "type": "static", "values": {"x-datakit": "resp"}, "output": "response.headers"},
        ]},
        # injected faults: a node error before proxying, a failing API, a
        # failure after proxying, a call timeout
        "fault-exit": {"match": {"paths": ["/fault/exit"]}, "nodes": [
            {"name": "J", "type": "jq", "input": "request.query", "jq": 'error("injected fault \\(.i)")'},
            {"name": "EXIT", "type": "exit", "inputs": {"body": "J"}},
        ]},
        "fault-call": {"match": {"paths": ["/fault/call"]}, "nodes": [
            {"name": "API", "type": "call", "url": f"{m}/api-fail"},
            {"name": "EXIT", "type": "exit", "inputs": {"body": "API.body"}},
        ]},
        "fault-resp": {"match": {"paths": ["/fault/resp"]}, "nodes": [
            {"name": "J", "type": "jq", "input": "service_response.body", "jq": 'error("injected fault")', "output": "response.body"},
        ]},
        "fault-timeout": {"match": {"paths": ["/fault/timeout"]}, "nodes": [
            {"name": "API", "type": "call", "url": f"{m}/slow", "timeout": 100},
            {"name": "EXIT", "type": "exit", "inputs": {"body": "API.body"}},
        ]},
        # /plain matches nothing: plain proxying
    }


def make_specs(mock: MockServer, n: int) -> list[Spec]:
    specs = []
    faults = 0
    for i in range(n):
        kind = PATTERN[i % len(PATTERN)]
        if kind == "fault":
            kind = FAULTS[faults % len(FAULTS)]
            faults += 1
            specs.append(Spec(kind, f"{mock.url}/fault/{kind.split('-')[1]}?i={i}"))
        elif kind == "call":
            specs.append(Spec(kind, f"{mock.url}/call?i={i}", method="POST", body=f'{{"i": {i}}}'.encode(),
                              headers={"content-type": "application/json"}))
        else:
            specs.append(Spec(kind, f"{mock.url}/{kind}?i={i}"))
    return specs


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def api_reply(req: RecordedRequest) -> Reply:
    return Reply(json={"token": f"t-{req.json()['i']}-{req.query['i'][0]}"})


@pytest.mark.slow  # 22-36 s here (mitmdump's CPU is the limit: ~2 ms per flow)
def test_ten_thousand_mixed_flows_with_faults(tmp_path, make_mock_server, start_mitmdump):
    mock = make_mock_server()
    mock.route("POST", "/api", api_reply)
    mock.route("GET", "/api-fail", Reply(status=502, json={"error": "bad gateway"}))
    mock.route("GET", "/slow", Reply(json={}, delay=1.0))
    mitm = start_mitmdump(write_workflows(tmp_path / "wf", workflows(mock)), script=SCRIPTS, quiet=True)
    baseline = probe(mitm)

    specs = make_specs(mock, FLOWS)
    cpu_proxy, cpu_here = proc_cpu(mitm.pid), time.process_time()
    started = time.perf_counter()
    results = asyncio.run(send_all(mitm.proxy_url, specs, CONCURRENCY, timeout=30))
    duration = time.perf_counter() - started
    cpu_proxy, cpu_here = proc_cpu(mitm.pid) - cpu_proxy, time.process_time() - cpu_here
    latencies = sorted(r.elapsed for r in results)

    # -- zero lost or hung flows; sent = received, per kind and status class ----
    lost = [r for r in results if r.error is not None]
    assert not lost, f"{len(lost)} lost flows, e.g. {[(r.kind, r.error) for r in lost[:5]]}"
    sent = Counter(s.kind for s in specs)
    received = Counter(r.kind for r in results if r.status is not None)
    assert sent == received and sum(received.values()) == FLOWS
    classes = Counter(status_class(r.status) for r in results)
    assert classes == {"2xx": FLOWS * 9 // 10, "5xx": FLOWS // 10}, classes
    for r in results:
        expected = 500 if r.kind.startswith("fault") else 200
        assert r.status == expected, (r.kind, r.status, r.body[:200])

    # -- each answer belongs to its request ------------------------------------
    for spec, r in zip(specs, results, strict=True):
        i = spec.url.rsplit("=", 1)[1]
        body = r.json()
        if r.kind == "exit":
            assert body == {"greeting": "hi", "i": i}
        elif r.kind == "call":
            assert body["headers"]["x-token"] == f"t-{i}-{i}" and body["path"] == "/call"
        elif r.kind == "resp":
            assert body == {"wrapped": i, "path": "/resp"} and r.headers["x-datakit"] == "resp"
        elif r.kind == "plain":
            assert body["query"] == {"i": i} and "x-datakit" not in r.headers
        else:
            assert body == {"message": GENERIC_MESSAGE, "request_id": body["request_id"]}

    # -- the upstream/API side saw exactly what the workflows should send -------
    seen = Counter(r.path for r in mock.requests)
    expected_seen = {
        "/api": sent["call"],  # one call per call-based flow
        "/call": sent["call"],  # then proxied
        "/resp": sent["resp"],
        "/plain": sent["plain"],
        "/fault/resp": sent["fault-resp"],  # proxied, then failed in the response phase
        "/api-fail": sent["fault-call"],
    }
    assert {p: seen[p] for p in expected_seen} == expected_seen
    assert seen["/slow"] <= sent["fault-timeout"]  # a timed-out call may not even have been read
    assert not (set(seen) - set(expected_seen) - {"/slow"}), seen  # exits and request-phase failures never proxied
    assert len(mock.requests) == sum(expected_seen.values()) + seen["/slow"]

    # -- the proxy is idle again and still serves --------------------------------
    after = settle(mitm, tasks_at_most=baseline["tasks"])
    print(
        f"\n{FLOWS} flows, {CONCURRENCY} concurrent, 10% faults: {duration:.1f} s ({FLOWS / duration:.0f} flows/s), "
        f"latency p50 {latencies[FLOWS // 2] * 1000:.0f} ms, p99 {latencies[FLOWS * 99 // 100] * 1000:.0f} ms, "
        f"max {latencies[-1] * 1000:.0f} ms; CPU: mitmdump {cpu_proxy:.1f} s, test process (clients + mock) {cpu_here:.1f} s; tasks {baseline['tasks']} -> {after['tasks']}, runs -> {after['runs']}"
    )
    assert after["runs"] == 0 and after["tasks"] <= baseline["tasks"] + 2, after
    again = asyncio.run(send_all(mitm.proxy_url, make_specs(mock, 10), 5))
    assert [r.status for r in again] == [500 if s.kind.startswith("fault") else 200 for s in make_specs(mock, 10)]
