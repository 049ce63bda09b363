"""`jwt_sign`, `jwt_verify` and `jwt_decode`: signing with a vault key, verifying against a PEM or a JWKS, forgeries refused, decoding without verifying.

Through a real mitmdump with real HTTP (the fixtures: conftest.py here)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt as pyjwt
import pytest

from tests.harness import Reply
from tests.integration.nodes._support import (
    EC_KEY,
    HMAC_SECRET,
    OTHER_EC_KEY,
    OTHER_RSA_KEY,
    RSA_KEY,
    RSA_PUBLIC_PEM,
    TRACE,
    statuses,
)


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
    head, _payload, sig = valid.split(".")
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
