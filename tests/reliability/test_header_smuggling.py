"""Header maps cannot smuggle: through a real mitmdump, a call's response
headers merged into `service_request`, `response`, `exit` or another call's
headers never change how a message is framed.

The upstream and the API are raw socket servers written here: they parse
requests straight off the wire (Content-Length or chunked, as a real server
would) and record every request per connection, so a second request hidden
in a body, or a truncated body, shows up. The client side of the response
tests is a raw socket too, reading responses as a browser would and checking
that nothing is left over on the connection.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.harness import Mitmdump
from tests.reliability._support import GENERIC_MESSAGE, write_workflows

HIDDEN = b"GET /smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
REQUEST_BODY = b"{}" + HIDDEN + b"tail-of-the-real-body"
UPSTREAM_BODY = b"the upstream's whole answer, longer than two bytes"
EXIT_BODY = "the exit's whole answer, longer than two bytes"
JWT_SECRET = "header-smuggling-test-secret"


# -- a raw HTTP/1.1 server that records what it parses off the wire ---------


@dataclass
class Seen:
    connection: int
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name]


def _read_message_body(rfile, headers: list[tuple[str, str]]) -> bytes:
    """The body as RFC 9112 §6.3 frames it: chunked wins over Content-Length."""
    names = {k.lower(): v for k, v in headers}
    if "chunked" in names.get("transfer-encoding", "").lower():
        body = b""
        while True:
            size = int(rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return body
            body += rfile.read(size)
            rfile.readline()
    return rfile.read(int(names.get("content-length", "0")))


def _read_head(rfile) -> tuple[str, list[tuple[str, str]]] | None:
    line = rfile.readline()
    if not line:
        return None
    headers = []
    while True:
        h = rfile.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        name, _, value = h.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
    return line.decode("latin-1").strip(), headers


class RawServer:
    """Records every request per connection; `answer(seen)` gives the raw
    response bytes (default: 200 with UPSTREAM_BODY)."""

    def __init__(self, answer: Callable[[Seen], bytes] | None = None) -> None:
        self.seen: list[Seen] = []
        self.answer = answer or (lambda seen: plain_response(UPSTREAM_BODY))
        self._connections = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                with outer._lock:
                    outer._connections += 1
                    number = outer._connections
                while True:
                    head = _read_head(self.rfile)
                    if head is None:
                        return
                    line, headers = head
                    method, target, _ = line.split(" ", 2)
                    seen = Seen(number, method, target, headers, _read_message_body(self.rfile, headers))
                    with outer._lock:
                        outer.seen.append(seen)
                    self.wfile.write(outer.answer(seen))
                    self.wfile.flush()

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self) -> list[Seen]:
        with self._lock:
            seen, self.seen = self.seen, []
        return seen

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def plain_response(body: bytes, extra: str = "") -> bytes:
    return (f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n{extra}\r\n").encode() + body


def api_answer(seen: Seen) -> bytes:
    """The third-party API: short bodies with their own framing and hop-by-hop
    headers (what a merged map would carry along)."""
    if seen.target.startswith("/cl"):
        return plain_response(b"{}", "Connection: close, X-Hop\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\n"
                                     "Proxy-Authenticate: Basic realm=api\r\nX-Api: cl\r\n")
    if seen.target.startswith("/chunked"):
        return (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nTrailer: X-Trail\r\n"
                b"Upgrade: h2c\r\nTE: trailers\r\nX-Api: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
    # /echo: what the API received (for the call-direction test)
    return plain_response(json.dumps({"ok": True}).encode(), "")


# -- a raw HTTP/1.1 client ----------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name]


class RawClient:
    """One keep-alive connection to the proxy; requests in absolute form."""

    def __init__(self, proxy_port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", proxy_port), timeout=30)
        self.rfile = self.sock.makefile("rb")

    def request(self, method: str, url: str, body: bytes = b"", headers: str = "") -> Answer:
        host = url.split("/")[2]
        head = f"{method} {url} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n{headers}\r\n"
        self.sock.sendall(head.encode() + body)
        status_line, fields = _read_head(self.rfile)
        status = int(status_line.split(" ")[1])
        if method == "HEAD" or status in (204, 304):  # no body, whatever the headers say (RFC 9112 §6.3)
            return Answer(status, fields)
        return Answer(status, fields, _read_message_body(self.rfile, fields))

    def leftover(self, wait: float = 0.3) -> bytes:
        """Bytes the proxy sent beyond the responses read (should be none)."""
        self.sock.settimeout(wait)
        try:
            return self.sock.recv(65536)
        except TimeoutError:
            return b""
        finally:
            self.sock.settimeout(30)

    def close(self) -> None:
        self.rfile.close()
        self.sock.close()


def assert_framed(answer: Answer, body: bytes) -> None:
    assert answer.status == 200, (answer.status, answer.body[:300])
    assert answer.body == body
    assert answer.header("content-length") == [str(len(body))], answer.headers
    for hop in ("transfer-encoding", "connection", "keep-alive", "upgrade", "trailer", "te", "x-hop", "proxy-authenticate"):
        assert not answer.header(hop), (hop, answer.headers)


# -- the workflows --------------------------------------------------------------


def workflows(api: str) -> dict[str, dict]:
    def at(path: str, *nodes: dict, **extra) -> dict:
        return {"match": {"paths": [path]}, **extra, "nodes": list(nodes)}

    def call(kind: str) -> dict:
        return {"name": "API", "type": "call", "url": f"{api}/{kind}"}

    def merge_into(target: str) -> dict:
        return {"name": "MERGE", "type": "jq", "inputs": {"mine": target, "api": "API.headers"}, "jq": ".mine * .api"}

    flows = {}
    for kind in ("cl", "chunked"):
        flows[f"request-{kind}"] = at(f"/request/{kind}", call(kind),
                                      {**merge_into("request.headers"), "output": "service_request.headers"})
        flows[f"response-{kind}"] = at(f"/response/{kind}", call(kind),
                                       {**merge_into("service_response.headers"), "output": "response.headers"})
        flows[f"early-{kind}"] = at(f"/early/{kind}", call(kind), {"name": "SET", "type": "jq", "input": "API.headers",
                                                                 "jq": ".", "output": "response.headers"})
        flows[f"exit-{kind}"] = at(f"/exit/{kind}", call(kind), {"name": "TEXT", "type": "static", "values": {"text": EXIT_BODY}},
                                   {"name": "EXIT", "type": "exit", "inputs": {"headers": "API.headers", "body": "TEXT.text"}})
    flows["removal"] = at("/removal", {"name": "NULLS", "type": "static",
                                       "values": {"content-length": None, "transfer-encoding": None, "x-gone": None}},
                          {"name": "SET", "type": "jq", "input": "NULLS", "jq": ".", "output": "service_request.headers"})
    flows["call-headers"] = at("/call-headers", {"name": "HDRS", "type": "jq", "inputs": {"h": "request.headers"},
                                                 "jq": '.h * {"content-length": "2", "transfer-encoding": "chunked", '
                                                       '"host": "evil.example", "connection": "close", "te": "trailers", '
                                                       '"proxy-authorization": "Basic c2VjcmV0"}'},
                               {"name": "CALL", "type": "call", "method": "POST", "url": f"{api}/echo",
                                "inputs": {"headers": "HDRS", "body": "request.body"}},
                               {"name": "EXIT", "type": "exit", "inputs": {"body": "CALL.body"}})
    flows["bad-name"] = at("/bad-name", {"name": "J", "type": "jq", "input": "request.query", "jq": "{(.n): \"1\"}",
                                         "output": "service_request.headers"})
    flows["bad-value"] = at("/bad-value", {"name": "J", "type": "jq", "input": "request.query",
                                           "jq": '{"x-value": (.v | @base64d)}', "output": "response.headers"})
    flows["bad-exit"] = at("/bad-exit", {"name": "J", "type": "jq", "input": "request.query", "jq": "{(.n): \"1\"}"},
                           {"name": "EXIT", "type": "exit", "inputs": {"headers": "J"}})
    for status in (204, 304):
        flows[f"exit-{status}"] = at(f"/exit-{status}", {"name": "TEXT", "type": "static", "values": {"text": EXIT_BODY}},
                                     {"name": "EXIT", "type": "exit", "status": status, "inputs": {"body": "TEXT.text"}})
    flows["set-status"] = at("/set-status", {"name": "S", "type": "jq", "input": "request.query", "jq": ".s | tonumber"},
                             {"name": "SET", "type": "property", "property": "kong.response.status", "input": "S"},
                             {"name": "TEXT", "type": "static", "values": {"text": EXIT_BODY}, "output": "response.body"})
    flows["call-url"] = at("/call-url", {"name": "CALL", "type": "call", "url": f"{api}/configured",
                                         "inputs": {"url": "request.query.u"}},
                           {"name": "EXIT", "type": "exit", "inputs": {"body": "CALL.body"}})
    flows["target"] = at("/target", {"name": "T", "type": "jq", "input": "request.query", "jq": ".t"},
                         {"name": "SET", "type": "property", "property": "kong.service.target", "input": "T"})
    flows["jwt"] = at("/jwt", {"name": "KEY", "type": "static", "values": {"secret": JWT_SECRET}},
                      {"name": "VERIFY", "type": "jwt_verify", "inputs": {"token": "request.headers.authorization",
                                                                          "key": "KEY.secret"}},
                      {"name": "EXIT", "type": "exit", "inputs": {"body": "VERIFY.claims"}}, debug=True)
    return flows


@pytest.fixture(scope="module")
def env(tmp_path_factory, mitm_confdir) -> Iterator[tuple[Mitmdump, RawServer, RawServer]]:
    upstream = RawServer()
    api = RawServer(api_answer)
    cfg = write_workflows(tmp_path_factory.mktemp("smuggling"), workflows(api.url))
    mitm = Mitmdump(cfg, confdir=mitm_confdir, quiet=True, log_level="debug", start=False)
    try:
        mitm.start()
        yield mitm, upstream, api
    finally:
        code = mitm.stop()
        upstream.close()
        api.close()
        print(f"\n----- {mitm!r} exit={code} log tail -----\n{mitm.log_tail(60)}")


@pytest.fixture
def raw(env) -> Iterator[RawClient]:
    c = RawClient(env[0].port)
    yield c
    c.close()


# -- request direction ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["cl", "chunked"])
def test_merged_call_headers_do_not_reframe_the_service_request(env, raw, kind):
    mitm, upstream, _api = env
    upstream.take()
    offset = mitm.log_offset()
    answer = raw.request("POST", f"{upstream.url}/request/{kind}", REQUEST_BODY, "Content-Type: text/plain\r\n")
    assert_framed(answer, UPSTREAM_BODY)
    (seen,) = upstream.take()  # exactly one request: nothing smuggled
    assert seen.target.endswith(f"/request/{kind}")
    assert seen.body == REQUEST_BODY
    assert seen.header("content-length") == [str(len(REQUEST_BODY))]
    assert not seen.header("transfer-encoding") and not seen.header("proxy-authenticate") and not seen.header("x-hop")
    assert seen.header("x-api") == [kind]  # the rest of the merge went through
    dropped = "content-length" if kind == "cl" else "transfer-encoding"
    mitm.wait_for_log(rf"service_request: header map entries not written \(framing/hop-by-hop, set by the proxy\): .*{dropped}",
                      since=offset, timeout=5)
    # the same connection serves the next request, correctly framed
    assert_framed(raw.request("POST", f"{upstream.url}/request/{kind}", REQUEST_BODY), UPSTREAM_BODY)
    assert len(upstream.take()) == 1
    assert raw.leftover() == b""


def test_a_null_for_a_framing_header_is_ignored(env, raw):
    _, upstream, _ = env
    upstream.take()
    answer = raw.request("POST", f"{upstream.url}/removal", REQUEST_BODY, "X-Gone: 1\r\n")
    assert_framed(answer, UPSTREAM_BODY)
    (seen,) = upstream.take()
    assert seen.body == REQUEST_BODY and seen.header("content-length") == [str(len(REQUEST_BODY))]
    assert not seen.header("x-gone")  # an ordinary null removal still works


# -- response direction -------------------------------------------------------------


@pytest.mark.parametrize("path", ["response/cl", "response/chunked", "early/cl", "early/chunked"])
def test_merged_call_headers_do_not_reframe_the_response(env, raw, path):
    _, upstream, _ = env
    for _ in range(2):  # keep-alive: a wrong frame would corrupt the second answer
        answer = raw.request("GET", f"{upstream.url}/{path}")
        assert_framed(answer, UPSTREAM_BODY)
        assert answer.header("x-api") == [path.split("/")[1]]
    assert raw.leftover() == b""


@pytest.mark.parametrize("kind", ["cl", "chunked"])
def test_exit_headers_from_a_call_do_not_reframe_the_exit(env, raw, kind):
    _, upstream, _ = env
    upstream.take()
    for _ in range(2):
        answer = raw.request("GET", f"{upstream.url}/exit/{kind}")
        assert_framed(answer, EXIT_BODY.encode())
        assert answer.header("x-api") == [kind]
    assert raw.leftover() == b""
    assert upstream.take() == []  # an exit never reaches the upstream


# -- answers that carry no body ---------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "exit-204", 204), ("GET", "exit-304", 304), ("HEAD", "exit/cl", 200),  # an exit's body
    ("GET", "set-status?s=204", 204), ("GET", "set-status?s=304", 304),  # a body patch on the upstream's answer
    ("HEAD", "set-status?s=200", 200),
    ("HEAD", "bad-name?n=x%20y", 500),  # a failure's JSON body
])
def test_no_body_goes_out_where_the_client_reads_none(env, raw, method, path, status):
    """A HEAD's answer, a 204 and a 304 have no body (RFC 9110 §6.4.1): one
    sent anyway would be read as the next response on the connection."""
    answer = raw.request(method, f"{env[1].url}/{path}")
    assert answer.status == status, answer
    if status == 204:
        assert answer.header("content-length") == [], answer.headers
    assert raw.leftover() == b""
    assert_framed(raw.request("GET", f"{env[1].url}/response/cl"), UPSTREAM_BODY)  # the connection still frames right


# -- a call's own headers ---------------------------------------------------------------


def test_merged_framing_headers_do_not_break_a_call(env, raw):
    _, upstream, api = env
    api.take()
    answer = raw.request("POST", f"{upstream.url}/call-headers", REQUEST_BODY, "Content-Type: text/plain\r\n")
    assert answer.status == 200, answer.body[:300]
    assert json.loads(answer.body) == {"ok": True}
    (seen,) = api.take()  # one request on the API's side, the whole body
    assert seen.target == "/echo" and seen.body == REQUEST_BODY
    assert seen.header("content-length") == [str(len(REQUEST_BODY))]
    assert not seen.header("transfer-encoding") and not seen.header("proxy-authorization") and not seen.header("te")
    assert seen.header("host") == [api.url.split("/")[2]]


@pytest.mark.parametrize(("path", "sent"), [
    ("/a b HTTP/1.1", "/a%20b%20HTTP/1.1"),  # raw, the space split the request line: the API saw `/a`
    ("/caf\u00e9?q=x y&r=a+b%2B", "/caf%C3%A9?q=x%20y&r=a+b%2B"),  # escapes and `+` as written
    ('/"<x>"', "/%22%3Cx%3E%22"),
])
def test_a_call_url_is_sent_as_a_uri(env, raw, path, sent):
    _, upstream, api = env
    api.take()
    answer = raw.request("GET", f"{upstream.url}/call-url?{httpx.QueryParams({'u': api.url + path})}")
    assert answer.status == 200, answer.body[:300]
    assert [seen.target for seen in api.take()] == [sent]


def test_a_call_url_with_a_space_in_its_host_is_a_clean_500(env, raw):
    _, upstream, _api = env
    assert_clean_500(raw.request("GET", f"{upstream.url}/call-url?{httpx.QueryParams({'u': 'http://a b/'})}"))


# -- header names and values --------------------------------------------------------


def assert_clean_500(answer: Answer) -> None:
    assert answer.status == 500, (answer.status, answer.body[:300])
    body = json.loads(answer.body)
    assert body["message"] == GENERIC_MESSAGE and set(body) == {"message", "request_id"}


@pytest.mark.parametrize("name", ["bad name", "x:y", "caf\u00e9", "x(y)", "a/b", "", "x@y", '"q"'])
def test_a_header_name_that_is_not_a_token_is_a_clean_500(env, raw, name):
    mitm, upstream, _ = env
    upstream.take()
    offset = mitm.log_offset()
    for path in ("bad-name", "bad-exit"):
        answer = raw.request("GET", f"{upstream.url}/{path}?{httpx.QueryParams({'n': name})}")
        assert_clean_500(answer)
    assert upstream.take() == []  # nothing was sent upstream
    mitm.wait_for_log(r"invalid header name", since=offset, timeout=5)
    # the proxy (and this connection) keep serving
    assert_framed(raw.request("POST", f"{upstream.url}/request/cl", REQUEST_BODY), UPSTREAM_BODY)


@pytest.mark.parametrize("target", ["::1\r\nX-Injected: 1", "127.0.0.1 HTTP/1.1", "127.0.0.1/admin?", "u@127.0.0.1"])
def test_a_target_host_that_is_not_a_host_is_a_clean_500(env, raw, target):
    """The host becomes the Host header (and the request line in upstream
    proxy mode): no CR/LF, space, `/` or `@` gets there."""
    _, upstream, _ = env
    upstream.take()
    port = upstream.url.rsplit(":", 1)[1]
    assert_clean_500(raw.request("GET", f"{upstream.url}/target?{httpx.QueryParams({'t': f'{target}:{port}'})}"))
    assert upstream.take() == []
    ok = raw.request("GET", f"{upstream.url}/target?{httpx.QueryParams({'t': f'127.0.0.1:{port}'})}")
    assert ok.status == 200 and ok.body == UPSTREAM_BODY


@pytest.mark.parametrize("value", ["a\x01b", "bell\x07", "del\x7f", "esc\x1b[31m", "nul\x00", "cr\rlf"])
def test_a_control_character_in_a_value_is_a_clean_500(env, raw, value):
    _, upstream, _ = env
    v = base64.b64encode(value.encode()).decode()
    assert_clean_500(raw.request("GET", f"{upstream.url}/bad-value?{httpx.QueryParams({'v': v})}"))
    assert_framed(raw.request("GET", f"{upstream.url}/response/cl"), UPSTREAM_BODY)


@pytest.mark.parametrize("value", ["tab\there", "caf\u00e9 \u2603", "plain"])
def test_tab_and_non_ascii_values_pass(env, raw, value):
    _, upstream, _ = env
    v = base64.b64encode(value.encode()).decode()
    answer = raw.request("GET", f"{upstream.url}/bad-value?{httpx.QueryParams({'v': v})}")
    assert answer.status == 200 and answer.body == UPSTREAM_BODY
    assert [x.encode("latin-1").decode("utf-8") for x in answer.header("x-value")] == [value]


# -- JWT exp out of range -------------------------------------------------------------


def hs256(payload_text: str) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(payload_text.encode())
    signature = hmac.new(JWT_SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


@pytest.mark.parametrize("exp", ["1e300", "-1e300", "1" + "0" * 400, "-" + "9" * 30, "1e400", '"tomorrow"', "NaN", "true"])
def test_an_out_of_range_exp_is_a_clean_rejection(env, raw, exp):
    _mitm, upstream, _ = env
    token = hs256(f'{{"sub":"u","exp":{exp}}}')
    answer = raw.request("GET", f"{upstream.url}/jwt", headers=f"Authorization: Bearer {token}\r\n")
    assert answer.status == 500, answer.body[:300]
    body = json.loads(answer.body)
    assert body["node"]["name"] == "VERIFY", body
    assert "JWT verification failed" in body["error"] and "Traceback" not in body["error"], body
    # a good token still passes on the same proxy
    good = hs256('{"sub":"u","exp":4102444800}')
    answer = raw.request("GET", f"{upstream.url}/jwt", headers=f"Authorization: Bearer {good}\r\n")
    assert answer.status == 200 and json.loads(answer.body)["sub"] == "u"


# -- other limits: the memory cache's byte bound, through mitmdump ------------------------


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_the_memory_cache_bound_counts_bytes_not_characters(tmp_path, mitm_confdir):
    """80 values of 1M emoji (4 MB each in memory): the 64 MiB bound must
    hold about 16 of them, not 64 (what counting characters allowed)."""
    cfg = write_workflows(tmp_path, {"store": {
        "resources": {"cache": {"strategy": "memory", "memory": {"dictionary_name": "dk_bytes_test"}}},
        "nodes": [{"name": "STORE", "type": "cache", "inputs": {"key": "request.query.k", "data": "request.body"}},
                  {"name": "EXIT", "type": "exit", "inputs": {"body": "STORE.stored"}}],
    }})
    body = ("\U0001f600" * 1_000_000).encode()
    with Mitmdump(cfg, confdir=mitm_confdir, quiet=True) as mitm, \
            httpx.Client(proxy=mitm.proxy_url, trust_env=False, timeout=60) as c:
        def store(i: int) -> None:
            r = c.post(f"http://cache.test/?k=key-{i}", content=body, headers={"content-type": "text/plain"})
            assert r.status_code == 200 and r.json() is True, r.text[:300]

        for i in range(4):  # warm up: pools, buffers, first allocations
            store(i)
        before = rss_bytes(mitm.pid)
        for i in range(4, 80):
            store(i)
        growth = rss_bytes(mitm.pid) - before
    print(f"\nRSS growth after 76 more 4 MB values: {growth / 2**20:.0f} MiB")
    # bound 64 MiB (of which ~16 MiB already held after warm-up); counting
    # characters would have let the cache grow by about 240 MiB
    assert growth < 140 * 2**20, growth / 2**20
