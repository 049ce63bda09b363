"""The node types of issue 3 (branch, cache, vault, XML, JWT) through a real
mitmdump with real HTTP.

One mitmdump (module scope) serves every workflow here: each workflow file
has a `match: {paths: [/PREFIX/]}` block, and requests go to the module's
mock API server under that prefix (the workflows that do not exit proxy to
it). Tests that need other processes (a second mitmdump on one Redis) start
them themselves.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt as pyjwt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.harness import Mitmdump, MockServer, Reply
from tests.redis_server import RedisServer, free_port, require_redis

# -- secrets and keys ---------------------------------------------------------

TOKEN_SECRET = "tok-" + uuid.uuid4().hex  # vault://env/DK_IT_TOKEN
DB_PASSWORD = "pw-" + uuid.uuid4().hex  # a field of vault://env/DK_IT_CREDS
HMAC_SECRET = "hmac-" + uuid.uuid4().hex + uuid.uuid4().hex  # vault://env/DK_IT_HMAC

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PUBLIC_PEM = (
    RSA_KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _jwk(public_key: Any, kid: str, alg: str) -> dict[str, Any]:
    jwk = json.loads(pyjwt.algorithms.get_default_algorithms()[alg].to_jwk(public_key))
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


JWKS = {"keys": [_jwk(OTHER_EC_KEY.public_key(), "old", "ES256"), _jwk(EC_KEY.public_key(), "current", "ES256")]}

ENV = {
    "DK_IT_TOKEN": TOKEN_SECRET,
    "DK_IT_CREDS": json.dumps({"user": "svc-user", "password": DB_PASSWORD}),
    "DK_IT_HMAC": HMAC_SECRET,
    "DK_IT_JWKS": json.dumps(JWKS),
}

TRACE = {"X-DataKit-Debug-Trace": "1"}


# -- workflows -----------------------------------------------------------------


def cache_nodes(*, ttl: int, bypass: bool | None = None) -> list[dict[str, Any]]:
    """GET the key from `?key=`; on a miss call the API, store its body and
    answer it with `x-cache: miss`; on a hit answer the cached value."""
    extra = {} if bypass is None else {"bypass_on_error": bypass}
    return [
        {"name": "GET", "type": "cache", "inputs": {"key": "request.query.key"}, **extra},
        {"name": "DECIDE", "type": "branch", "input": "GET.miss", "then": ["DATA", "SET", "EXIT_MISS"], "else": ["EXIT_HIT"]},
        {"name": "DATA", "type": "call", "url": "API/data"},
        {"name": "SET", "type": "cache", "inputs": {"key": "request.query.key", "data": "DATA.body"}, "ttl": ttl, **extra},
        {
            "name": "MISS_HEADERS",
            "type": "jq",
            "inputs": {"stored": "SET.stored"},
            "jq": '{"x-cache": "miss", "x-stored": (.stored | tostring)}',
        },
        {"name": "EXIT_MISS", "type": "exit", "inputs": {"body": "SET.data", "headers": "MISS_HEADERS"}},
        {"name": "HIT_HEADERS", "type": "static", "values": {"x-cache": "hit"}},
        {"name": "EXIT_HIT", "type": "exit", "inputs": {"body": "GET.data", "headers": "HIT_HEADERS"}},
    ]


def redis_cache(port: int, **more: Any) -> dict[str, Any]:
    return {"cache": {"strategy": "redis", "redis": {"host": "127.0.0.1", "port": port, **more}}}


def workflows(api: str, redis_port: int, dead_port: int) -> dict[str, dict[str, Any]]:
    def wf(prefix: str, nodes: list[dict[str, Any]], **config: Any) -> dict[str, Any]:
        text = json.dumps(nodes).replace('"API/', json.dumps(f"{api}/{prefix}/")[:-1])
        return {"match": {"paths": [f"/{prefix}/"]}, **config, "nodes": json.loads(text)}

    return {
        # branch: OUTER (then: YES_EXIT; else: INNER_FLAG, INNER) with INNER
        # nested (then: CALL_A, EXIT_A; else: EXIT_B). AFTER_A needs CALL_A's
        # output but is listed nowhere: skipped with it.
        "branch": wf(
            "branch",
            [
                {
                    "name": "FLAG",
                    "type": "jq",
                    "input": "request.headers",
                    "jq": 'if .["x-flag"] == "yes" then true elif .["x-flag"] == "no" then false else .["x-flag"] end',
                },
                {"name": "OUTER", "type": "branch", "input": "FLAG", "then": ["YES_EXIT"], "else": ["INNER_FLAG", "INNER"]},
                {"name": "YES_BODY", "type": "static", "values": {"result": "then"}},
                {"name": "YES_EXIT", "type": "exit", "inputs": {"body": "YES_BODY"}},
                {"name": "INNER_FLAG", "type": "jq", "input": "request.headers", "jq": '.["x-inner"] == "yes"'},
                {"name": "INNER", "type": "branch", "input": "INNER_FLAG", "then": ["CALL_A", "EXIT_A"], "else": ["EXIT_B"]},
                {"name": "CALL_A", "type": "call", "url": "API/a"},
                {"name": "EXIT_A", "type": "exit", "status": 201, "inputs": {"body": "CALL_A.body"}},
                {"name": "AFTER_A", "type": "jq", "input": "CALL_A.body", "jq": "."},
                {"name": "B_BODY", "type": "static", "values": {"result": "inner-else"}},
                {"name": "EXIT_B", "type": "exit", "status": 202, "inputs": {"body": "B_BODY"}},
            ],
            debug=True,
        ),
        "cache-mem": wf("cache-mem", cache_nodes(ttl=1), resources={"cache": {"strategy": "memory"}}, debug=True),
        "cache-redis": wf("cache-redis", cache_nodes(ttl=60), resources=redis_cache(redis_port)),
        "cache-bypass": wf(
            "cache-bypass", cache_nodes(ttl=60, bypass=True), resources=redis_cache(dead_port, timeout=300), debug=True
        ),
        "cache-nobypass": wf("cache-nobypass", cache_nodes(ttl=60), resources=redis_cache(dead_port, timeout=300)),
        "cache-nobypass-debug": wf(
            "cache-nobypass-debug", cache_nodes(ttl=60), resources=redis_cache(dead_port, timeout=300), debug=True
        ),
        # vault: both reference forms; the secrets go to a third-party call
        "vault": wf(
            "vault",
            [
                {
                    "name": "HEADERS",
                    "type": "jq",
                    "inputs": {"t": "vault.token", "p": "vault.password", "u": "vault.user"},
                    "jq": '{"x-token": .t, "x-password": .p, "x-user": .u}',
                },
                {"name": "CALL", "type": "call", "url": "API/login", "inputs": {"headers": "HEADERS"}},
                {"name": "EXIT", "type": "exit", "inputs": {"body": "CALL.body"}},
            ],
            debug=True,
            resources={
                "vault": {
                    "token": "{vault://env/DK_IT_TOKEN}",
                    "password": "{vault://env/DK_IT_CREDS/password}",
                    "user": "{vault://env/dk-it-creds/user}",
                }
            },
        ),
        # a node error whose message carries the secret
        "vault-fail": wf(
            "vault-fail",
            [{"name": "CHECK", "type": "jq", "input": "vault.token", "jq": 'error("token rejected: " + .)'}],
            debug=True,
            resources={"vault": {"token": "{vault://env/DK_IT_TOKEN}"}},
        ),
        "xml-to-json": wf(
            "xml-to-json",
            [
                {"name": "X2J", "type": "xml_to_json", "input": "request.body", "attributes_name_prefix": "@"},
                {"name": "EXIT", "type": "exit", "inputs": {"body": "X2J"}},
            ],
            debug=True,
        ),
        "xml-xpath": wf(
            "xml-xpath",
            [
                {"name": "X2J", "type": "xml_to_json", "input": "request.body", "attributes_name_prefix": "@", "xpath": "//book[@lang='en']/title"},
                {"name": "EXIT", "type": "exit", "inputs": {"body": "X2J"}},
            ],
            debug=True,
        ),
        "xml-attr-block": wf(
            "xml-attr-block",
            [
                {"name": "X2J", "type": "xml_to_json", "input": "request.body", "attributes_block_name": "#attr"},
                {"name": "J2X", "type": "json_to_xml", "input": "X2J", "attributes_block_name": "#attr"},
                {"name": "BOTH", "type": "jq", "inputs": {"json": "X2J", "xml": "J2X"}, "jq": "."},
                {"name": "EXIT", "type": "exit", "inputs": {"body": "BOTH"}},
            ],
        ),
        "json-to-xml": wf(
            "json-to-xml",
            [
                {"name": "J2X", "type": "json_to_xml", "input": "request.body", "attributes_name_prefix": "@"},
                {"name": "CT", "type": "static", "values": {"content-type": "application/xml"}},
                {"name": "EXIT", "type": "exit", "inputs": {"body": "J2X", "headers": "CT"}},
            ],
            debug=True,
        ),
        # jwt_sign with an HMAC secret from the vault; the token goes upstream
        "jwt-sign": wf(
            "jwt-sign",
            [
                {
                    "name": "SIGN",
                    "type": "jwt_sign",
                    "algorithm": "HS256",
                    "kid": "hmac-1",
                    "expires_in": 120,
                    "static_claims": {"iss": "datakit-it"},
                    "inputs": {"claims": "request.body", "key": "vault.hmac"},
                },
                {"name": "HEADER", "type": "jq", "input": "SIGN.token", "jq": '{"authorization": ("Bearer " + .)}', "output": "service_request.headers"},
            ],
            debug=True,
            resources={"vault": {"hmac": "{vault://env/DK_IT_HMAC}"}},
        ),
        # jwt_verify against an RSA public key PEM; allowed_algorithms unset
        "jwt-verify-pem": wf(
            "jwt-verify-pem",
            [
                {"name": "KEYS", "type": "static", "values": {"pem": RSA_PUBLIC_PEM}},
                {
                    "name": "VERIFY",
                    "type": "jwt_verify",
                    "issuers": ["it-issuer"],
                    "required_claims": ["sub"],
                    "inputs": {"token": "request.headers.authorization", "key": "KEYS.pem"},
                },
                {"name": "SUB", "type": "jq", "input": "VERIFY.claims", "jq": '{"x-verified-sub": .sub}', "output": "service_request.headers"},
            ],
            debug=True,
        ),
        # jwt_verify against a JWKS from the vault (kid selection), with a leeway
        "jwt-verify-jwks": wf(
            "jwt-verify-jwks",
            [
                {
                    "name": "VERIFY",
                    "type": "jwt_verify",
                    "allowed_algorithms": ["ES256"],
                    "audiences": ["it-api"],
                    "leeway": 30,
                    "inputs": {"token": "request.headers.authorization", "key": "vault.jwks"},
                },
                {"name": "EXIT", "type": "exit", "inputs": {"body": "VERIFY.claims"}},
            ],
            debug=True,
            resources={"vault": {"jwks": "{vault://env/DK_IT_JWKS}"}},
        ),
        "jwt-decode": wf(
            "jwt-decode",
            [
                {"name": "DECODE", "type": "jwt_decode", "input": "request.headers.authorization"},
                {"name": "OUT", "type": "jq", "inputs": {"header": "DECODE.header", "payload": "DECODE.payload"}, "jq": "."},
                {"name": "EXIT", "type": "exit", "inputs": {"body": "OUT"}},
            ],
            debug=True,
        ),
    }


# -- fixtures ------------------------------------------------------------------


@pytest.fixture(scope="module")
def api() -> Iterator[MockServer]:
    with MockServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    require_redis()
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def dead_redis_port() -> int:
    return free_port()  # nothing listens there


@pytest.fixture(scope="module")
def workflow_dir(tmp_path_factory, api, redis, dead_redis_port) -> Path:
    d = tmp_path_factory.mktemp("node-workflows")
    for name, doc in workflows(api.url, redis.port, dead_redis_port).items():
        (d / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return d


def _start(config: Path, confdir: Path, **kw: Any) -> Mitmdump:
    m = Mitmdump(config, confdir=confdir, env=ENV, start=False, **kw)
    m.start()
    return m


@pytest.fixture(scope="module")
def proxy(workflow_dir, mitm_confdir) -> Iterator[Mitmdump]:
    m = _start(workflow_dir, mitm_confdir)
    yield m
    code = m.stop()
    print(f"\n----- {m!r} exit={code} log tail -----\n{m.log_tail(80)}")


@pytest.fixture
def c(proxy: Mitmdump) -> Iterator[httpx.Client]:
    with proxy.client() as client:
        yield client


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {n["name"]: n["status"] for n in report["nodes"]}


def actions(report: dict[str, Any], node: str) -> list[str]:
    return [e["action"] for e in report["events"] if e["name"] == node]


# -- branch ----------------------------------------------------------------------


def test_branch_then_skips_else_and_the_nested_branch(c, api):
    r = c.get(f"{api.url}/branch/x", headers={"x-flag": "yes"})
    assert r.status_code == 200
    assert r.json() == {"result": "then"}
    assert api.requests_for("/branch/a") == []  # the nested branch's call never ran

    report = c.get(f"{api.url}/branch/x", headers={"x-flag": "yes", **TRACE}).json()
    assert report["status"] == "PLAN_COMPLETE"
    s = statuses(report)
    assert s["FLAG"] == s["OUTER"] == s["YES_EXIT"] == "NODE_COMPLETE"
    # the else list, the nested branch's own lists, and what needs their output
    for name in ("INNER_FLAG", "INNER", "CALL_A", "EXIT_A", "AFTER_A", "EXIT_B"):
        assert s[name] == "NODE_SKIPPED", (name, s)
        assert actions(report, name) == ["skip"], name
    assert api.requests_for("/branch/a") == []


def test_nested_branch_else_then(c, api):
    api.route("GET", "/branch/a", Reply(json={"from": "api-a"}))
    before = len(api.requests_for("/branch/a"))
    r = c.get(f"{api.url}/branch/x", headers={"x-flag": "no", "x-inner": "yes"})
    assert r.status_code == 201
    assert r.json() == {"from": "api-a"}
    assert len(api.requests_for("/branch/a")) == before + 1

    report = c.get(f"{api.url}/branch/x", headers={"x-flag": "no", "x-inner": "yes", **TRACE}).json()
    s = statuses(report)
    assert s["YES_EXIT"] == s["EXIT_B"] == "NODE_SKIPPED"
    assert s["INNER"] == s["CALL_A"] == s["EXIT_A"] == s["AFTER_A"] == "NODE_COMPLETE"


def test_nested_branch_else_else(c, api):
    before = len(api.requests_for("/branch/a"))
    r = c.get(f"{api.url}/branch/x", headers={"x-flag": "no", "x-inner": "no"})
    assert r.status_code == 202
    assert r.json() == {"result": "inner-else"}
    report = c.get(f"{api.url}/branch/x", headers={"x-flag": "no", "x-inner": "no", **TRACE}).json()
    s = statuses(report)
    assert s["YES_EXIT"] == s["CALL_A"] == s["EXIT_A"] == s["AFTER_A"] == "NODE_SKIPPED"
    assert s["INNER_FLAG"] == s["INNER"] == s["EXIT_B"] == "NODE_COMPLETE"
    assert len(api.requests_for("/branch/a")) == before  # skipped: never called


@pytest.mark.parametrize("flag, kind", [("maybe", "string"), (None, "null")])
def test_branch_non_boolean_input_is_a_node_error(c, api, flag, kind):
    headers = {} if flag is None else {"x-flag": flag}
    r = c.get(f"{api.url}/branch/x", headers=headers)
    assert r.status_code == 500
    body = r.json()
    assert body["message"] == "node execution error"
    assert body["node"]["name"] == "OUTER" and body["node"]["type"] == "branch"
    assert "boolean" in body["error"] and kind in body["error"]
    report = c.get(f"{api.url}/branch/x", headers={**headers, **TRACE}).json()
    assert report["status"] == "PLAN_ERROR"
    assert statuses(report)["OUTER"] == "NODE_ERROR"


# -- cache -----------------------------------------------------------------------


def _counter_route(api: MockServer, path: str) -> list[int]:
    calls: list[int] = []

    def handler(req):
        calls.append(1)
        return Reply(json={"n": len(calls), "path": req.path})

    api.route("GET", path, handler)
    return calls


def test_cache_memory_miss_store_hit_then_ttl_expiry(c, api):
    calls = _counter_route(api, "/cache-mem/data")
    key = "mem-" + uuid.uuid4().hex

    r1 = c.get(f"{api.url}/cache-mem/x", params={"key": key})
    assert r1.status_code == 200
    assert r1.headers["x-cache"] == "miss" and r1.headers["x-stored"] == "true"
    assert r1.json() == {"n": 1, "path": "/cache-mem/data"}
    assert len(calls) == 1

    r2 = c.get(f"{api.url}/cache-mem/x", params={"key": key})
    assert r2.status_code == 200
    assert r2.headers["x-cache"] == "hit"
    assert r2.json() == {"n": 1, "path": "/cache-mem/data"}  # the stored value
    assert len(calls) == 1  # a hit does not call the API

    # another key is another entry
    r3 = c.get(f"{api.url}/cache-mem/x", params={"key": key + "-other"})
    assert r3.headers["x-cache"] == "miss" and r3.json()["n"] == 2

    time.sleep(1.3)  # ttl: 1
    r4 = c.get(f"{api.url}/cache-mem/x", params={"key": key})
    assert r4.headers["x-cache"] == "miss"
    assert r4.json()["n"] == 3
    assert len(calls) == 3


def test_cache_trace_shows_outputs(c, api):
    _counter_route(api, "/cache-mem/data")
    key = "trace-" + uuid.uuid4().hex
    report = c.get(f"{api.url}/cache-mem/x", params={"key": key}, headers=TRACE).json()
    assert report["status"] == "PLAN_COMPLETE"
    s = statuses(report)
    assert s["EXIT_HIT"] == "NODE_SKIPPED" and s["SET"] == "NODE_COMPLETE"
    get_done = next(e for e in report["events"] if e["name"] == "GET" and e["action"] == "complete")
    # a null has no `value` (Kong's trace)
    assert {v["key"]: v.get("value") for v in get_done["values"]} == {"hit": False, "miss": True, "stored": False, "data": None}
    assert "value" not in next(v for v in get_done["values"] if v["key"] == "data")


def test_cache_redis_shared_by_two_mitmdump_processes(c, api, redis, workflow_dir, mitm_confdir):
    calls = _counter_route(api, "/cache-redis/data")
    key = "shared-" + uuid.uuid4().hex
    second = _start(workflow_dir, mitm_confdir)
    try:
        r1 = c.get(f"{api.url}/cache-redis/x", params={"key": key})  # process 1
        assert r1.status_code == 200, r1.text
        assert r1.headers["x-cache"] == "miss" and r1.headers["x-stored"] == "true"
        assert len(calls) == 1
        # the entry is in Redis, as JSON, with the node's TTL
        assert json.loads(redis.command("GET", f"datakit:cache:{key}").split(b"\r\n")[1]) == {"n": 1, "path": "/cache-redis/data"}
        pttl = int(redis.command("PTTL", f"datakit:cache:{key}").strip()[1:])
        assert 55_000 < pttl <= 60_000

        with second.client() as c2:  # process 2 sees it
            r2 = c2.get(f"{api.url}/cache-redis/x", params={"key": key})
            assert r2.status_code == 200
            assert r2.headers["x-cache"] == "hit"
            assert r2.json() == {"n": 1, "path": "/cache-redis/data"}
            assert len(calls) == 1

            # and the other way round
            key2 = key + "-2"
            assert c2.get(f"{api.url}/cache-redis/x", params={"key": key2}).headers["x-cache"] == "miss"
        r3 = c.get(f"{api.url}/cache-redis/x", params={"key": key2})
        assert r3.headers["x-cache"] == "hit" and r3.json()["n"] == 2
        assert len(calls) == 2
    finally:
        code = second.stop()
        print(f"\n----- second {second!r} exit={code} log tail -----\n{second.log_tail(40)}")


def test_cache_redis_bypass_on_error_turns_a_dead_redis_into_a_miss(c, api):
    calls = _counter_route(api, "/cache-bypass/data")
    started = time.perf_counter()
    r = c.get(f"{api.url}/cache-bypass/x", params={"key": "k"})
    elapsed = time.perf_counter() - started
    assert r.status_code == 200, r.text
    assert r.headers["x-cache"] == "miss"
    assert r.headers["x-stored"] == "false"  # the store was bypassed too
    assert r.json() == {"n": 1, "path": "/cache-bypass/data"}
    assert len(calls) == 1
    assert elapsed < 5, elapsed
    # still a miss the next time (nothing could be stored)
    assert c.get(f"{api.url}/cache-bypass/x", params={"key": "k"}).headers["x-cache"] == "miss"
    assert len(calls) == 2


def test_cache_redis_dead_without_bypass_is_a_500(c, api, proxy):
    calls = _counter_route(api, "/cache-nobypass/data")
    since = proxy.log_offset()
    r = c.get(f"{api.url}/cache-nobypass/x", params={"key": "k"})
    assert r.status_code == 500
    body = r.json()
    assert body["message"] == "An unexpected error occurred"
    assert set(body) == {"message", "request_id"}
    assert calls == []  # the workflow failed at GET
    # the full error is logged
    proxy.wait_for_log(r"workflow cache-nobypass failed at node 'GET'.*cache backend error", since=since)

    r = c.get(f"{api.url}/cache-nobypass-debug/x", params={"key": "k"})
    assert r.status_code == 500
    body = r.json()
    assert body["node"] == {"index": 1, "name": "GET", "type": "cache"}
    assert "cache backend error" in body["error"]


# -- vault -----------------------------------------------------------------------


def _no_secret(text: str) -> None:
    for secret in (TOKEN_SECRET, DB_PASSWORD, HMAC_SECRET):
        assert secret not in text


def test_vault_env_and_env_field_reach_the_call(c, api):
    api.route("GET", "/vault/login", Reply(json={"logged_in": True}))
    r = c.get(f"{api.url}/vault/x")
    assert r.status_code == 200, r.text
    assert r.json() == {"logged_in": True}
    call = api.requests_for("/vault/login")[-1]
    assert call.header("x-token") == TOKEN_SECRET
    assert call.header("x-password") == DB_PASSWORD  # {vault://env/DK_IT_CREDS/password}
    assert call.header("x-user") == "svc-user"  # {vault://env/dk-it-creds/user}: Kong's name mapping


def test_vault_secrets_are_redacted_in_the_trace(c, api):
    api.route("GET", "/vault/login", Reply(json={"logged_in": True}))
    r = c.get(f"{api.url}/vault/x", headers=TRACE)
    assert r.status_code == 200
    text = r.text
    _no_secret(text)
    report = r.json()
    assert report["status"] == "PLAN_COMPLETE"
    # the vault node's outputs and every value derived from them
    vault_done = next(e for e in report["events"] if e["name"] == "vault" and e["action"] == "complete")
    assert {v["key"]: v["value"] for v in vault_done["values"]} == {
        "token": "[REDACTED]",
        "password": "[REDACTED]",
        "user": "[REDACTED]",
    }
    headers_done = next(e for e in report["events"] if e["name"] == "HEADERS" and e["action"] == "complete")
    # built from secrets: the whole value is redacted (taint.py), not only
    # the literal secret in it
    assert headers_done["values"][0]["value"] == "[REDACTED]"
    call_run = next(e for e in report["events"] if e["name"] == "CALL" and e["action"] == "run")
    assert "[REDACTED]" in json.dumps(call_run["values"])
    # the call still got the real values
    assert api.requests_for("/vault/login")[-1].header("x-token") == TOKEN_SECRET


def test_vault_secrets_are_redacted_in_errors_and_the_log(c, api, proxy):
    since = proxy.log_offset()
    r = c.get(f"{api.url}/vault-fail/x")
    assert r.status_code == 500
    body = r.json()
    assert body["node"]["name"] == "CHECK"
    assert "token rejected: [REDACTED]" in body["error"]
    _no_secret(r.text)
    report = c.get(f"{api.url}/vault-fail/x", headers=TRACE).json()
    assert report["status"] == "PLAN_ERROR"
    (check,) = [n for n in report["nodes"] if n["name"] == "CHECK"]
    assert check["status"] == "NODE_ERROR" and "token rejected: [REDACTED]" in check["error"]
    _no_secret(json.dumps(report))
    proxy.wait_for_log(r"failed at node 'CHECK'.*token rejected: \[REDACTED\]", since=since)
    _no_secret(proxy.log_text())


# -- XML -------------------------------------------------------------------------

BOOKS = """<?xml version="1.0" encoding="UTF-8"?>
<catalog>
  <book id="1" lang="en"><title>Dune</title><price>9.99</price><available>true</available></book>
  <book id="2" lang="fr"><title>Vendredi</title><price>7</price><available>false</available></book>
  <book id="3" lang="en"><title>Emma</title><price>null</price><available>true</available></book>
