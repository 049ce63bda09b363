"""Kong conformance of `jwt_decode`, `jwt_sign` and `jwt_verify`, through one
real mitmdump serving a directory of workflows (see `_support`).

Every test names its source in Kong's docs repository
(Kong/developer.konghq.com) in its docstring.
"""

from __future__ import annotations

import base64
import hashlib
import hmac as _hmac
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.conformance._support import config_error, json_body, serve, workflow, write_workflows
from tests.harness import Mitmdump, MockServer

HMAC = "hmac-" + uuid.uuid4().hex + uuid.uuid4().hex
RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC = ec.generate_private_key(ec.SECP256R1())
ED = ed25519.Ed25519PrivateKey.generate()


def pem(key: Any, private: bool) -> str:
    if private:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def jwk(key: Any, alg: str, kid: str, private: bool = False) -> dict[str, Any]:
    material = key if private else key.public_key()
    data = json.loads(pyjwt.algorithms.get_default_algorithms()[alg].to_jwk(material))
    return {**data, "kid": kid, "alg": alg, "use": "sig"}


OTHER_EC = ec.generate_private_key(ec.SECP256R1())
JWKS = {"keys": [jwk(OTHER_EC, "ES256", "old"), jwk(EC, "ES256", "current")]}
JWKS2 = {"keys": [jwk(RSA, "RS256", "r1")]}

ENV = {
    "JWT_HMAC_SECRET": HMAC,
    "JWKS1_JSON": json.dumps(JWKS),
    "JWKS2_JSON": json.dumps(JWKS2),
    "DK_RSA_PRIVATE": pem(RSA, True),
    "DK_RSA_PUBLIC": pem(RSA, False),
    "DK_EC_PRIVATE": pem(EC, True),
    "DK_ED_PRIVATE": pem(ED, True),
    "DK_RSA_JWK": json.dumps(jwk(RSA, "RS256", "rsa-jwk", private=True)),
}
VAULT = {"vault": {
    "hmac": "{vault://env/JWT_HMAC_SECRET}", "jwks": "{vault://env/JWKS1_JSON}",
    "rsa_private": "{vault://env/DK_RSA_PRIVATE}", "rsa_public": "{vault://env/DK_RSA_PUBLIC}",
    "ec_private": "{vault://env/DK_EC_PRIVATE}", "ed_private": "{vault://env/DK_ED_PRIVATE}",
    "rsa_jwk": "{vault://env/DK_RSA_JWK}",
}}


def answer(*ports: str, node: str) -> list[dict[str, Any]]:
    """jq collecting the node's ports, answered by an exit."""
    return [
        {"name": "OUT", "type": "jq", "inputs": {p: f"{node}.{p}" for p in ports}, "jq": "."},
        {"name": "EXIT", "type": "exit", "inputs": {"body": "OUT"}},
    ]


def decode_wf(prefix: str) -> dict[str, Any]:
    # index.md, "JWT decode node" > Example: input: request.headers.authorization
    return workflow(prefix, [
        {"name": "decode-token", "type": "jwt_decode", "input": "request.headers.authorization"},
        *answer("header", "payload", "signature", node="decode-token"),
    ], debug=True)


def sign_wf(prefix: str, key: str = "vault.hmac", **attrs: Any) -> dict[str, Any]:
    attrs.setdefault("algorithm", "HS256")
    return workflow(prefix, [
        {"name": "SIGN", "type": "jwt_sign", "inputs": {"claims": "request.body", "key": key}, **attrs},
        *answer("token", "claims", "header", node="SIGN"),
    ], debug=True, resources=VAULT)


def verify_wf(prefix: str, key: str = "vault.hmac", debug: bool = True, **attrs: Any) -> dict[str, Any]:
    return workflow(prefix, [
        {"name": "VERIFY", "type": "jwt_verify", "inputs": {"token": "request.headers.authorization", "key": key},
         **attrs},
        *answer("claims", "header", node="VERIFY"),
    ], debug=debug, resources=VAULT)


