"""Body size limits, gzip bombs, streamed bodies and deep JSON, through a
real mitmdump (`datakit_body_size_limit`, docs/hardening.md).

Memory is measured on the mitmdump process itself: its VmRSS is sampled
every few milliseconds while a hostile request is in flight, and the peak
must stay within MEMORY_BUDGET of the level before it.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.harness import Mitmdump, MockServer, Reply
from tests.reliability._support import GENERIC_MESSAGE, SCRIPTS, write_workflows

MiB = 1024 * 1024
MEMORY_BUDGET = 50 * MiB
DEEP = 1_000_000  # levels of JSON nesting
UNTOUCHED = 50 * MiB  # a body Datakit never reads


def gzip_bomb(inflated: int) -> bytes:
    """`inflated` zero bytes, gzip-compressed (about 1000:1)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * MiB
    parts = [c.compress(block) for _ in range(inflated // MiB)]
    parts.append(c.flush())
    return b"".join(parts)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    data = gzip_bomb(1024 * MiB)  # 1 GiB inflated
    assert len(data) < 1.1 * MiB
    return data


# -- an upstream that never stops sending ----------------------------------------


class EndlessServer:
    """Answers every request with a chunked body that never ends (each
    connection gives up after `cap` seconds, so the test cannot run away)."""

    def __init__(self, cap: float = 40.0) -> None:
        self.cap = cap
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sent: list[int] = []  # bytes sent per connection, when it ended
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        sent = 0
        with conn:
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    more = conn.recv(65536)
                    if not more:
                        return
                    data += more
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
                chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
                deadline = time.monotonic() + self.cap
                while not self._stop.is_set() and time.monotonic() < deadline:
                    conn.sendall(chunk)
                    sent += 65536
            except OSError:
                pass  # the client hung up: what the test wants
            finally:
                self.sent.append(sent)

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


# -- memory ----------------------------------------------------------------------


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@contextmanager
def peak_rss_growth(pid: int) -> Iterator[list[int]]:
    """Yields a list that holds, after the block, the peak VmRSS growth."""
    base = rss(pid)
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss(pid))
            time.sleep(0.003)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out: list[int] = []
    try:
        yield out
    finally:
        done.set()
        t.join()
        peak[0] = max(peak[0], rss(pid))
        out.append(peak[0] - base)


# -- the proxies -----------------------------------------------------------------


def at(path: str, *nodes: dict, **extra) -> dict:
    return {"match": {"paths": [path]}, **extra, "nodes": list(nodes)}


SIZE_JQ = '{type: type, length: (if type == "string" or type == "array" or type == "object" then length else null end)}'


def limit_workflows(mock: MockServer) -> dict[str, dict]:
    return {
        "health": at("/health", {"name": "EXIT", "type": "exit", "status": 200}),
        "body-jq": at("/body/jq", {"name": "J", "type": "jq", "input": "request.body", "jq": SIZE_JQ},
                      {"name": "EXIT", "type": "exit", "inputs": {"body": "J"}}),
        "body-debug": at("/body/debug", {"name": "J", "type": "jq", "input": "request.body", "jq": SIZE_JQ},
                         {"name": "EXIT", "type": "exit", "inputs": {"body": "J"}}, debug=True),
        # reads only the headers: the body passes untouched, whatever its size
        "headers-only": at("/untouched/req", {"name": "J", "type": "jq", "input": "request.headers",
                                              "jq": '{"x-seen": "1"}', "output": "service_request.headers"}),
        "status-only": at("/untouched/resp", {"name": "J", "type": "jq", "input": "service_response.status",
                                              "jq": '{"x-status": tostring}', "output": "response.headers"}),
        "resp-jq": at("/resp/", {"name": "J", "type": "jq", "input": "service_response.body", "jq": SIZE_JQ,
                                 "output": "response.body"}),
        "call": at("/call/", {"name": "URL", "type": "jq", "input": "request.path",
                              "jq": f'"{mock.url}/upstream" + .'},
                   {"name": "CALL", "type": "call", "url": mock.url, "timeout": 30000, "inputs": {"url": "URL"}},
                   {"name": "EXIT", "type": "exit", "inputs": {"body": "CALL.body"}}),
    }


@pytest.fixture(scope="module")
def env(tmp_path_factory, mitm_confdir, bomb) -> Iterator[tuple[Mitmdump, MockServer]]:
    mock = MockServer().start()
    deep = "[" * DEEP + "]" * DEEP
    gz = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    for prefix in ("", "/upstream/call"):
        mock.route("GET", f"{prefix}/resp/bomb", Reply(body=bomb, headers=gz))
        mock.route("GET", f"{prefix}/resp/deep", Reply(body=deep, headers={"Content-Type": "application/json"}))
        mock.route("GET", f"{prefix}/resp/big", Reply(body=b"x" * (10 * MiB + 1), headers={"Content-Type": "text/plain"}))
        mock.route("GET", f"{prefix}/resp/small-gzip", Reply(body=gzip.compress(b'{"a": [1, 2, 3]}'), headers=gz))
    mock.route("GET", "/untouched/resp", lambda req: Reply(body=b"\x01\x02" * (UNTOUCHED // 2)))
    cfg = write_workflows(tmp_path_factory.mktemp("body-limits"), limit_workflows(mock))
    mitm = Mitmdump(cfg, script=SCRIPTS, confdir=mitm_confdir, quiet=True, start=False)
    try:
        mitm.start()
        yield mitm, mock
    finally:
        mitm.stop()
        mock.stop()
        print(f"\n----- {mitm!r} log tail -----\n{mitm.log_tail(40)}")


def assert_clean_500(r: httpx.Response) -> None:
    assert r.status_code == 500, (r.status_code, r.text[:300])
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"message", "request_id"} and body["message"] == GENERIC_MESSAGE, body


def assert_serving(client: httpx.Client, mock: MockServer) -> None:
    r = client.post(f"{mock.url}/body/jq", json={"ok": [1, 2]})
    assert r.status_code == 200 and r.json() == {"type": "object", "length": 1}


# -- limits and bombs ----------------------------------------------------------


def test_a_gzip_bomb_request_body_is_refused_with_bounded_memory(env, client, bomb):
    mitm, mock = env
    assert_serving(client, mock)  # warm
    offset = mitm.log_offset()
    started = time.perf_counter()
    with peak_rss_growth(mitm.pid) as growth:
        r = client.post(f"{mock.url}/body/jq", content=bomb,
                        headers={"content-type": "application/json", "content-encoding": "gzip"})
    elapsed = time.perf_counter() - started
    print(f"\n1 MB gzip bomb (1 GiB inflated): {r.status_code} in {elapsed:.2f} s, peak RSS +{growth[0] / MiB:.1f} MiB")
    assert_clean_500(r)
    assert growth[0] < MEMORY_BUDGET
    assert elapsed < 10
    mitm.wait_for_log(r"request body exceeds the body size limit of 10485760 bytes \(after decompression\).*datakit_body_size_limit", since=offset)
    assert_serving(client, mock)


def test_a_small_gzip_request_body_is_still_decoded(client, env):
    _, mock = env
    data = json.dumps(list(range(1000))).encode()
    r = client.post(f"{mock.url}/body/jq", content=gzip.compress(data),
                    headers={"content-type": "application/json", "content-encoding": "gzip"})
    assert r.status_code == 200 and r.json() == {"type": "array", "length": 1000}


def test_one_byte_over_the_limit_is_a_clean_500_and_exactly_the_limit_passes(env, client):
    _mitm, mock = env
    limit = 10 * MiB
    r = client.post(f"{mock.url}/body/jq", content=b"y" * limit, headers={"content-type": "text/plain"})
    assert r.status_code == 200 and r.json() == {"type": "string", "length": limit}
    r = client.post(f"{mock.url}/body/debug", content=b"y" * (limit + 1), headers={"content-type": "text/plain"})
    assert r.status_code == 500
    body = r.json()
    assert body["node"]["name"] == "request" and "datakit_body_size_limit" in body["error"], body
    assert "before decompression" in body["error"]


def test_a_gzip_bomb_from_the_upstream_is_refused_with_bounded_memory(env, client):
    mitm, mock = env
    with peak_rss_growth(mitm.pid) as growth:
        r = client.get(f"{mock.url}/resp/bomb")
    print(f"\nupstream gzip bomb: {r.status_code}, peak RSS +{growth[0] / MiB:.1f} MiB")
    assert_clean_500(r)
    assert growth[0] < MEMORY_BUDGET
    r = client.get(f"{mock.url}/resp/small-gzip")
    assert r.status_code == 200 and r.json() == {"type": "object", "length": 1}


def test_a_gzip_bomb_from_a_call_is_refused_with_bounded_memory(env, client):
    mitm, mock = env
    offset = mitm.log_offset()
    with peak_rss_growth(mitm.pid) as growth:
        r = client.get(f"{mock.url}/call/resp/bomb")
    print(f"\ncall gzip bomb: {r.status_code}, peak RSS +{growth[0] / MiB:.1f} MiB")
    assert_clean_500(r)
    assert growth[0] < MEMORY_BUDGET
    mitm.wait_for_log(r"node 'CALL' \(call, #\d\).*response of .* exceeds the body size limit.*datakit_body_size_limit", since=offset)
    r = client.get(f"{mock.url}/call/resp/small-gzip")
    assert r.status_code == 200 and r.json() == {"a": [1, 2, 3]}


@pytest.mark.parametrize("path", ["/resp/big", "/call/resp/big"])
def test_an_oversized_identity_response_is_refused(client, env, path):
    _, mock = env
    assert_clean_500(client.get(f"{mock.url}{path}"))


def test_bodies_that_no_workflow_reads_are_not_limited(env, client):
    _mitm, mock = env
    body = bytes(range(256)) * (UNTOUCHED // 256)
    r = client.post(f"{mock.url}/untouched/req", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text[:300]
    seen = mock.requests_for("/untouched/req")[-1]
    assert seen.body == body and seen.header("x-seen") == "1"
    r = client.get(f"{mock.url}/untouched/resp")
    assert r.status_code == 200 and r.headers["x-status"] == "200"
    assert r.content == b"\x01\x02" * (UNTOUCHED // 2)


# -- deep JSON -------------------------------------------------------------------


def test_a_million_levels_of_json_are_a_clean_node_error_everywhere(env, client):
    mitm, mock = env
    deep = ("[" * DEEP + "]" * DEEP).encode()
    offset = mitm.log_offset()
    assert_clean_500(client.post(f"{mock.url}/body/jq", content=deep, headers={"content-type": "application/json"}))
    assert_clean_500(client.get(f"{mock.url}/resp/deep"))
    assert_clean_500(client.get(f"{mock.url}/call/resp/deep"))
    log = mitm.log_text()[offset:]
    assert log.count("JSON nested too deeply") >= 3, log[-2000:]
    assert "Traceback" not in log
    assert_serving(client, mock)


# -- the option ------------------------------------------------------------------


@pytest.mark.parametrize("value", ["ten", "0", "-1m", "1.5m"])
def test_an_invalid_limit_is_refused_by_mitmproxy(tmp_path, mitm_confdir, value):
    cfg = write_workflows(tmp_path / "wf", {"health": at("/health", {"name": "EXIT", "type": "exit", "status": 200})})
    code, out = Mitmdump.run_and_expect_exit(cfg, confdir=mitm_confdir, options={"datakit_body_size_limit": value})
    assert code != 0
    assert "datakit_body_size_limit" in out, out[-2000:]


# -- an endless call, and streaming (limit 1m, stream_large_bodies=100) ----------


@pytest.fixture(scope="module")
def streaming(tmp_path_factory, mitm_confdir) -> Iterator[tuple[Mitmdump, MockServer, EndlessServer]]:
    mock = MockServer().start()
    endless = EndlessServer()
    mock.route("GET", "/stream/resp", Reply(json={"items": ["z" * 100] * 100}))
    mock.route("GET", "/stream/plain", Reply(body=b"r" * 10_000))
    mock.route("GET", "/stream/late", Reply(body=b"l" * 10_000))
    mock.route("POST", "/stream/none", Reply(body=b"ok"))  # small: the response is not streamed
    docs = {
        "endless": at("/call/endless", {"name": "CALL", "type": "call", "timeout": 30000,
                                        "url": f"http://127.0.0.1:{endless.port}/forever"},
                      {"name": "EXIT", "type": "exit", "inputs": {"body": "CALL.body"}}),
        "rewrite-request": at("/stream/req", {"name": "J", "type": "jq", "input": "request.body",
                                              "jq": ". + {rewritten: true}", "output": "service_request.body"}),
        "read-request": at("/stream/read", {"name": "J", "type": "jq", "input": "request.body",
                                            "jq": '{"x-length": (.items | length | tostring)}', "output": "service_request.headers"}),
        "rewrite-response": at("/stream/resp", {"name": "J", "type": "jq", "input": "service_response.body",
                                                "jq": "{count: (.items | length)}", "output": "response.body"}),
        # acts only after the upstream answered: a streamed request is fine
        "late-only": at("/stream/none", {"name": "J", "type": "jq", "input": "service_response.status",
                                         "jq": '{"x-status": tostring}', "output": "response.headers"}),
        # acts only before proxying: a streamed response is fine
        "early-only": at("/stream/plain", {"name": "J", "type": "jq", "input": "request.headers",
                                           "jq": '{"x-seen": "1"}', "output": "service_request.headers"}),
        # a guard (no body read) on a streamed request must not be bypassed
        "guard": at("/stream/guard", {"name": "DENY", "type": "exit", "status": 403,
                                      "inputs": {"body": "request.query"}}),
        # a header rewrite on a streamed response must not be skipped
        "late-headers": at("/stream/late", {"name": "J", "type": "jq", "input": "service_response.status",
                                            "jq": '{"x-status": tostring}', "output": "response.headers"}),
    }
    cfg = write_workflows(tmp_path_factory.mktemp("body-streaming"), docs)
    mitm = Mitmdump(cfg, script=SCRIPTS, confdir=mitm_confdir, quiet=True, start=False,
                    options={"datakit_body_size_limit": "1m", "stream_large_bodies": "100"})
    try:
        mitm.start()
        yield mitm, mock, endless
    finally:
        mitm.stop()
        mock.stop()
        endless.close()
        print(f"\n----- {mitm!r} log tail -----\n{mitm.log_tail(40)}")


@pytest.fixture
def sclient(streaming) -> Iterator[httpx.Client]:
    with streaming[0].client(timeout=httpx.Timeout(60.0, connect=5.0)) as c:
        yield c


def test_an_endless_call_is_cut_at_the_limit_not_the_timeout(streaming, sclient):
    mitm, _, endless = streaming
    offset = mitm.log_offset()
    with peak_rss_growth(mitm.pid) as growth:
        started = time.perf_counter()
        r = sclient.get("http://endless.test/call/endless")
        elapsed = time.perf_counter() - started
    print(f"\nendless call: {r.status_code} in {elapsed:.2f} s, peak RSS +{growth[0] / MiB:.1f} MiB")
    assert_clean_500(r)
    assert elapsed < 5, elapsed  # the call's timeout is 30 s
    assert growth[0] < MEMORY_BUDGET
    mitm.wait_for_log(r"exceeds the body size limit of 1048576 bytes.*datakit_body_size_limit", since=offset)
    deadline = time.monotonic() + 5
    while not endless.sent and time.monotonic() < deadline:
        time.sleep(0.05)
    assert endless.sent and endless.sent[-1] < 64 * MiB, endless.sent  # the connection was dropped


def _streamed(mitm: Mitmdump, offset: int, what: str) -> bool:
    time.sleep(0.2)  # the log line is written as the flow goes by
    return f"Streaming {what}" in mitm.log_text()[offset:]


def _killed(send) -> bool:
    try:
        send()
    except httpx.HTTPError:
        return True
    return False


def test_a_streamed_request_body_is_refused_not_skipped(streaming, sclient):
    """mitmproxy 12 offers no per-flow way to buffer a body it decided to
    stream: a workflow that rewrites it fails closed, nothing goes upstream."""
    mitm, mock, _ = streaming
    doc = {"items": ["a" * 50] * 100}  # about 5 KB: over stream_large_bodies
    offset = mitm.log_offset()
    before = len(mock.requests_for("/stream/req"))
    assert _killed(lambda: sclient.post(f"{mock.url}/stream/req", json=doc))
    mitm.wait_for_log(r"workflow 01-rewrite-request acts on the request, but mitmproxy streams its body "
                      r"\(stream_large_bodies=100\); the flow is killed", since=offset)
    assert len(mock.requests_for("/stream/req")) == before
    # a body under stream_large_bodies is buffered and rewritten as ever
    r = sclient.post(f"{mock.url}/stream/req", json={"a": 1})
    assert r.status_code == 200 and mock.requests_for("/stream/req")[-1].json() == {"a": 1, "rewritten": True}


def test_a_streamed_response_body_is_refused_not_skipped(streaming, sclient):
    mitm, mock, _ = streaming
    offset = mitm.log_offset()
    assert _killed(lambda: sclient.get(f"{mock.url}/stream/resp"))
    mitm.wait_for_log(r"workflow 03-rewrite-response acts on the response, but mitmproxy streams its body", since=offset)
    assert _killed(lambda: sclient.get(f"{mock.url}/stream/resp"))  # again: refused each time
    r = sclient.post(f"{mock.url}/stream/req", json={"b": 2})  # and the proxy keeps serving
    assert r.status_code == 200


def test_workflows_that_act_on_the_other_side_leave_streaming_on(streaming, sclient):
    """Streaming is refused only where it would make a workflow act too late:
    a workflow that acts only after the upstream answered streams requests,
    one that acts only before proxying streams responses."""
    mitm, mock, _ = streaming
    body = b"s" * 10_000
    offset = mitm.log_offset()
    r = sclient.post(f"{mock.url}/stream/none", content=body)
    assert r.status_code == 200 and r.headers["x-status"] == "200"
    assert mock.requests_for("/stream/none")[-1].body == body
    assert _streamed(mitm, offset, "request"), mitm.log_text()[offset:]
    offset = mitm.log_offset()
    r = sclient.get(f"{mock.url}/stream/plain")
    assert r.status_code == 200 and r.content == b"r" * 10_000
    assert mock.requests_for("/stream/plain")[-1].headers.get("x-seen") == "1"
    assert _streamed(mitm, offset, "response"), mitm.log_text()[offset:]


def test_a_guard_on_a_streamed_request_fails_closed(streaming, sclient):
    """mitmproxy runs the request hook of a streamed request only after the
    body went upstream: an exit guard would come too late. The flow is
    killed before anything reaches the upstream, as for body readers."""
    mitm, mock, _ = streaming
    offset = mitm.log_offset()
    before = len(mock.requests_for("/stream/guard"))
    assert _killed(lambda: sclient.post(f"{mock.url}/stream/guard", content=b"g" * 10_000))
    mitm.wait_for_log(r"workflow 06-guard acts on the request, but mitmproxy streams its body", since=offset)
    assert len(mock.requests_for("/stream/guard")) == before
    r = sclient.post(f"{mock.url}/stream/guard", content=b"small")  # under the threshold: the guard answers
    assert r.status_code == 403
    assert len(mock.requests_for("/stream/guard")) == before


def test_a_late_header_rewrite_on_a_streamed_response_fails_closed(streaming, sclient):
    mitm, mock, _ = streaming
    offset = mitm.log_offset()
    assert _killed(lambda: sclient.get(f"{mock.url}/stream/late"))
    mitm.wait_for_log(r"workflow 07-late-headers acts on the response, but mitmproxy streams its body", since=offset)


def test_a_chunked_request_streamed_mid_body_is_not_silently_skipped(streaming, sclient):
    """Without a Content-Length mitmproxy decides to stream while reading the
    body, after every hook had its say: the body went upstream unchanged
    (nothing an addon can prevent). The workflow does not run on it as if
    nothing happened: the flow is killed, so the client gets no answer, and
    the log says why."""
    mitm, mock, _ = streaming
    offset = mitm.log_offset()

    def chunks():
        yield b'{"items": '
        yield json.dumps(["c" * 50] * 100).encode() + b"}"

    assert _killed(lambda: sclient.post(f"{mock.url}/stream/req", content=chunks(),
                                        headers={"content-type": "application/json"}))
    mitm.wait_for_log(r"workflow 01-rewrite-request acts on the request, but mitmproxy streams its body", since=offset)