</catalog>"""

BOOKS_JSON = {
    "catalog": {
        "book": [
            {"@id": 1, "@lang": "en", "title": "Dune", "price": 9.99, "available": True},
            {"@id": 2, "@lang": "fr", "title": "Vendredi", "price": 7, "available": False},
            {"@id": 3, "@lang": "en", "title": "Emma", "price": None, "available": True},
        ]
    }
}


@pytest.mark.parametrize("content_type", ["text/xml", "application/xml", "application/soap+xml; charset=utf-8"])
def test_xml_to_json_accepts_xml_bodies(c, api, content_type):
    r = c.post(f"{api.url}/xml-to-json/x", content=BOOKS.encode(), headers={"Content-Type": content_type})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json() == BOOKS_JSON


def test_xml_to_json_spec_example(c, api):
    r = c.post(f"{api.url}/xml-to-json/x", content=b"<root><a>1</a></root>", headers={"Content-Type": "text/xml"})
    assert r.json() == {"root": {"a": 1}}


def test_xml_xpath_selects_a_subtree(c, api):
    r = c.post(f"{api.url}/xml-xpath/x", content=BOOKS.encode(), headers={"Content-Type": "application/xml"})
    assert r.status_code == 200, r.text
    assert r.json() == {"title": ["Dune", "Emma"]}


def test_xml_attributes_block_and_back(c, api):
    doc = '<order id="7"><item sku="a1" qty="2">pen</item><item sku="b2" qty="1">ink</item><note>null</note></order>'
    r = c.post(f"{api.url}/xml-attr-block/x", content=doc.encode(), headers={"Content-Type": "text/xml"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["json"] == {
        "order": {
            "#attr": {"id": 7},
            "item": [
                {"#attr": {"sku": "a1", "qty": 2}, "#text": "pen"},
                {"#attr": {"sku": "b2", "qty": 1}, "#text": "ink"},
            ],
            "note": None,
        }
    }
    assert out["xml"] == doc


def test_json_to_xml_through_the_proxy(c, api):
    body = {"order": {"@id": "7", "item": [{"@sku": "a1", "#text": "pen"}, {"@sku": "b2", "#text": "ink"}], "paid": True}}
    r = c.post(f"{api.url}/json-to-xml/x", json=body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/xml"
    assert r.text == '<order id="7"><item sku="a1">pen</item><item sku="b2">ink</item><paid>true</paid></order>'
    # several keys: wrapped in the default root element
    r = c.post(f"{api.url}/json-to-xml/x", json={"a": 1, "b": [1, 2]})
    assert r.text == "<root><a>1</a><b>1</b><b>2</b></root>"


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz>&lol9;</lolz>"""