def workflows() -> dict[str, dict[str, Any]]:
    return {
        "decode": decode_wf("decode"),
        "sign": sign_wf("sign"),
        "sign-attrs": sign_wf("sign-attrs", algorithm="HS512", expires_in=60, not_before=30, kid="k-1", typ="at+jwt"),
        # index.md "JWT sign node" > Example, with its static claim
        "sign-doc": sign_wf("sign-doc", expires_in=300, static_claims={"iss": "kong"}),
        "sign-rs256": sign_wf("sign-rs256", key="vault.rsa_private", algorithm="RS256"),
        "sign-es256": sign_wf("sign-es256", key="vault.ec_private", algorithm="ES256"),
        "sign-eddsa": sign_wf("sign-eddsa", key="vault.ed_private", algorithm="EdDSA"),
        "sign-jwk": sign_wf("sign-jwk", key="vault.rsa_jwk", algorithm="RS256"),
        "verify-hmac": verify_wf("verify-hmac"),
        "verify-quiet": verify_wf("verify-quiet", debug=False),
        "verify-pem": verify_wf("verify-pem", key="vault.rsa_public"),
        "verify-jwks": verify_wf("verify-jwks", key="vault.jwks"),
        "verify-jwk": verify_wf("verify-jwk", key="vault.rsa_jwk"),
        "verify-algs": verify_wf("verify-algs", allowed_algorithms=["HS512"]),
        "verify-iss": verify_wf("verify-iss", issuers=["expected-issuer"]),
        "verify-aud": verify_wf("verify-aud", audiences=["api-1", "api-2"]),
        # index.md "JWT verify node" > Example attributes
        "verify-required": verify_wf("verify-required", issuers=["expected-issuer"], required_claims=["sub", "exp"]),
        "verify-no-exp": verify_wf("verify-no-exp", validate_exp=False),
        "verify-no-nbf": verify_wf("verify-no-nbf", validate_nbf=False),
        "verify-leeway": verify_wf("verify-leeway", leeway=120),
        # jwt_sign -> jwt_verify in one workflow; the token goes upstream
        "sign-verify": workflow("sign-verify", [
            {"name": "SIGN", "type": "jwt_sign", "algorithm": "HS256", "static_claims": {"iss": "kong"},
             "inputs": {"claims": "request.body", "key": "vault.hmac"}},
            {"name": "VERIFY", "type": "jwt_verify", "issuers": ["kong"], "inputs": {"token": "SIGN.token", "key": "vault.hmac"}},
            {"name": "HDR", "type": "jq", "input": "VERIFY.claims", "jq": '{"x-sub": .sub, "x-nbf": (.nbf|tostring)}',
             "output": "service_request.headers"},
        ], resources=VAULT),
        # examples/authenticate-consumer-from-multiple-jwts.yaml (nodes verbatim)
        # plus one node per path that shows upstream the consumer it sets
        "multi": workflow("multi", [
            *json.loads(json.dumps(MULTI_JWT_NODES)),
            *({"name": f"SHOW{n}", "type": "jq", "input": f"BUILD_CONSUMER{n}", "jq": ".username",
               "output": f"service_request.headers.x-consumer{n}"} for n in (1, 2)),
        ], resources={"vault": {"jwks1": "{vault://env/JWKS1_JSON}", "jwks2": "{vault://env/JWKS2_JSON}"}}),
    }


def _verify_path(n: int) -> list[dict[str, Any]]:
    h = "Authorization" if n == 1 else "Authorization2"
    return [
        {"name": f"EXTRACT_AUTH{n}", "type": "jq", "input": "request.headers", "jq": f".{h} // .{h.lower()}\n"},
        {"name": f"VERIFY_AUTH{n}", "type": "jwt_verify", "issuers": [f"expected-issuer-{n}"],
         "required_claims": ["sub", "iss", "exp"], "inputs": {"token": f"EXTRACT_AUTH{n}", "key": f"vault.jwks{n}"}},
        {"name": f"BUILD_CONSUMER{n}", "type": "jq", "input": f"VERIFY_AUTH{n}.claims", "jq": '{ "username": .sub }\n'},
        {"name": f"SET_CONSUMER{n}", "type": "property", "property": "kong.client.consumer", "input": f"BUILD_CONSUMER{n}"},
    ]


