"""`match` cannot be bypassed by spelling a path or host differently, through
a real mitmdump in regular proxy mode and in reverse mode
(docs/hardening.md#matching).

Guards are workflows whose `exit` answers 403: a path prefix (`/admin`), a
`~` regex (`~/vault\\b`) and a host (`api.test`). A catch-all workflow
answers 200 with `request.path` and `request.raw_path`. Requests are sent
with `http.client`, which sends the request target exactly as given (httpx
would normalize some spellings itself).

Kong's rules (Kong/developer.konghq.com): app/gateway/routing/traditional.md
("Path", "Path normalization": escapes of unreserved characters decoded,
dot-segments removed, `//` merged; plain paths are prefixes, so `/admin`
matches `/administrator`) and app/_references/gateway/pdk/reference/3.14/
kong.request.md (get_path: `%2f` stays `%2F`, `%20` and UTF-8 escapes are
decoded).
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import Mitmdump, MockServer, Reply
from tests.reliability._support import write_workflows

GUARD_HOST = "api.test"


def guard(key: str, value: list[str], name: str) -> dict[str, Any]:
    return {"match": {key: value},
            "nodes": [{"name": "DENY", "type": "exit", "status": 403, "inputs": {"body": "WHY"}},
                      {"name": "WHY", "type": "static", "values": {"guard": name}}]}


def workflows(mock: MockServer) -> dict[str, dict]:
    echo = {"name": "ECHO", "type": "jq", "inputs": {"path": "request.path", "raw": "request.raw_path"},
            "jq": "{path: .path, raw_path: .raw}"}
    return {
        "prefix-guard": guard("paths", ["/admin"], "prefix"),
        "regex-guard": guard("paths", ["~/vault\\b"], "regex"),
        "host-guard": guard("hosts", [GUARD_HOST], "host"),
        # a regex written with escapes: normalized as Kong does (`%2f` -> `%2F`, `%66` -> `f`)
        "escaped-regex-guard": guard("paths", ["~/%66iles%2fsecret\\b"], "escaped-regex"),
        # request.query straight into service_request.query: nothing lost
        "query-forward": {"match": {"paths": ["/q/forward"]},
                          "nodes": [{"name": "Q", "type": "property", "property": "kong.ctx.shared.q",
                                     "input": "request.query", "output": "service_request.query"}]},
        # a call URL with its own query, with and without a `query` input
        "call-query": {"match": {"paths": ["/q/call"]},
                       "nodes": [{"name": "ADD", "type": "static", "values": {"added": "x y"}},
                                 {"name": "WITH", "type": "call", "url": f"{mock.url}/called/with?q=a+b&keep=%ff",
                                  "inputs": {"query": "ADD"}},
                                 {"name": "WITHOUT", "type": "call", "url": f"{mock.url}/called/without?q=a+b&keep=%ff"},
                                 {"name": "DONE", "type": "exit", "status": 200,
                                  "inputs": {"body.with": "WITH.body", "body.without": "WITHOUT.body"}}]},
        "echo": {"nodes": [echo, {"name": "EXIT", "type": "exit", "status": 200, "inputs": {"body": "ECHO"}}]},
    }


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServer]:
    server = MockServer().start()
    server.route("GET", "/called/with", Reply(json="with"))
    server.route("GET", "/called/without", Reply(json="without"))
    server.route("*", "/q/forward", Reply(json={"upstream": True}))
    server.route("*", "/kept-host", lambda req: Reply(json={"host": req.header("host")}))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module", params=["regular", "reverse"])
def proxy(request, mock, tmp_path_factory, mitm_confdir) -> Iterator[tuple[str, Mitmdump]]:
    mode = request.param
    cfg = write_workflows(tmp_path_factory.mktemp(f"match-{mode}"), workflows(mock))
    mitm = Mitmdump(cfg, confdir=mitm_confdir, quiet=True,
                    mode=f"reverse:{mock.url}" if mode == "reverse" else None)
    try:
        yield mode, mitm
    finally:
        code = mitm.stop()
        print(f"\n----- {mitm!r} exit={code} log tail -----\n{mitm.log_tail(40)}")


def send(proxy: tuple[str, Mitmdump], target: str, host: str = "other.test", *,
         host_header: str | None = None) -> tuple[int, Any]:
    """GET `target` (sent byte for byte) for `host`: in regular mode as an
    absolute-form URL (plus `Host: host_header`), in reverse mode with
    `Host: host`."""
    mode, mitm = proxy
    conn = http.client.HTTPConnection("127.0.0.1", mitm.port, timeout=10)
    try:
        if mode == "regular":
            conn.putrequest("GET", f"http://{host}{target}", skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", host_header or host)
        else:
            conn.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", host)
        conn.putheader("Connection", "close")
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
        try:
            return resp.status, json.loads(body)
        except ValueError:
            return resp.status, body.decode("utf-8", "replace")
    finally:
        conn.close()


def spellings(word: str) -> list[str]:
    """Ways to write `/WORD/users` (or `/WORD`) that Kong normalizes back."""
    first = f"%{ord(word[0]):02x}"
    upper = "".join(f"%{ord(c):02X}" for c in word)  # /%61%64%6D%69%6E
    lettered = [i for i, c in enumerate(word) if not f"{ord(c):02x}".isdigit()]
    mixed = "".join(f"%{ord(c):02x}" if i in lettered[::2] else f"%{ord(c):02X}" for i, c in enumerate(word))
    return [
        f"/{word}/users",
        f"//{word}/users",
        f"/./{word}/users",
        f"/x/../{word}/users",
        f"/{first}{word[1:]}/users",
        f"/{upper}/users",
        f"/{mixed}/users",
        f"/{word}/./users",
        f"///{word}",
        f"/{word}/../{word}/users",
        f"/x/%2e%2e/{word}/users",
        f"/x/%2E%2e/{word}",
        f"/.//{word}",
        f"/{word};x",
        f"/%2e/{word}",
        f"/../{word}",
        f"/x/..//{word}/",
        f"/{word}%2fusers",
    ]


@pytest.mark.parametrize("target", ["/files%2fsecret", "/files%2Fsecret", "/%66iles%2fsecret/x", "//files%2Fsecret"])
def test_a_regex_written_with_escapes_is_not_bypassed(proxy, target):
    status, body = send(proxy, target)
    assert (status, body) == (403, {"guard": "escaped-regex"}), target


def test_spellings_really_differ_from_the_plain_path():
    """Guards against a test that cannot fail: the spellings are distinct and
    (but the first) not the plain path; mixed-case hex is mixed."""
    for word in ("admin", "vault"):
        s = spellings(word)
        assert len(set(s)) == len(s) >= 15
        assert all(not x.startswith(f"/{word}/users") for x in s[1:])
    assert "/%61%64%6D%69%6E/users" in spellings("admin") and "/%61%64%6d%69%6E/users" in spellings("admin")
    assert "/%76%61%75%6c%74/users" in spellings("vault") or "/%76%61%75%6C%74/users" in spellings("vault")


@pytest.mark.parametrize("target", spellings("admin"))
def test_prefix_guard_is_not_bypassed(proxy, target):
    status, body = send(proxy, target)
    assert (status, body) == (403, {"guard": "prefix"}), target


@pytest.mark.parametrize("target", spellings("vault"))
def test_regex_guard_is_not_bypassed(proxy, target):
    """Kong matches `~` regexes (anchored at the start) against the
    normalized path as well (app/gateway/breaking-changes.md, "New router")."""
    status, body = send(proxy, target)
    assert (status, body) == (403, {"guard": "regex"}), target


@pytest.mark.parametrize("host", ["api.test", "API.TEST", "Api.Test", "api.test.", "api.test:80", "api.test.:8080", "API.TEST.:80"])
def test_host_guard_is_not_bypassed(proxy, host):
    status, body = send(proxy, "/public", host=host)
    assert (status, body) == (403, {"guard": "host"}), host


def test_a_contrary_host_header_does_not_bypass_the_host_guard_in_regular_mode(proxy):
    """In regular mode mitmproxy sends the request where its URL says, with
    the client's Host header: the destination may serve the host the
    header names (a shared server: "domain fronting"). When the two hosts
    select different workflows, neither hides the other: the request is
    refused (400), in both directions."""
    if proxy[0] != "regular":
        pytest.skip("regular proxy mode only")
    for url_host, header in ((GUARD_HOST, "other.test"), ("other.test", GUARD_HOST), ("other.test", "API.test.:8080")):
        status, body = send(proxy, "/public", host=url_host, host_header=header)
        assert status == 400, (url_host, header, body)
        assert body["message"] == "Bad request: the request names more than one host"


def test_a_host_header_that_selects_the_same_workflow_is_let_through(proxy):
    """Only a disagreement that matters is refused: a Host header naming
    another host that no `hosts` rule tells apart from the destination (an
    IP address and a name, say) selects the same workflow."""
    if proxy[0] != "regular":
        pytest.skip("regular proxy mode only")
    status, body = send(proxy, "/p/x", host="127.0.0.1:9", host_header="other.test")
    assert (status, body) == (200, {"path": "/p/x", "raw_path": "/p/x"})


def send_raw(proxy: tuple[str, Mitmdump], head: str) -> tuple[int, bytes]:
    """Send `head` (request line and headers, `\n`-separated) as is; the status and body."""
    _mode, mitm = proxy
    with socket.create_connection(("127.0.0.1", mitm.port), timeout=10) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize(
    "head",
    [
        f"GET /public HTTP/1.1\nHost: other.test\nHost: {GUARD_HOST}",
        f"GET /public HTTP/1.1\nHost: {GUARD_HOST}\nHost: other.test",
        f"GET http://{GUARD_HOST}/public HTTP/1.1\nHost: other.test",
        f"GET http://{GUARD_HOST}/public HTTP/1.1",
    ],
)
def test_reverse_mode_requests_that_name_two_hosts_are_refused(proxy, head):
    """Reverse mode matches the client's Host, but a second Host field or an
    absolute-form target (which mitmproxy passes on to the upstream, and
    which RFC 9112 3.2.2 tells a server to prefer over Host) can name
    another host: refused when that host selects another workflow. nginx,
    and so Kong, answers 400 to a repeated Host too."""
    if proxy[0] != "reverse":
        pytest.skip("reverse mode only")
    status, body = send_raw(proxy, head)
    assert status == 400, body
    assert json.loads(body)["message"] == "Bad request: the request names more than one host"


@pytest.mark.parametrize(
    "target",
    [
        "/admi", "/Admin/users", "/ADMIN", "/x/admin", "/%2561dmin", "/public/admin",  # not /admin
        "/vaulted", "/VAULT", "/x/vault", "/%2576ault",  # not /vault\b
    ],
)
def test_other_paths_are_not_guarded(proxy, target):
    """Paths are case-sensitive; an escaped `%` (`%25`) is not decoded twice."""
    status, body = send(proxy, target)
    assert status == 200, (target, body)
    assert body["raw_path"] == target


@pytest.mark.parametrize("host", ["api.test.evil", "xapi.test", "api.tes", "api-test", "evil.api.test"])
def test_other_hosts_are_not_guarded(proxy, host):
    status, body = send(proxy, "/public", host=host)
    assert status == 200, (host, body)


def test_prefixes_match_as_in_kong(proxy):
    """A plain path is a prefix, not a segment: Kong's `/admin` matches
    `/administrator` (app/gateway/routing/traditional.md, "Path")."""
    assert send(proxy, "/administrator") == (403, {"guard": "prefix"})


@pytest.mark.parametrize(
    "target,path",
    [
        ("/p/%7Euser/%61/./b/../c", "/p/~user/a/c"),
        ("//p//x/", "/p/x/"),
        ("/p/caf%c3%a9%20x", "/p/café x"),
        ("/p/a%2fb%3a", "/p/a%2Fb%3A"),
        ("/p/%zz", "/p/%zz"),
        ("/../p", "/p"),
    ],
)
def test_request_path_is_the_path_the_matcher_tests(proxy, target, path):
    """`request.path` is the normalized path (the one `match.paths` tests),
    `request.raw_path` the path as sent."""
    status, body = send(proxy, target)
    assert status == 200
    assert body == {"path": path, "raw_path": target}


def test_query_bytes_survive_request_to_service_request(proxy, mock):
    """`%ff` is not UTF-8: it reaches the upstream as `%FF` (same bytes);
    `+` is a space both ways."""
    mode, _mitm = proxy
    mock.clear()
    target = "/q/forward?a=%ff&b=%c3%a9&c=a+b&d=%2B&flag"
    status, body = send(proxy, target, host=mock.authority if mode == "regular" else "other.test")
    assert (status, body) == (200, {"upstream": True})
    assert mock.last_request.raw_query == "a=%FF&b=%C3%A9&c=a%20b&d=%2B&flag"


def test_call_url_query_is_sent_as_written(proxy, mock):
    """`q=a+b` in a call's `url` reaches the upstream as `q=a+b` (not
    re-encoded to `q=a%20b` or `q=a%2Bb`); a `query` input replaces the
    URL's query, as Kong's lua-resty-http does."""
    mock.clear()
    status, body = send(proxy, "/q/call")
    assert (status, body) == (200, {"with": "with", "without": "without"})
    queries = {r.path: r.raw_query for r in mock.requests}
    assert queries == {"/called/with": "added=x%20y", "/called/without": "q=a+b&keep=%ff"}


def test_reverse_mode_still_sends_the_upstreams_host(proxy, mock):
    """Matching on the client's Host does not change what mitmproxy's reverse
    mode sends upstream (keep_host_header off): the upstream's own host."""
    if proxy[0] != "reverse":
        pytest.skip("reverse mode only")
    mock.clear()
    mock_status, _ = send(proxy, "/q/forward", host="other.test")
    assert mock_status == 200
    assert mock.last_request.header("host") == mock.authority


def test_keep_host_header_set_by_the_user_is_respected(mock, tmp_path, mitm_confdir):
    """With `keep_host_header=true` the upstream gets the client's Host, as
    mitmproxy does without Datakit; host rules still see it."""
    cfg = write_workflows(tmp_path / "wf", {"host-guard": guard("hosts", [GUARD_HOST], "host"),
                                            "pass": {"nodes": [{"name": "S", "type": "static", "values": {}}]}})
    with Mitmdump(cfg, confdir=mitm_confdir, quiet=True, mode=f"reverse:{mock.url}",
                  options={"keep_host_header": True}) as mitm:
        proxy = ("reverse", mitm)
        assert send(proxy, "/x", host="API.test.") == (403, {"guard": "host"})
        mock.clear()
        assert send(proxy, "/q/forward", host="other.test:8080")[0] == 200
        assert mock.last_request.header("host") == "other.test:8080"