def _rss_kib(pid: int | None) -> int:
    assert pid is not None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_billion_laughs_is_rejected_fast_with_memory_flat(c, api, proxy):
    c.post(f"{api.url}/xml-to-json/x", content=b"<warm>1</warm>", headers={"Content-Type": "text/xml"})
    rss_before = _rss_kib(proxy.pid)
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        r = c.post(f"{api.url}/xml-to-json/x", content=BILLION_LAUGHS.encode(), headers={"Content-Type": "text/xml"})
        timings.append(time.perf_counter() - started)
        assert r.status_code == 500
        body = r.json()
        assert body["node"]["name"] == "X2J"
        assert "DOCTYPE" in body["error"]
    rss_after = _rss_kib(proxy.pid)
    print(f"billion laughs rejected in {min(timings) * 1000:.1f} ms (max {max(timings) * 1000:.1f} ms), RSS {rss_before} -> {rss_after} KiB")
    assert max(timings) < 0.5, timings  # the full expansion would be 3 GB of "lol"
    assert rss_after - rss_before < 20 * 1024


def test_external_entities_are_rejected_without_fetching(c, api):
    fetched = api.requests_for("/xxe/evil.dtd")
    api.route("GET", "/xxe/evil.dtd", Reply(body='<!ENTITY leak "LEAKED">'))
    documents = [
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><r>&xxe;</r>',
        f'<?xml version="1.0"?><!DOCTYPE r SYSTEM "{api.url}/xxe/evil.dtd"><r>&leak;</r>',
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "{api.url}/xxe/evil.dtd"> %p;]><r>&leak;</r>',
    ]
    for doc in documents:
        started = time.perf_counter()
        r = c.post(f"{api.url}/xml-to-json/x", content=doc.encode(), headers={"Content-Type": "application/xml"})
        assert time.perf_counter() - started < 0.5
        assert r.status_code == 500, doc
        assert r.json()["node"]["name"] == "X2J"
        assert "root:" not in r.text and "LEAKED" not in r.text
    assert api.requests_for("/xxe/evil.dtd") == fetched == []