MULTI_JWT_NODES = [
    {"name": "HAS_AUTH1", "type": "jq", "input": "request.headers", "jq": "(.Authorization // .authorization) != null\n"},
    {"name": "BRANCH_AUTH1", "type": "branch", "input": "HAS_AUTH1",
     "then": ["EXTRACT_AUTH1", "VERIFY_AUTH1", "BUILD_CONSUMER1", "SET_CONSUMER1"], "else": ["HAS_AUTH2", "BRANCH_AUTH2"]},
    *_verify_path(1),
    {"name": "HAS_AUTH2", "type": "jq", "input": "request.headers", "jq": "(.Authorization2 // .authorization2) != null\n"},
    {"name": "BRANCH_AUTH2", "type": "branch", "input": "HAS_AUTH2",
     "then": ["EXTRACT_AUTH2", "VERIFY_AUTH2", "BUILD_CONSUMER2", "SET_CONSUMER2"]},
    *_verify_path(2),
]


# -- fixtures ------------------------------------------------------------------


@pytest.fixture(scope="module")
def api() -> Iterator[MockServer]:
    with MockServer() as server:
        yield server


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, mitm_confdir) -> Iterator[Mitmdump]:
    directory = write_workflows(tmp_path_factory.mktemp("jwt-conformance"), workflows())
    yield from serve(directory, mitm_confdir, env=ENV)


@pytest.fixture
def c(proxy: Mitmdump) -> Iterator[httpx.Client]:
    with proxy.client() as client:
        yield client


def hs256(claims: dict[str, Any], secret: str = HMAC, alg: str = "HS256", **headers: Any) -> str:
    return pyjwt.encode(claims, secret, algorithm=alg, headers=headers or None)


def with_token(c: httpx.Client, api: MockServer, prefix: str, token: str, header: str = "Authorization") -> httpx.Response:
    return c.get(f"{api.url}/{prefix}/x", headers={header: token})


def sign(c: httpx.Client, api: MockServer, prefix: str, claims: Any) -> tuple[httpx.Response, int, int]:
    before = int(time.time())
    r = c.post(f"{api.url}/{prefix}/x", **json_body(claims))
    return r, before, int(time.time())


def later(seconds: int) -> int:
    return int(time.time()) + seconds


# -- jwt_decode --------------------------------------------------------------------


def test_decode_outputs_header_payload_signature(c, api):
    """app/_kong_plugins/datakit/index.md node table, `jwt_decode`: outputs
    `header` (decoded), `payload` (decoded claims) and `signature` ("Raw
    base64url-encoded signature"); Datakit.json 3.15 `header`: "(alg, kid, typ)"."""
    token = hs256({"sub": "alice", "n": 1}, kid="k9")
    r = with_token(c, api, "decode", token)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["header"] == {"alg": "HS256", "typ": "JWT", "kid": "k9"}
    assert out["payload"] == {"sub": "alice", "n": 1}
    assert out["signature"] == token.split(".")[2]
    base64.urlsafe_b64decode(out["signature"] + "==")  # base64url


@pytest.mark.parametrize("prefix", ["Bearer ", "bearer ", "BEARER ", ""])
def test_decode_bearer_prefix_any_case(c, api, prefix):
    """index.md, "JWT decode node": "Accepts tokens with or without a `Bearer`
    prefix (case-insensitive)."""
    r = with_token(c, api, "decode", prefix + hs256({"sub": "b"}))
    assert r.status_code == 200, r.text
    assert r.json()["payload"] == {"sub": "b"}


def test_decode_does_not_verify(c, api):
    """index.md, "JWT decode node": "Decode a JWT without verifying its
    signature": a token signed with another key decodes."""
    r = with_token(c, api, "decode", hs256({"sub": "x"}, secret="another-secret-of-32-bytes-length!"))
    assert r.status_code == 200 and r.json()["payload"] == {"sub": "x"}


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c", "Bearer nope", "e30.e30"])
def test_decode_unparseable_token_fails_without_partial_output(c, api, token):
    """index.md, "JWT decode node": "The node will fail the request if the
    token can't be parsed for any reason. No partial results are returned."
    The upstream is not contacted."""
    r = with_token(c, api, "decode", token)
    assert r.status_code == 500
    body = r.json()
    assert body["node"]["name"] == "decode-token" and "header" not in body
    assert api.requests_for("/decode/x") == []


# -- jwt_sign ------------------------------------------------------------------------


