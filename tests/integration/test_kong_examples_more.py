"""More of Kong's documented Datakit examples (cache, JWT, XML, vault),
unchanged except for their URLs, through a real mitmdump to real local HTTP
servers. Kong-only context is given the mitmproxy way: the authenticated
consumer comes from mitmproxy's `proxyauth`, vault entities from the
workflow file's top-level `vaults:` (this project's extension)."""

from __future__ import annotations

import json
import re
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.harness import Mitmdump, MockServer, RecordedRequest, Reply, client

EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "kong-examples"
TRACE = {"X-DataKit-Debug-Trace": "1"}


def kong_doc(name: str, urls: dict[str, str] | None = None) -> dict[str, Any]:
    """The example's `config:` block (a Kong plugin entity) with URLs replaced."""
    text = (EXAMPLES / name).read_text()
    for old, new in (urls or {}).items():
        assert old in text, f"{old} not in {name}"
        text = text.replace(old, new)
    return {"config": yaml.safe_load(text)["config"]}


def write(tmp_path: Path, doc: dict[str, Any], name: str = "workflow.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def events(report: dict[str, Any], node: str, action: str) -> list[dict[str, Any]]:
    return [e for e in report["events"] if e["name"] == node and e["action"] == action]


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {n["name"]: n["status"] for n in report["nodes"]}


# -- conditionally fetch or store cache data ------------------------------------


def test_conditionally_fetch_or_store_cache_data(tmp_path, mock_server: MockServer, start_mitmdump):
    calls: list[RecordedRequest] = []

    def anything(req: RecordedRequest) -> Reply:
        calls.append(req)
        return Reply(json={"fetched": len(calls), "url": req.path})

    mock_server.route("GET", "/anything", anything)
    cfg = kong_doc("conditionally-store-cached-items.yaml", {"http://localhost:8080": mock_server.url})
    mitm = start_mitmdump(write(tmp_path, cfg))
    with mitm.client() as c:
        first = c.get("http://service.test/one")
        assert first.status_code == 200, first.text
        assert first.headers["x-miss"] == "true" and "x-hit" not in first.headers
        # `body: DATA` and `data: DATA` take the call node's whole output (docs/nodes.md#connections:
        # an object source into an `any` input is a mapping of its ports)
        fetched = first.json()
        assert fetched["body"] == {"fetched": 1, "url": "/anything"}
        assert fetched["status"] == 200
        assert fetched["headers"]["content-type"] == "application/json"
        assert len(calls) == 1  # a miss calls the API and stores

        second = c.get("http://service.test/two")  # the key is static: "cache key"
        assert second.status_code == 200, second.text
        assert second.headers["x-hit"] == "true" and "x-miss" not in second.headers
        assert second.json() == fetched  # what the miss stored
        assert len(calls) == 1  # a hit does not call it

        for _ in range(3):
            assert c.get("http://service.test/").headers["x-hit"] == "true"
    assert len(calls) == 1


# -- sign JWT with consumer ID -----------------------------------------------------


def test_sign_jwt_with_consumer_id(tmp_path, mock_server: MockServer, start_mitmdump):
    secret = "hmac-" + uuid.uuid4().hex + uuid.uuid4().hex
    cfg = kong_doc("sign-consumer-jwt.yaml")
    mitm = start_mitmdump(
        write(tmp_path, cfg),
        options={"proxyauth": "alice:secret"},
        env={"JWT_HMAC_SECRET": secret},
    )
    authed = f"http://alice:secret@127.0.0.1:{mitm.port}"
    with client(authed) as c:
        r = c.get(f"{mock_server.url}/orders")
    assert r.status_code == 200, r.text
    (upstream,) = mock_server.requests
    token = upstream.header("x-consumer-jwt")
    assert token, upstream.headers
    assert pyjwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    claims = pyjwt.decode(token, secret, algorithms=["HS256"])
    assert claims["sub"] == "alice"  # kong.client.consumer.id <- the proxyauth user
    assert claims["iss"] == "kong"
    assert claims["exp"] - claims["iat"] == 300
    assert abs(claims["iat"] - time.time()) < 30
    assert upstream.header("proxy-authorization") is None
    assert secret not in mitm.log_text()

    # without credentials mitmproxy refuses the client; nothing reaches the upstream
    with client(mitm.proxy_url) as c:
        assert c.get(f"{mock_server.url}/orders").status_code == 407
    assert len(mock_server.requests) == 1


# -- authenticate consumer from multiple JWTs ---------------------------------------

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _jwks(public_key: Any, kid: str, alg: str) -> str:
    jwk = json.loads(pyjwt.algorithms.get_default_algorithms()[alg].to_jwk(public_key))
    return json.dumps({"keys": [{**jwk, "kid": kid, "alg": alg, "use": "sig"}]})


def _token(key: Any, alg: str, kid: str, **claims: Any) -> str:
    now = int(time.time())
    body = {"sub": "alice", "iat": now, "exp": now + 300, **claims}
    return pyjwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=alg, headers={"kid": kid})