def test_malformed_xml_and_non_json_are_node_errors(c, api):
    r = c.post(f"{api.url}/xml-to-json/x", content=b"<a><b></a>", headers={"Content-Type": "text/xml"})
    assert r.status_code == 500 and r.json()["node"]["name"] == "X2J"
    r = c.post(f"{api.url}/json-to-xml/x", content=b"not json", headers={"Content-Type": "text/plain"})
    assert r.status_code == 500 and r.json()["node"]["name"] == "J2X"


# -- JWT -------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _raw_token(header: dict[str, Any], payload: dict[str, Any], sign) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{_b64(sign(signing_input.encode()))}"


def _claims(**more: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "alice", "iss": "it-issuer", "iat": now, "exp": now + 300, **more}


def test_jwt_sign_with_vault_key(c, api):
    api.route("POST", "/jwt-sign/resource", Reply(json={"ok": True}))
    r = c.post(f"{api.url}/jwt-sign/resource", json={"sub": "alice", "role": "admin"})
    assert r.status_code == 200, r.text
    assert r.json() == {"ok": True}
    (call,) = api.requests_for("/jwt-sign/resource")
    auth = call.header("authorization")
    assert auth and auth.startswith("Bearer ")
    token = auth[len("Bearer ") :]
    header = pyjwt.get_unverified_header(token)
    assert header == {"alg": "HS256", "typ": "JWT", "kid": "hmac-1"}
    claims = pyjwt.decode(token, HMAC_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "alice" and claims["role"] == "admin" and claims["iss"] == "datakit-it"
    assert claims["exp"] - claims["iat"] == 120
    assert abs(claims["iat"] - time.time()) < 30


def test_jwt_verify_pem_accepts_a_valid_token(c, api):
    api.route("GET", "/jwt-verify-pem/resource", Reply(json={"resource": True}))
    token = pyjwt.encode(_claims(), RSA_KEY, algorithm="RS256")
    r = c.get(f"{api.url}/jwt-verify-pem/resource", headers={"Authorization": f"bearer {token}"})
    assert r.status_code == 200, r.text
    assert r.json() == {"resource": True}
    assert api.requests_for("/jwt-verify-pem/resource")[-1].header("x-verified-sub") == "alice"
    # PS256 with the same RSA key is fine too
    token = pyjwt.encode(_claims(sub="bob"), RSA_KEY, algorithm="PS256")
    r = c.get(f"{api.url}/jwt-verify-pem/resource", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert api.requests_for("/jwt-verify-pem/resource")[-1].header("x-verified-sub") == "bob"


def _forgeries() -> dict[str, str]:
    valid = pyjwt.encode(_claims(), RSA_KEY, algorithm="RS256")
    head, payload, sig = valid.split(".")
    tampered_payload = _b64(json.dumps(_claims(sub="admin")).encode())
    return {
        "alg none": _raw_token({"alg": "none", "typ": "JWT"}, _claims(sub="admin"), lambda _: b""),
        "alg None, signature kept": _raw_token({"alg": "None"}, _claims(sub="admin"), lambda _: b"x"),
        # the classic key confusion: HS256 with the RSA public key's PEM as the secret
        "HS256 with the public PEM": _raw_token(
            {"alg": "HS256", "typ": "JWT"},
            _claims(sub="admin"),
            lambda data: hmac.new(RSA_PUBLIC_PEM.encode(), data, hashlib.sha256).digest(),
        ),
        "HS256 with the stripped PEM": _raw_token(
            {"alg": "HS256", "typ": "JWT"},
            _claims(sub="admin"),
            lambda data: hmac.new(RSA_PUBLIC_PEM.strip().encode(), data, hashlib.sha256).digest(),
        ),
        "tampered payload": f"{head}.{tampered_payload}.{sig}",
        "expired": pyjwt.encode(_claims(exp=int(time.time()) - 60), RSA_KEY, algorithm="RS256"),
        "not yet valid": pyjwt.encode(_claims(nbf=int(time.time()) + 600), RSA_KEY, algorithm="RS256"),
        "wrong issuer": pyjwt.encode(_claims(iss="evil"), RSA_KEY, algorithm="RS256"),
        "missing sub": pyjwt.encode({k: v for k, v in _claims().items() if k != "sub"}, RSA_KEY, algorithm="RS256"),
        "other RSA key": pyjwt.encode(_claims(), OTHER_RSA_KEY, algorithm="RS256"),
        # signed by the attacker, who ships the matching public key in the header
        "embedded jwk": pyjwt.encode(
            _claims(sub="admin"),
            OTHER_RSA_KEY,
            algorithm="RS256",
            headers={"jwk": json.loads(pyjwt.algorithms.RSAAlgorithm.to_jwk(OTHER_RSA_KEY.public_key()))},
        ),
        "garbage": "not.a.jwt",
    }


# why each one fails (a fragment of the node error)
FORGERY_REASONS = {
    "alg none": "alg 'none'",
    "alg None, signature kept": "alg 'none'",
    "HS256 with the public PEM": "'HS256' cannot be verified with an RSA key",
    "HS256 with the stripped PEM": "'HS256' cannot be verified with an RSA key",
    "tampered payload": "signature verification failed",
    "expired": "expired",
    "not yet valid": "not valid yet",
    "wrong issuer": "issuer 'evil'",
    "missing sub": "required claim 'sub'",
    "other RSA key": "signature verification failed",
    "embedded jwk": "signature verification failed",
    "garbage": "malformed token",
}


@pytest.mark.parametrize("name", list(FORGERY_REASONS))
def test_jwt_forgery_attempts_are_answered_500(c, api, name):
    api.route("GET", "/jwt-verify-pem/resource", Reply(json={"resource": True}))
    token = _forgeries()[name]
    before = len(api.requests_for("/jwt-verify-pem/resource"))
    r = c.get(f"{api.url}/jwt-verify-pem/resource", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 500, (name, r.text)
    body = r.json()
    assert body["node"] == {"index": 2, "name": "VERIFY", "type": "jwt_verify"}
    assert body["message"] == "node execution error"
    assert FORGERY_REASONS[name] in body["error"], body["error"]
    assert len(api.requests_for("/jwt-verify-pem/resource")) == before  # never reached the upstream
    report = c.get(f"{api.url}/jwt-verify-pem/resource", headers={"Authorization": f"Bearer {token}", **TRACE}).json()
    s = statuses(report)
    assert s["VERIFY"] == "NODE_ERROR"
    assert s["SUB"] != "NODE_COMPLETE"  # no partial output went on


def test_jwt_missing_token_is_500(c, api):
    r = c.get(f"{api.url}/jwt-verify-pem/resource")
    assert r.status_code == 500
    assert r.json()["node"]["name"] == "VERIFY"


def test_jwt_verify_jwks_from_vault_selects_by_kid(c, api):
    aud = {"aud": "it-api"}
    good = pyjwt.encode(_claims(**aud), EC_KEY, algorithm="ES256", headers={"kid": "current"})
    r = c.get(f"{api.url}/jwt-verify-jwks/x", headers={"Authorization": good})
    assert r.status_code == 200, r.text
    assert r.json()["sub"] == "alice" and r.json()["aud"] == "it-api"
    # the old key still verifies its own tokens
    old = pyjwt.encode(_claims(**aud), OTHER_EC_KEY, algorithm="ES256", headers={"kid": "old"})
    assert c.get(f"{api.url}/jwt-verify-jwks/x", headers={"Authorization": old}).status_code == 200
    # a kid pointing at the wrong key, a wrong audience, an unknown kid: rejected
    wrong_kid = pyjwt.encode(_claims(**aud), EC_KEY, algorithm="ES256", headers={"kid": "old"})
    wrong_aud = pyjwt.encode(_claims(aud="other"), EC_KEY, algorithm="ES256", headers={"kid": "current"})
    unknown_kid = pyjwt.encode(_claims(**aud), EC_KEY, algorithm="ES256", headers={"kid": "nope"})
    for token in (wrong_kid, wrong_aud, unknown_kid):
        assert c.get(f"{api.url}/jwt-verify-jwks/x", headers={"Authorization": token}).status_code == 500
    # leeway: expired 10 s ago passes with a 30 s leeway; 60 s ago does not
    now = int(time.time())
    recent = pyjwt.encode(_claims(exp=now - 10, **aud), EC_KEY, algorithm="ES256", headers={"kid": "current"})
    assert c.get(f"{api.url}/jwt-verify-jwks/x", headers={"Authorization": recent}).status_code == 200
    stale = pyjwt.encode(_claims(exp=now - 60, **aud), EC_KEY, algorithm="ES256", headers={"kid": "current"})
    assert c.get(f"{api.url}/jwt-verify-jwks/x", headers={"Authorization": stale}).status_code == 500
    # allowed_algorithms: an RS256 token is refused before any key is tried
    rs = pyjwt.encode(_claims(**aud), RSA_KEY, algorithm="RS256", headers={"kid": "current"})
    r = c.get(f"{api.url}/jwt-verify-jwks/x", headers={"Authorization": rs})
    assert r.status_code == 500 and "RS256" in r.json()["error"]


def test_jwt_decode_does_not_verify(c, api):
    token = pyjwt.encode({"sub": "anyone", "exp": 1}, "not-the-key-at-all-but-long-enough-32b", algorithm="HS256", headers={"kid": "k"})
    r = c.get(f"{api.url}/jwt-decode/x", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert r.json() == {"header": {"alg": "HS256", "typ": "JWT", "kid": "k"}, "payload": {"sub": "anyone", "exp": 1}}
    r = c.get(f"{api.url}/jwt-decode/x", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 500 and r.json()["node"]["name"] == "DECODE"