def test_sign_adds_iat_exp_nbf(c, api):
    """index.md, "JWT sign node": "Automatically adds `iat`, `exp`, and `nbf`
    time claims." Datakit.json 3.15: `expires_in` default 300 ("for exp
    claim"), `not_before` default 0 ("Seconds until token becomes valid (for
    nbf claim)"): nbf is the signing time."""
    r, before, after = sign(c, api, "sign", {"sub": "s1"})
    assert r.status_code == 200, r.text
    claims = r.json()["claims"]
    assert before <= claims["iat"] <= after
    assert claims["exp"] == claims["iat"] + 300
    assert claims["nbf"] == claims["iat"]
    assert claims["sub"] == "s1"
    assert pyjwt.decode(r.json()["token"], HMAC, algorithms=["HS256"]) == claims


def test_sign_attributes_expires_in_not_before_kid_typ(c, api):
    """Datakit.json 3.15, jwt_sign: `expires_in`, `not_before` (seconds from
    now), `kid` ("Key ID for header"), `typ` (default "JWT", "Token type for
    header"), `algorithm`."""
    r, _, _ = sign(c, api, "sign-attrs", {"sub": "s2"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["claims"]["exp"] == out["claims"]["iat"] + 60
    assert out["claims"]["nbf"] == out["claims"]["iat"] + 30
    assert out["header"] == {"alg": "HS512", "typ": "at+jwt", "kid": "k-1"}
    assert pyjwt.get_unverified_header(out["token"]) == out["header"]


def test_sign_default_header(c, api):
    """Datakit.json 3.15, jwt_sign `typ` default "JWT"; no `kid` unless set."""
    r, _, _ = sign(c, api, "sign", {})
    assert r.json()["header"] == {"alg": "HS256", "typ": "JWT"}


def test_sign_index_example_static_claims(c, api):
    """index.md, "JWT sign node" > Example: `static_claims: {iss: "kong"}` with
    dynamic `claims`; Datakit.json 3.15 `static_claims`: "Static claims always
    included"; output `claims`: "All claims used when signing"."""
    r, _, _ = sign(c, api, "sign-doc", {"sub": "consumer-id"})
    out = r.json()
    assert out["claims"]["iss"] == "kong" and out["claims"]["sub"] == "consumer-id"
    assert pyjwt.decode(out["token"], HMAC, algorithms=["HS256"], options={"verify_nbf": False}) == out["claims"]


@pytest.mark.parametrize(
    ("prefix", "public", "alg"),
    [
        ("sign-rs256", RSA.public_key(), "RS256"),
        ("sign-es256", EC.public_key(), "ES256"),
        ("sign-eddsa", ED.public_key(), "EdDSA"),
        ("sign-jwk", RSA.public_key(), "RS256"),
    ],
)
def test_sign_with_pem_and_jwk_keys(c, api, prefix, public, alg):
    """index.md node table, jwt_sign `key`: "Signing key (PEM, JWK JSON string,
    or HMAC secret)"; Datakit.json 3.15 `algorithm` enum (RS*, ES*, EdDSA, HS*)."""
    r, _, _ = sign(c, api, prefix, {"sub": alg})
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    assert pyjwt.get_unverified_header(token)["alg"] == alg
    assert pyjwt.decode(token, public, algorithms=[alg])["sub"] == alg


def test_sign_then_verify_in_one_workflow(c, api):
    """index.md node table: jwt_sign's `token` output feeds jwt_verify's
    `token` input; the verified claims (with the automatic nbf) go upstream."""
    r = c.post(f"{api.url}/sign-verify/x", **json_body({"sub": "round"}))
    assert r.status_code == 200, r.text
    (seen,) = api.requests_for("/sign-verify/x")
    assert seen.header("x-sub") == "round"
    assert abs(int(seen.header("x-nbf")) - time.time()) < 30


# -- jwt_verify ------------------------------------------------------------------------


def test_verify_outputs_claims_and_header(c, api):
    """index.md node table, `jwt_verify`: outputs `claims` (JWT payload claims)
    and `header`; input `token` "with or without `Bearer` prefix"."""
    claims = {"sub": "v", "exp": later(600)}
    for prefix in ("", "Bearer ", "bEaReR "):
        r = with_token(c, api, "verify-hmac", prefix + hs256(claims))
        assert r.status_code == 200, r.text
        assert r.json() == {"claims": claims, "header": {"alg": "HS256", "typ": "JWT"}}


def test_verify_bad_signature_fails_cleanly(c, api):
    """index.md, "JWT verify node": "Verify a JWT's signature" and "No partial
    results are returned": a wrong signature is the generic 500 (debug off)."""
    r = with_token(c, api, "verify-quiet", hs256({"sub": "v"}, secret="wrong-secret-of-at-least-32-bytes!!"))
    assert r.status_code == 500
    assert set(r.json()) == {"message", "request_id"}
    assert api.requests_for("/verify-quiet/x") == []


@pytest.mark.parametrize(
    ("prefix", "token"),
    [
        ("verify-pem", lambda: pyjwt.encode({"sub": "pem"}, RSA, algorithm="RS256")),
        ("verify-jwks", lambda: pyjwt.encode({"sub": "jwks"}, EC, algorithm="ES256", headers={"kid": "current"})),
        ("verify-jwk", lambda: pyjwt.encode({"sub": "jwk"}, RSA, algorithm="RS256")),
        ("verify-hmac", lambda: hs256({"sub": "hmac"})),
    ],
)
def test_verify_key_formats(c, api, prefix, token):
    """index.md, "JWT verify node": "Supports JWKS, JWK, PEM, and HMAC secret
    key formats." (JWKS: the key picked by `kid`.)"""
    r = with_token(c, api, prefix, token())
    assert r.status_code == 200, r.text
    assert r.json()["claims"]["sub"] in prefix


def test_verify_jwks_wrong_kid_key_fails(c, api):
    """index.md, "JWT verify node" (JWKS): a token signed by a key outside the
    set does not verify."""
    token = pyjwt.encode({"sub": "x"}, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": "current"})
    assert with_token(c, api, "verify-jwks", token).status_code == 500


def test_verify_allowed_algorithms(c, api):
    """Datakit.json 3.15, jwt_verify `allowed_algorithms` ("empty = any
    supported"): HS256 passes with the default, not when only HS512 is allowed."""
    assert with_token(c, api, "verify-hmac", hs256({"sub": "a"})).status_code == 200
    assert with_token(c, api, "verify-algs", hs256({"sub": "a"})).status_code == 500
    assert with_token(c, api, "verify-algs", hs256({"sub": "a"}, alg="HS512")).status_code == 200


def test_verify_issuers(c, api):
    """Datakit.json 3.15, jwt_verify `issuers` ("Allowed issuers (empty =
    any)"); index.md example `issuers: ["expected-issuer"]`."""
    assert with_token(c, api, "verify-iss", hs256({"iss": "expected-issuer"})).status_code == 200
    bad = with_token(c, api, "verify-iss", hs256({"iss": "someone-else"}))
    assert bad.status_code == 500 and "issuer" in bad.json()["error"]
    assert with_token(c, api, "verify-hmac", hs256({"iss": "anyone"})).status_code == 200


def test_verify_audiences(c, api):
    """Datakit.json 3.15, jwt_verify `audiences` ("Allowed audiences (empty =
    any)"): a string or a list sharing one allowed audience passes."""
    assert with_token(c, api, "verify-aud", hs256({"aud": "api-2"})).status_code == 200
    assert with_token(c, api, "verify-aud", hs256({"aud": ["x", "api-1"]})).status_code == 200
    assert with_token(c, api, "verify-aud", hs256({"aud": "api-3"})).status_code == 500
    assert with_token(c, api, "verify-aud", hs256({"sub": "no-aud"})).status_code == 500


def test_verify_required_claims_index_example(c, api):
    """index.md, "JWT verify node" > Example: `issuers: [expected-issuer]`,
    `required_claims: [sub, exp]` (Datakit.json: "Claims that must be present")."""
    good = {"iss": "expected-issuer", "sub": "u", "exp": later(60)}
    assert with_token(c, api, "verify-required", hs256(good)).status_code == 200
    missing = with_token(c, api, "verify-required", hs256({"iss": "expected-issuer", "sub": "u"}))
    assert missing.status_code == 500 and "exp" in missing.json()["error"]


def test_verify_exp_and_validate_exp(c, api):
    """Datakit.json 3.15, jwt_verify `validate_exp` (default true, "Validate
    expiration claim"): an expired token fails unless it is false."""
    expired = hs256({"sub": "e", "exp": later(-60)})
    assert with_token(c, api, "verify-hmac", expired).status_code == 500
    assert with_token(c, api, "verify-no-exp", expired).status_code == 200


def test_verify_nbf_and_validate_nbf(c, api):
    """Datakit.json 3.15, jwt_verify `validate_nbf` (default true, "Validate
    not-before claim"): a token not valid yet fails unless it is false."""
    early = hs256({"sub": "n", "nbf": later(600)})
    assert with_token(c, api, "verify-hmac", early).status_code == 500
    assert with_token(c, api, "verify-no-nbf", early).status_code == 200


def test_verify_leeway(c, api):
    """Datakit.json 3.15, jwt_verify `leeway` (default 0, "Allowed clock skew
    in seconds for exp/nbf validation")."""
    assert with_token(c, api, "verify-leeway", hs256({"exp": later(-60)})).status_code == 200
    assert with_token(c, api, "verify-leeway", hs256({"nbf": later(60)})).status_code == 200
    assert with_token(c, api, "verify-leeway", hs256({"exp": later(-600)})).status_code == 500


def test_verify_public_key_as_hmac_secret_is_rejected(c, api):
    """changelog.json 3.15.0.3 and 3.14.0.12 (CVE-2026-14916): "a symmetric
    algorithm can no longer be verified against an asymmetric key" — an HS256
    token whose secret is the PEM public key (allowed_algorithms unset)."""
    public_pem = pem(RSA, False).encode()
    header = {"alg": "HS256", "typ": "JWT"}
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps({"sub": "admin"}).encode())
    signature = b64(_hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest())
    r = with_token(c, api, "verify-pem", f"{signing_input}.{signature}")
    assert r.status_code == 500
    assert "cannot be verified with an RSA key" in r.json()["error"]


def test_verify_alg_none_is_rejected(c, api):
    """docs/nodes.md#jwt_verify (Kong's schema enum lists no `none`):
    unsigned tokens never verify."""
    token = pyjwt.encode({"sub": "n"}, None, algorithm="none")
    assert with_token(c, api, "verify-hmac", token).status_code == 500


def test_example_authenticate_consumer_from_multiple_jwts(c, api):
    """app/_kong_plugins/datakit/examples/authenticate-consumer-from-multiple-jwts.yaml:
    the JWT in Authorization is verified against JWKS1, else the one in
    Authorization2 against JWKS2; `sub` becomes the consumer's username."""
    t1 = pyjwt.encode({"sub": "alice", "iss": "expected-issuer-1", "exp": later(60)}, EC, algorithm="ES256",
                      headers={"kid": "current"})
    t2 = pyjwt.encode({"sub": "bob", "iss": "expected-issuer-2", "exp": later(60)}, RSA, algorithm="RS256",
                      headers={"kid": "r1"})
    assert with_token(c, api, "multi", t1).status_code == 200
    assert with_token(c, api, "multi", t2, header="Authorization2").status_code == 200
    seen = api.requests_for("/multi/x")
    assert [(s.header("x-consumer1"), s.header("x-consumer2")) for s in seen] == [("alice", None), (None, "bob")]
    # a JWKS2 token in the first header: verified against JWKS1, fails
    assert with_token(c, api, "multi", t2).status_code == 500
    assert len(api.requests_for("/multi/x")) == 2


# -- configuration ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ({"static_claims": {"n": 1}}, "static_claims"),
        ({"algorithm": None}, "algorithm"),
        ({"algorithm": "none"}, "algorithm"),
    ],
)
def test_sign_config_errors(tmp_path, attrs, expected):
    """Datakit.json 3.15, jwt_sign: `static_claims` is a map of strings
    (`additionalProperties: {type: string}`), `algorithm` is required and one
    of the enum. A workflow breaking these is refused when it loads."""
    node = {"name": "SIGN", "type": "jwt_sign", "algorithm": "HS256", **attrs}
    if node["algorithm"] is None:
        del node["algorithm"]
    output = config_error(tmp_path, workflow("bad", [node]))
    assert expected in output