@pytest.fixture(scope="module")
def jwt_upstream() -> Iterator[MockServer]:
    with MockServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def multi_jwt(tmp_path_factory, mitm_confdir, jwt_upstream) -> Iterator[Mitmdump]:
    """One mitmdump for the example's tests (they only read)."""
    cfg = kong_doc("authenticate-consumer-from-multiple-jwts.yaml")
    m = Mitmdump(
        write(tmp_path_factory.mktemp("multi-jwt"), cfg),
        confdir=mitm_confdir,
        env={"JWKS1_JSON": _jwks(RSA_KEY.public_key(), "k1", "RS256"), "JWKS2_JSON": _jwks(EC_KEY.public_key(), "k2", "ES256")},
        options={"datakit_debug": True},  # the trace header works: we check which path ran
        start=False,
    )
    m.start()
    yield m
    code = m.stop()
    print(f"\n----- {m!r} exit={code} log tail -----\n{m.log_tail(80)}")


def test_multiple_jwts_primary_authorization(multi_jwt, jwt_upstream: MockServer):
    mock_server = jwt_upstream
    token = _token(RSA_KEY, "RS256", "k1", iss="expected-issuer-1", sub="alice")
    with multi_jwt.client() as c:
        r = c.get(f"{mock_server.url}/api", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        assert mock_server.last_request.path == "/api"
        report = c.get(f"{mock_server.url}/api", headers={"Authorization": f"Bearer {token}", **TRACE}).json()
    assert report["status"] == "PLAN_COMPLETE"
    s = statuses(report)
    for name in ("HAS_AUTH1", "BRANCH_AUTH1", "EXTRACT_AUTH1", "VERIFY_AUTH1", "BUILD_CONSUMER1", "SET_CONSUMER1"):
        assert s[name] == "NODE_COMPLETE", (name, s)
    # the else list, and the nested branch's `then` list below it
    for name in ("HAS_AUTH2", "BRANCH_AUTH2", "EXTRACT_AUTH2", "VERIFY_AUTH2", "BUILD_CONSUMER2", "SET_CONSUMER2"):
        assert s[name] == "NODE_SKIPPED", (name, s)
    (set_run,) = events(report, "SET_CONSUMER1", "run")
    # typed by the port (Kong's trace), with the output it came from (3.15.0.2 source metadata)
    assert set_run["values"] == [{"key": "$self", "type": "any", "value": {"username": "alice"}, "source": "BUILD_CONSUMER1"}]


def test_multiple_jwts_secondary_authorization2(multi_jwt, jwt_upstream: MockServer):
    mock_server = jwt_upstream
    token = _token(EC_KEY, "ES256", "k2", iss="expected-issuer-2", sub="bob")
    with multi_jwt.client() as c:
        r = c.get(f"{mock_server.url}/api", headers={"Authorization2": token})
        assert r.status_code == 200, r.text
        report = c.get(f"{mock_server.url}/api", headers={"Authorization2": token, **TRACE}).json()
    assert report["status"] == "PLAN_COMPLETE"
    s = statuses(report)
    for name in ("EXTRACT_AUTH1", "VERIFY_AUTH1", "BUILD_CONSUMER1", "SET_CONSUMER1"):
        assert s[name] == "NODE_SKIPPED", (name, s)
    for name in ("HAS_AUTH2", "BRANCH_AUTH2", "EXTRACT_AUTH2", "VERIFY_AUTH2", "BUILD_CONSUMER2", "SET_CONSUMER2"):
        assert s[name] == "NODE_COMPLETE", (name, s)
    (set_run,) = events(report, "SET_CONSUMER2", "run")
    assert set_run["values"][0]["value"] == {"username": "bob"}


def test_multiple_jwts_neither_header_runs_no_verification(multi_jwt, jwt_upstream: MockServer):
    mock_server = jwt_upstream
    with multi_jwt.client() as c:
        r = c.get(f"{mock_server.url}/api")
        assert r.status_code == 200
        report = c.get(f"{mock_server.url}/api", headers=TRACE).json()
    s = statuses(report)
    assert s["BRANCH_AUTH2"] == "NODE_COMPLETE"
    assert s["VERIFY_AUTH1"] == s["VERIFY_AUTH2"] == "NODE_SKIPPED"


@pytest.mark.parametrize(
    "headers, node",
    [
        # Authorization signed with the second source's key (JWKS1 cannot verify it)
        (lambda: {"Authorization": _token(EC_KEY, "ES256", "k2", iss="expected-issuer-2")}, "VERIFY_AUTH1"),
        # right key, wrong issuer for the source
        (lambda: {"Authorization": _token(RSA_KEY, "RS256", "k1", iss="expected-issuer-2")}, "VERIFY_AUTH1"),
        # a required claim missing
        (lambda: {"Authorization": _token(RSA_KEY, "RS256", "k1", iss="expected-issuer-1", sub=None)}, "VERIFY_AUTH1"),
        # expired
        (lambda: {"Authorization": _token(RSA_KEY, "RS256", "k1", iss="expected-issuer-1", exp=int(time.time()) - 120)}, "VERIFY_AUTH1"),
        # a tampered token in the secondary header
        (lambda: {"Authorization2": _token(EC_KEY, "ES256", "k2", iss="expected-issuer-2")[:-6] + "AAAAAA"}, "VERIFY_AUTH2"),
        # the primary source's token in the secondary header
        (lambda: {"Authorization2": _token(RSA_KEY, "RS256", "k1", iss="expected-issuer-1")}, "VERIFY_AUTH2"),
        # garbage
        (lambda: {"Authorization": "Bearer not-a-jwt"}, "VERIFY_AUTH1"),
    ],
)
def test_multiple_jwts_invalid_token_is_500(multi_jwt, jwt_upstream: MockServer, headers, node):
    h = headers()
    before = len(jwt_upstream.requests)
    with multi_jwt.client() as c:
        r = c.get(f"{jwt_upstream.url}/api", headers=h)
    assert r.status_code == 500, r.text
    body = r.json()
    assert body["node"]["name"] == node and body["node"]["type"] == "jwt_verify"
    assert len(jwt_upstream.requests) == before  # the upstream never saw it


# -- XML -----------------------------------------------------------------------------


def test_transform_json_into_xml_and_back(tmp_path, make_mock_server, start_mitmdump):
    soap_api, upstream = make_mock_server(), make_mock_server()
    seen: list[ET.Element] = []

    def soap(req: RecordedRequest) -> Reply:
        doc = ET.fromstring(req.body)  # the API reads XML...
        seen.append(doc)
        name = doc.findtext("name")
        qty = int(doc.findtext("qty"))
        # ...and answers XML
        answer = (
            f'<quote currency="{doc.get("currency")}"><name>{name}</name>'
            f"<total>{qty * 2.5}</total><line>a</line><line>b</line><ok>true</ok></quote>"
        )
        return Reply(body=answer, headers={"Content-Type": "text/xml; charset=utf-8"})

    soap_api.route("POST", "/", soap)
    upstream.route("GET", "/quote", Reply(body="<upstream/>", headers={"Content-Type": "text/xml"}))
    cfg = kong_doc("convert-json-to-xml-and-back.yaml", {"http://localhost:7180": soap_api.url})
    mitm = start_mitmdump(write(tmp_path, cfg))
    with mitm.client() as c:
        r = c.request(
            "GET",
            f"{upstream.url}/quote",
            json={"order": {"#attr": {"currency": "EUR"}, "name": "pens", "qty": 4}},
        )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {
        "quote": {"#attr": {"currency": "EUR"}, "name": "pens", "total": 10, "line": ["a", "b"], "ok": True}
    }
    (call,) = soap_api.requests
    assert call.method == "POST"
    assert ET.tostring(seen[0], encoding="unicode") == '<order currency="EUR"><name>pens</name><qty>4</qty></order>'
    assert len(upstream.requests) == 1  # proxied as usual; the body was replaced


def test_convert_json_into_xml(tmp_path, mock_server: MockServer, start_mitmdump):
    mitm = start_mitmdump(write(tmp_path, kong_doc("convert-json-into-xml.yaml")))
    body = {
        "book": {
            "-id": "bk101",
            "-lang": "en",
            "author": "Gambardella, Matthew",
            "title": {"-edition": 2, "#text": "XML Developer's Guide"},
            "tags": {"tag": ["xml", "guide"]},
            "price": 44.95,
        }
    }
    with mitm.client() as c:
        r = c.post(f"{mock_server.url}/convert", json=body)
    assert r.status_code == 200, r.text
    assert r.text == (
        '<book id="bk101" lang="en"><author>Gambardella, Matthew</author>'
        "<title edition=\"2\">XML Developer's Guide</title>"
        "<tags><tag>xml</tag><tag>guide</tag></tags><price>44.95</price></book>"
    )
    assert ET.fromstring(r.text).find("title").get("edition") == "2"
    assert mock_server.requests == []  # the exit answered


def test_convert_xml_into_json(tmp_path, mock_server: MockServer, start_mitmdump):
    mitm = start_mitmdump(write(tmp_path, kong_doc("convert-xml-into-json.yaml")))
    xml = (
        '<?xml version="1.0"?><catalog><book id="bk101" available="true">'
        "<title lang=\"en\">XML Developer's Guide</title><price>44.95</price><note>null</note></book>"
        '<book id="bk102"><title>Midnight Rain</title><price>5</price></book></catalog>'
    )
    with mitm.client() as c:
        r = c.post(f"{mock_server.url}/convert", content=xml.encode(), headers={"Content-Type": "application/xml"})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        assert r.json() == {
            "catalog": {
                "book": [
                    {
                        "-id": "bk101",
                        "-available": True,
                        "title": {"-lang": "en", "#text": "XML Developer's Guide"},
                        "price": 44.95,
                        "note": None,
                    },
                    {"-id": "bk102", "title": "Midnight Rain", "price": 5},
                ]
            }
        }
        # the example has debug: true: a bad document is a node error named in the body
        bad = c.post(f"{mock_server.url}/convert", content=b"<a><b></a>", headers={"Content-Type": "text/xml"})
        assert bad.status_code == 500
        assert bad.json()["node"] == {"index": 1, "name": "XML_JSON", "type": "xml_to_json"}
    assert mock_server.requests == []


# -- authenticate with vault secret (a Kong Vault entity) ---------------------------

MY_VAULT = {"name": "env", "prefix": "my-vault", "description": "the example's vault", "config": {"prefix": "MY_SECRET_"}}


def test_authenticate_with_vault_secret(tmp_path, make_mock_server, start_mitmdump):
    token_api, upstream = make_mock_server(), make_mock_server()
    token_api.route("POST", "/auth-token", Reply(json={"token_type": "Bearer", "access_token": "at-42"}))
    api_key = "key-" + uuid.uuid4().hex
    doc = kong_doc("authenticate-with-vault-secret.yaml", {"https://my-token-service": token_api.url})
    assert doc["config"]["resources"]["vault"] == {"token": "{vault://my-vault/my-token}"}  # unchanged
    doc["vaults"] = [MY_VAULT]
    mitm = start_mitmdump(
        write(tmp_path, doc),
        env={"MY_SECRET_MY_TOKEN": api_key, "MY_TOKEN": "not-this-one"},
        options={"datakit_debug": True},
    )
    with mitm.client() as c:
        r = c.get(f"{upstream.url}/orders", headers={"X-Client": "one"})
        assert r.status_code == 200, r.text
        (auth_call,) = token_api.requests
        assert auth_call.method == "POST"
        assert auth_call.header("x-api-key") == api_key  # from MY_SECRET_MY_TOKEN via the entity
        assert auth_call.header("content-type") == "application/x-www-form-urlencoded"
        assert auth_call.body == b"grant_type=client_credentials"
        (proxied,) = upstream.requests
        assert proxied.header("authorization") == "Bearer at-42"
        assert proxied.header("x-client") == "one"

        trace = c.get(f"{upstream.url}/orders", headers=TRACE)
    assert trace.json()["status"] == "PLAN_COMPLETE"
    assert api_key not in trace.text and "[REDACTED]" in trace.text
    assert api_key not in mitm.log_text()


def test_vault_example_in_bare_shape_too(tmp_path, make_mock_server, start_mitmdump):
    token_api, upstream = make_mock_server(), make_mock_server()
    token_api.route("POST", "/auth-token", Reply(json={"token_type": "Bearer", "access_token": "bare"}))
    doc = kong_doc("authenticate-with-vault-secret.yaml", {"https://my-token-service": token_api.url})["config"]
    doc["vaults"] = [{**MY_VAULT, "config": {"prefix": "BARE_"}}]
    mitm = start_mitmdump(write(tmp_path, doc), env={"BARE_MY_TOKEN": "bare-key"})
    with mitm.client() as c:
        assert c.get(f"{upstream.url}/x").status_code == 200
    assert token_api.requests[0].header("x-api-key") == "bare-key"
    assert upstream.requests[0].header("authorization") == "Bearer bare"


@pytest.mark.parametrize(
    "vaults, env, expected",
    [
        # the example as shipped, without the entity its reference names
        (None, {}, r"field '(config\.)?resources\.vault\.token'.*unknown vault 'my-vault'"),
        # an unsupported backend (more cases: tests/unit/test_vault.py)
        ([{**MY_VAULT, "name": "hcv"}], {}, r"field 'vaults\.0\.name'.*vault backend 'hcv' is not implemented"),
    ],
)
def test_vault_example_config_errors(tmp_path, vaults, env, expected):
    doc = kong_doc("authenticate-with-vault-secret.yaml")
    if vaults is not None:
        doc["vaults"] = vaults
    code, output = Mitmdump.run_and_expect_exit(write(tmp_path, doc), env=env)
    assert code != 0
    assert re.search(expected, output), output[-3000:]
