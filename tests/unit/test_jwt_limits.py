"""JWT limits: out-of-range time claims are clean rejections, and a token
without `kid` is tried against a bounded number of JWKS keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest

from mitmdatakit import jwtkit
from mitmdatakit.errors import JWTError
from mitmdatakit.jwtkit import MAX_KEYS_WITHOUT_KID, MAX_NUMERIC_DATE


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def oct_jwks(count: int, kids: bool = False) -> dict:
    keys = []
    for i in range(count):
        key = {"kty": "oct", "k": b64(f"secret-number-{i:05d}-of-the-key-set".encode())}
        if kids:
            key["kid"] = f"k{i}"
        keys.append(key)
    return {"keys": keys}


def secret(i: int) -> bytes:
    return f"secret-number-{i:05d}-of-the-key-set".encode()


@pytest.fixture
def tries(monkeypatch) -> list[int]:
    """Counts signature checks (PyJWS.decode_complete calls with a key)."""
    calls: list[int] = []
    original = jwt.api_jws.PyJWS.decode_complete

    def counting(self, *args, **kwargs):
        if kwargs.get("key") is not None:
            calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(jwt.api_jws.PyJWS, "decode_complete", counting)
    return calls


def test_a_token_without_kid_tries_at_most_the_bound(tries):
    jwks = oct_jwks(1000)
    token = jwt.encode({"sub": "x"}, secret(500), algorithm="HS256")  # the 501st key: never reached
    started = time.perf_counter()
    with pytest.raises(JWTError, match=rf"first {MAX_KEYS_WITHOUT_KID} of 1000 .*'kid'"):
        jwtkit.verify(token, jwks)
    assert len(tries) == MAX_KEYS_WITHOUT_KID
    assert time.perf_counter() - started < 2.0  # generous: 10 HMAC checks, not 1000


def test_a_key_within_the_bound_still_verifies(tries):
    jwks = oct_jwks(1000)
    token = jwt.encode({"sub": "x"}, secret(MAX_KEYS_WITHOUT_KID - 1), algorithm="HS256")
    _, claims = jwtkit.verify(token, jwks)
    assert claims == {"sub": "x"} and len(tries) == MAX_KEYS_WITHOUT_KID


def test_a_kid_selects_any_key_of_a_large_jwks(tries):
    jwks = oct_jwks(1000, kids=True)
    token = jwt.encode({"sub": "x"}, secret(999), algorithm="HS256", headers={"kid": "k999"})
    _, claims = jwtkit.verify(token, jwks)
    assert claims == {"sub": "x"} and len(tries) == 1


def test_a_small_jwks_keeps_the_plain_message(tries):
    token = jwt.encode({"sub": "x"}, b"not-in-the-set-at-all-0000000000", algorithm="HS256")
    with pytest.raises(JWTError, match=r"^signature verification failed$"):
        jwtkit.verify(token, oct_jwks(3))
    assert len(tries) == 3


SECRET = "unit-test-secret-unit-test-secret"


def token_with(payload_text: str) -> str:
    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(payload_text.encode())
    sig = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(sig)}"


@pytest.mark.parametrize("claim", ["exp", "nbf"])
@pytest.mark.parametrize("value, message", [
    ("1e300", "out of range"),
    ("-1e300", "out of range"),
    ("1" + "0" * 400, "out of range"),
    (str(MAX_NUMERIC_DATE + 1), "out of range"),
    ("1e400", "not JSON"),  # inf
    ("NaN", "not JSON"),
    ("Infinity", "not JSON"),
    ('"2030-01-01"', "must be a number"),
    ("true", "must be a number"),
    ("null", "must be a number"),
])
def test_bad_time_claims_are_rejections(claim, value, message):
    token = token_with(f'{{"{claim}":{value}}}')
    with pytest.raises(JWTError, match=message):
        jwtkit.verify(token, SECRET)


def test_time_claims_at_the_edges():
    far = MAX_NUMERIC_DATE
    assert jwtkit.verify(token_with(f'{{"exp":{far}}}'), SECRET)[1] == {"exp": far}
    with pytest.raises(JWTError, match="expired"):
        jwtkit.verify(token_with('{"exp":-5}'), SECRET)  # before 1970: simply expired
    assert jwtkit.verify(token_with('{"nbf":-5}'), SECRET)[1] == {"nbf": -5}
    # a huge leeway is clamped, not an OverflowError
    jwtkit.check_claims({"exp": 1.5, "nbf": far}, leeway=10**500, now=1e9)


def test_decode_rejects_non_standard_numbers():
    with pytest.raises(JWTError, match="not JSON"):
        jwtkit.decode(token_with('{"exp":1e400}'))
    assert jwtkit.decode(token_with('{"exp":1e300}'))[1] == {"exp": 1e300}  # decode does not judge claims


@pytest.mark.parametrize("claims", [{"exp": 1e300}, {"exp": 10**400}, {"nbf": -(10**30)}, {"exp": "soon"}, {"x": float("nan")}, {"x": float("inf")}])
def test_sign_refuses_what_no_verifier_accepts(claims):
    with pytest.raises(JWTError, match="cannot sign token"):
        jwtkit.sign(claims, SECRET, "HS256")


def test_sign_still_signs_ordinary_claims():
    token, claims, _ = jwtkit.sign({"sub": "u", "exp": 4102444800}, SECRET, "HS256")
    assert jwtkit.verify(token, SECRET)[1] == claims
    assert json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==")) == claims


@pytest.mark.parametrize("text", ['{"keys": ' + "[" * 100_000 + "]" * 100_000 + "}", "[" * 100_000 + "]" * 100_000])
def test_a_jwks_nested_too_deeply_is_a_clean_error(text):
    with pytest.raises(JWTError, match="nested too deeply"):
        jwtkit.load_keys(text)
