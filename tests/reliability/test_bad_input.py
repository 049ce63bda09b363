"""Bad input through a real mitmdump: huge and
malformed request bodies, invalid UTF-8, header CR/LF injection attempts
through jq output, deep JSON nesting, and secrets that must not leak.

Each hostile request gets a clean answer (a correct 200, or a 500 with the
generic JSON body and no traceback), nothing is injected upstream or into
the client's response, and the proxy keeps serving. One mitmdump serves the
whole module (its log is checked for secrets at the end).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from tests.harness import Mitmdump, MockServer, Reply, free_port
from tests.reliability._support import GENERIC_MESSAGE, SCRIPTS, settle, write_workflows

SECRET = "s3cr3t-6f1d7a0c-reliability-token"
SECRET_ENV = "DK_RELIABILITY_SECRET"
BIG = 20 * 1024 * 1024  # 20 MB
DEEP = 100_000  # levels of JSON nesting

SIZE_JQ = '{type: type, length: (if type == "string" or type == "array" or type == "object" then length else null end)}'


def workflows(mock: MockServer, closed_port: int) -> dict[str, dict]:
    def at(path: str, *nodes: dict, **extra) -> dict:
        return {"match": {"paths": [path]}, **extra, "nodes": list(nodes)}

    env_name = SECRET_ENV.lower().replace("_", "-")
    vault = {"vault": {"token": "{vault://env/" + env_name + "}"}}
    return {
        "health": at("/health", {"name": "EXIT", "type": "exit", "status": 200}),
        # what did the body decode to?
        "body-jq": at("/body/jq", {"name": "J", "type": "jq", "input": "request.body", "jq": SIZE_JQ},
                      {"name": "EXIT", "type": "exit", "inputs": {"body": "J"}}),
        # the decoded body straight back as the answer
        "body-echo": at("/body/echo", {"name": "EXIT", "type": "exit", "inputs": {"body": "request.body"}}),
        # the body read and written back unchanged (no jq: lossless)
        "body-forward": at("/body/forward", {"name": "P", "type": "property", "property": "kong.ctx.shared.body",
                                             "input": "request.body", "output": "service_request.body"}),
        # a JSON text inside a text body, parsed by jq
        "body-fromjson": at("/body/fromjson", {"name": "J", "type": "jq", "input": "request.body", "jq": "fromjson | " + SIZE_JQ},
                            {"name": "EXIT", "type": "exit", "inputs": {"body": "J"}}),
        # request headers read by jq
        "headers-jq": at("/headers/jq", {"name": "J", "type": "jq", "input": "request.headers", "jq": '.["x-raw"]'},
                         {"name": "EXIT", "type": "exit", "inputs": {"body": "J"}}),
        # deep JSON from the upstream, read in the response phase
        "deep-resp": at("/deep/resp", {"name": "J", "type": "jq", "input": "service_response.body", "jq": SIZE_JQ,
                                       "output": "response.body"}),
        # header values and names chosen by the client, through jq, into headers
        "inject-service-query": at("/inject/service-query", {"name": "J", "type": "jq", "input": "request.query",
                                                             "jq": '{"x-injected": .v}', "output": "service_request.headers"}),
        "inject-service-name": at("/inject/service-name", {"name": "J", "type": "jq", "input": "request.query",
                                                           "jq": '{(.n): "1"}', "output": "service_request.headers"}),
        "inject-service-body": at("/inject/service-body", {"name": "J", "type": "jq", "input": "request.body",
                                                           "jq": ".headers", "output": "service_request.headers"}),
        "inject-response": at("/inject/response", {"name": "J", "type": "jq", "input": "request.body",
                                                   "jq": ".headers", "output": "response.headers"}),
        "inject-response-phase": at("/inject/late", {"name": "J", "type": "jq", "input": "service_response.body",
                                                               "jq": ".body | fromjson | .headers", "output": "response.headers"}),
        "inject-exit": at("/inject/exit", {"name": "J", "type": "jq", "input": "request.body", "jq": ".headers"},
                          {"name": "EXIT", "type": "exit", "inputs": {"headers": "J"}}),
        # a jq error message quoting the client, for the log
        "log-inject": at("/log/inject", {"name": "J", "type": "jq", "input": "request.query", "jq": 'error("bad: " + .v)'},
                         {"name": "EXIT", "type": "exit", "inputs": {"body": "J"}}),
        # secrets: a jq error message and a failing call that carry the secret
        "secret": at("/secret/plain", {"name": "J", "type": "jq", "inputs": {"t": "vault.token", "b": "request.body"},
                                 "jq": 'if .b.fail then error("rejected token " + .t) else {ok: true} end'},
                     {"name": "EXIT", "type": "exit", "inputs": {"body": "J"}}, resources=vault),
        "secret-debug": at("/secret/debug", {"name": "J", "type": "jq", "inputs": {"t": "vault.token"},
                                             "jq": 'error("rejected token " + .t)'},
                           {"name": "EXIT", "type": "exit", "inputs": {"body": "J"}}, resources=vault, debug=True),
        "secret-call": at("/secret/call", {"name": "URL", "type": "jq", "inputs": {"t": "vault.token"},
                                           "jq": f'"http://127.0.0.1:{closed_port}/" + .t + "?key=" + .t'},
                          {"name": "CALL", "type": "call", "url": "http://127.0.0.1:9/",
                           "inputs": {"url": "URL", "headers.authorization": "vault.token"}},
                          {"name": "EXIT", "type": "exit", "inputs": {"body": "CALL.body"}}, resources=vault, debug=True),
    }


@pytest.fixture(scope="module")
def env(tmp_path_factory, mitm_confdir) -> Iterator[tuple[Mitmdump, MockServer]]:
    mock = MockServer().start()
    mock.route("POST", "/body/forward", Reply(json={"received": True}))
    deep = "[" * DEEP + "]" * DEEP
    mock.route("GET", "/deep/resp", Reply(body=deep, headers={"Content-Type": "application/json"}))
    cfg = write_workflows(tmp_path_factory.mktemp("bad-input"), workflows(mock, free_port()))
    # its 20-25 MB bodies are over the 10m default body limit, and jq over
    # them (in a worker: encode, pipe, parse, run) takes 1-2.5 s on a loaded
    # 2-core machine, over the 1 s default jq budget: raised as a user would
    options = {"datakit_body_size_limit": "32m", "datakit_jq_timeout": 15000}
    mitm = Mitmdump(cfg, script=SCRIPTS, confdir=mitm_confdir, quiet=True, options=options,
                    env={SECRET_ENV: SECRET}, start=False)
    try:
        mitm.start()
        yield mitm, mock
    finally:
        code = mitm.stop()
        mock.stop()
        print(f"\n----- {mitm!r} exit={code} log tail -----\n{mitm.log_tail(80)}")


@pytest.fixture
def mock(env) -> MockServer:
    return env[1]


def assert_clean_500(r: httpx.Response) -> None:
    assert r.status_code == 500, (r.status_code, r.text[:500])
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"message", "request_id"} and body["message"] == GENERIC_MESSAGE, body
    assert "Traceback" not in r.text


def assert_serving(client: httpx.Client, mock: MockServer) -> None:
    assert client.get(f"{mock.url}/health").status_code == 200


# -- huge bodies -------------------------------------------------------------


def test_huge_json_body_is_read_by_jq(client, mock):
    items = BIG // 12
    body = json.dumps(["abcdefghij"] * items).encode()
    assert len(body) >= BIG
    started = time.perf_counter()
    r = client.post(f"{mock.url}/body/jq", content=body, headers={"content-type": "application/json"})
    elapsed = time.perf_counter() - started
    print(f"\n{len(body) / 1e6:.1f} MB JSON body through jq: {elapsed:.2f} s")
    assert r.status_code == 200, r.text[:500]
    assert r.json() == {"type": "array", "length": items}
    assert_serving(client, mock)


def test_huge_invalid_json_body_is_a_string(client, mock):
    body = b'{"unterminated": "' + b"x" * BIG
    r = client.post(f"{mock.url}/body/jq", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text[:500]
    assert r.json() == {"type": "string", "length": len(body)}
    assert_serving(client, mock)


def test_huge_binary_body_is_forwarded_byte_for_byte(client, mock):
    chunk = bytes(range(256)) + b"\xff\xfe\xc3\x28\xa0\xa1\xe2\x28\xa1"  # not UTF-8
    body = chunk * (BIG // len(chunk) + 1)
    mock.clear()
    r = client.post(f"{mock.url}/body/forward", content=body, headers={"content-type": "application/octet-stream"})
    assert r.status_code == 200, r.text[:500]
    (seen,) = mock.requests_for("/body/forward")
    assert len(seen.body) == len(body) and seen.body == body
    assert seen.headers.get("content-length") == str(len(body))


# -- malformed bodies --------------------------------------------------------

INVALID_UTF8 = [b"\xff", b"\xc3\x28", b"caf\xe9", b'{"a": "\xe9"}', b"\xf0\x28\x8c\xbc", b"ok\x00nul"]
CONTENT_TYPES = ["application/json", "application/vnd.api+json", "text/plain", "application/octet-stream", None]


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_invalid_utf8_bodies_are_strings_and_forwarded_losslessly(client, mock, content_type):
    headers = {"content-type": content_type} if content_type else {}
    for body in INVALID_UTF8:
        r = client.post(f"{mock.url}/body/jq", content=body, headers=headers)
        assert r.status_code == 200, (body, r.text[:300])
        assert r.json()["type"] == "string", (body, r.text)
        mock.clear()
        r = client.post(f"{mock.url}/body/forward", content=body, headers=headers)
        assert r.status_code == 200, (body, r.text[:300])
        assert mock.requests_for("/body/forward")[0].body == body


MALFORMED_JSON = [b'{"a": ', b"[1, 2", b"{'a': 1}", b'{"a": 1}}', b"\x00", b"   ", b'{"a": "\\x"}', b"[" * 500, b"tru"]


@pytest.mark.parametrize("body", MALFORMED_JSON, ids=[repr(b)[:20] for b in MALFORMED_JSON])
def test_malformed_json_bodies_give_clean_answers(client, mock, body):
    """Invalid JSON under a JSON content type reaches jq as the raw string."""
    r = client.post(f"{mock.url}/body/jq", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text[:300]
    result = r.json()
    if body.strip():
        assert result == {"type": "string", "length": len(body.decode())}, result
    else:
        assert result["type"] in ("string", "null")


@pytest.mark.parametrize("body", [b"NaN", b'{"a": Infinity}', b"[1e999]"])
def test_non_standard_json_numbers_are_a_node_error_not_a_crash(env, client, mock, body):
    mitm, _ = env
    offset = mitm.log_offset()
    r = client.post(f"{mock.url}/body/echo", content=body, headers={"content-type": "application/json"})
    assert r.status_code in (200, 500)
    if r.status_code == 500:
        assert_clean_500(r)
    time.sleep(0.2)
    new_log = mitm.log_text()[offset:]
    assert "internal error" not in new_log and "Traceback" not in new_log, new_log[-2000:]


SURROGATE_BODIES = {
    # CESU-8 bytes of U+D800: not UTF-8, so not JSON text -- a string, passed on as is
    "cesu-bytes": b'{"a": "\xed\xa0\x80"}',
    # valid JSON syntax whose strings hold lone surrogate escapes
    "escape-high": b'{"a": "\\ud800"}',
    "escape-low": b'{"a": "\\udcff"}',
}


@pytest.mark.parametrize("body", list(SURROGATE_BODIES.values()), ids=list(SURROGATE_BODIES))
def test_lone_surrogates_in_json_bodies_are_forwarded_losslessly(client, mock, body):
    mock.clear()
    r = client.post(f"{mock.url}/body/forward", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text[:300]
    received = mock.requests_for("/body/forward")[0].body
    if body == SURROGATE_BODIES["cesu-bytes"]:
        assert received == body
    else:  # re-encoded: still UTF-8 JSON with the same value
        assert json.loads(received.decode("utf-8")) == json.loads(body), received


def test_invalid_utf8_in_headers_and_query(client, mock):
    """Header values and query strings that are not UTF-8 reach jq as text."""
    r = client.get(f"{mock.url}/headers/jq", headers={"x-raw": b"caf\xe9 \xff\xfe"})
    assert r.status_code == 200, r.text[:300]
    assert r.content.startswith(b"caf")  # a string body is sent as it is
    mock.clear()
    r = client.get(f"{mock.url}/inject/service-query?v=%FF%FEok%C3")
    assert r.status_code == 200, r.text[:300]
    assert "ok" in mock.requests_for("/inject/*")[0].headers.get("x-injected")


# -- header injection through jq output ----------------------------------------

EVIL_VALUES = ["a\r\nX-Evil: 1", "a\nX-Evil: 1", "a\rX-Evil: 1", "a\x00X-Evil: 1", "\r\n\r\nX-Evil: 1"]


def _no_evil_anywhere(mock: MockServer, r: httpx.Response) -> None:
    assert "x-evil" not in r.headers
    assert "X-Evil" not in "".join(f"{k}:{v}" for k, v in r.headers.multi_items())
    for req in mock.requests:
        assert "x-evil" not in req.headers, req.headers
        assert not any("X-Evil" in v or "\n" in v or "\r" in v for _, v in req.headers), req.headers


@pytest.mark.parametrize("value", EVIL_VALUES, ids=[repr(v) for v in EVIL_VALUES])
def test_crlf_in_a_header_value_from_the_query_is_refused(client, mock, value):
    mock.clear()
    r = client.get(f"{mock.url}/inject/service-query?v={quote(value, safe='')}")
    assert_clean_500(r)
    assert not mock.requests_for("/inject/*"), "the upstream must not be contacted"
    _no_evil_anywhere(mock, r)


@pytest.mark.parametrize("name", ["X-Evil: 1\r\nX-A", "x-a\nX-Evil", "x\x00y", "X-A\r"], ids=repr)
def test_crlf_in_a_header_name_from_the_query_is_refused(client, mock, name):
    mock.clear()
    r = client.get(f"{mock.url}/inject/service-name?n={quote(name, safe='')}")
    assert_clean_500(r)
    assert not mock.requests_for("/inject/*")
    _no_evil_anywhere(mock, r)


BODY_HEADERS = [
    {"x-a": "a\r\nX-Evil: 1"},
    {"x-a": ["fine", "b\r\nX-Evil: 1"]},
    {"X-Evil: 1\r\nx-b": "v"},
    {"x-ok": "fine", "x-a": "a\nX-Evil: 1"},  # nothing at all is written, not even x-ok
]


@pytest.mark.parametrize("target", ["service-body", "response", "late", "exit"])
@pytest.mark.parametrize("headers", BODY_HEADERS, ids=[str(i) for i in range(len(BODY_HEADERS))])
def test_crlf_from_a_json_body_into_headers_is_refused(client, mock, target, headers):
    mock.clear()
    r = client.post(f"{mock.url}/inject/{target}", json={"headers": headers})
    assert_clean_500(r)
    assert "x-ok" not in r.headers
    _no_evil_anywhere(mock, r)
    upstream = mock.requests_for("/inject/*")
    if target in ("service-body", "exit"):
        assert not upstream  # refused before proxying
    else:
        assert len(upstream) == 1  # proxied unchanged; the answer is replaced by the 500
        assert "x-ok" not in upstream[0].headers


def test_headers_without_control_characters_still_pass(client, mock):
    mock.clear()
    r = client.get(f"{mock.url}/inject/service-query?v={quote('ok value; ü', safe='')}")
    assert r.status_code == 200, r.text[:300]
    assert mock.requests_for("/inject/*")[0].headers.get("x-injected") is not None
    r = client.post(f"{mock.url}/inject/response", json={"headers": {"x-ok": ["1", 2, True]}})
    assert r.status_code == 200 and r.headers.get_list("x-ok") == ["1", "2", "true"]


# -- deep nesting ------------------------------------------------------------


def test_deeply_nested_json_request_body(client, mock):
    deep = ("[" * DEEP + "]" * DEEP).encode()
    r = client.post(f"{mock.url}/body/jq", content=deep, headers={"content-type": "application/json"})
    assert_clean_500(r)
    # as text, parsed by jq's fromjson: jq's own depth limit
    r = client.post(f"{mock.url}/body/fromjson", content=deep, headers={"content-type": "text/plain"})
    assert_clean_500(r)
    assert_serving(client, mock)


@pytest.mark.parametrize("depth", [500, 5_000, 9_999])
def test_moderately_deep_json_gives_a_clean_answer(client, mock, depth):
    deep = ("[" * depth + "]" * depth).encode()
    for path, ct in (("/body/jq", "application/json"), ("/body/fromjson", "text/plain")):
        r = client.post(f"{mock.url}{path}", content=deep, headers={"content-type": ct})
        if r.status_code == 200:
            assert r.json() == {"type": "array", "length": 1}
        else:
            assert_clean_500(r)
    assert_serving(client, mock)


def test_deeply_nested_json_from_the_upstream(client, mock):
    r = client.get(f"{mock.url}/deep/resp")
    assert_clean_500(r)
    assert_serving(client, mock)


# -- the operator's terminal ------------------------------------------------


def test_a_client_cannot_write_terminal_control_sequences_into_the_log(env, client, mock):
    """The failure log line quotes the jq error, which quotes the client:
    an OSC retitle, a clear screen, a CSI as one C1 byte and a bidi
    override arrive escaped."""
    mitm, _ = env
    start = mitm.log_offset()
    r = client.get(f"{mock.url}/log/inject", params={"v": "\x1b]0;PWNED\x07\x1b[2J\x9b31m\u202eevil"})
    assert_clean_500(r)
    time.sleep(0.3)  # let the log line land
    log = mitm.log_text()[start:]
    assert "Datakit: workflow" in log and "bad: \\x1b]0;PWNED\\x07\\x1b[2J\\x9b31m\\u202eevil" in log, log
    for raw in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert raw not in log, raw


# -- secrets -----------------------------------------------------------------


def test_secrets_never_reach_logs_or_clients(env, client, mock):
    mitm, _ = env
    r = client.post(f"{mock.url}/secret/plain", json={"fail": False})
    assert r.status_code == 200 and r.json() == {"ok": True}
    r = client.post(f"{mock.url}/secret/plain", json={"fail": True})
    assert_clean_500(r)
    assert SECRET not in r.text

    r = client.get(f"{mock.url}/secret/debug")
    assert r.status_code == 500
    body = r.json()
    assert body["message"] == "node execution error" and body["node"]["name"] == "J"
    assert "rejected token [REDACTED]" in body["error"], body
    assert SECRET not in r.text and "Traceback" not in r.text

    r = client.get(f"{mock.url}/secret/call")
    assert r.status_code == 500
    body = r.json()
    assert body["node"]["name"] == "CALL" and "Traceback" not in r.text
    assert SECRET not in r.text, body

    time.sleep(0.3)  # let the log lines land
    log = mitm.log_text()
    assert log.count("Datakit: workflow") >= 3
    assert SECRET not in log, [line for line in log.splitlines() if SECRET in line]


def test_no_secret_in_the_whole_log_and_still_serving(env, client, mock):
    """Runs last in this module: after everything above the proxy still
    serves, tracks no Datakit run, and its log holds no secret."""
    mitm, _ = env
    assert_serving(client, mock)
    assert mitm.is_running()
    assert settle(mitm, tasks_at_most=1_000)["runs"] == 0
    assert SECRET not in mitm.log_text()
