"""jwt_decode / jwt_sign / jwt_verify nodes and the jwtkit functions behind them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from mitmdatakit import jwtkit
from mitmdatakit.errors import ConfigError, NodeError
from mitmdatakit.nodes.base import NodeSpec, WorkflowInfo, node_types
from mitmdatakit.nodes.jwt_decode import JwtDecodeNode
from mitmdatakit.nodes.jwt_sign import JwtSignNode
from mitmdatakit.nodes.jwt_verify import JwtVerifyNode
from mitmdatakit.ports import Ports, PortType

SECRET = "a-long-enough-hmac-secret-for-hs512-tokens-0123456789abcdef0123456789"

# -- helpers ------------------------------------------------------------------


def _workflow() -> WorkflowInfo:
    return WorkflowInfo(name="t", source="t.yaml", resources={}, raw_resources={}, upstreams={})


def make(cls, **attrs):
    # the loader strips attributes given as null before building the node
    attrs = {k: v for k, v in attrs.items() if v is not None}
    return cls(NodeSpec(name="X", type=cls.type_name, index=0, attrs=attrs), _workflow())


def sign(key, algorithm="HS256", claims=None, **attrs):
    node = make(JwtSignNode, algorithm=algorithm, **attrs)
    return node.run({"claims": claims, "key": key}, None)


def verify(token, key, **attrs):
    return make(JwtVerifyNode, **attrs).run({"token": token, "key": key}, None)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(obj) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def hs256_token(header: dict, payload: dict, secret: bytes) -> str:
    """An HS256 token signed by hand (PyJWT refuses PEM secrets, an attacker doesn't)."""
    signing_input = f"{segment(header)}.{segment(payload)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def pem_private(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def pem_public(key) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def jwk_of(key, *, private: bool, kid: str | None = None, alg: str | None = None) -> dict:
    material = key if private else key.public_key()
    if isinstance(key, rsa.RSAPrivateKey):
        data = json.loads(pyjwt.algorithms.RSAAlgorithm.to_jwk(material))
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        data = json.loads(pyjwt.algorithms.ECAlgorithm.to_jwk(material))
    else:
        data = json.loads(pyjwt.algorithms.OKPAlgorithm.to_jwk(material))
    if kid is not None:
        data["kid"] = kid
    if alg is not None:
        data["alg"] = alg
    return data


# -- keys (generated once per module; RSA is the slow one) ----------------------


@pytest.fixture(scope="module")
def keys():
    return {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "rsa2": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "p256": ec.generate_private_key(ec.SECP256R1()),
        "p384": ec.generate_private_key(ec.SECP384R1()),
        "p521": ec.generate_private_key(ec.SECP521R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
        "ed448": ed448.Ed448PrivateKey.generate(),
    }


ASYMMETRIC = [
    ("RS256", "rsa"),
    ("RS384", "rsa"),
    ("RS512", "rsa"),
    ("PS256", "rsa"),
    ("PS384", "rsa"),
    ("PS512", "rsa"),
    ("ES256", "p256"),
    ("ES384", "p384"),
    ("ES512", "p521"),
    ("EdDSA", "ed25519"),
    ("EdDSA", "ed448"),
]


# -- registration and ports ---------------------------------------------------------


def test_node_types_registered_with_declared_ports():
    types = node_types()
    assert types["jwt_decode"] is JwtDecodeNode
    assert types["jwt_sign"] is JwtSignNode
    assert types["jwt_verify"] is JwtVerifyNode

    dec = make(JwtDecodeNode)
    assert dec.input_ports() == Ports(self_type=PortType.STRING)
    assert dict(dec.output_ports().named) == {
        "header": PortType.MAP,
        "payload": PortType.MAP,
        "signature": PortType.STRING,
    }
    sig = make(JwtSignNode, algorithm="HS256")
    assert dict(sig.input_ports().named) == {"claims": PortType.MAP, "key": PortType.ANY}
    assert dict(sig.output_ports().named) == {
        "token": PortType.STRING,
        "claims": PortType.MAP,
        "header": PortType.MAP,
    }
    ver = make(JwtVerifyNode)
    assert dict(ver.input_ports().named) == {"token": PortType.STRING, "key": PortType.ANY}
    assert dict(ver.output_ports().named) == {"claims": PortType.MAP, "header": PortType.MAP}
    assert JwtSignNode.schema["required"] == ["algorithm"]


# -- round trips -----------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_round_trip(alg):
    out = sign(SECRET, alg, {"sub": "alice"})
    res = verify(out["token"], SECRET)
    assert res["claims"]["sub"] == "alice"
    assert res["header"]["alg"] == alg
    assert res["claims"] == out["claims"]


@pytest.mark.parametrize(("alg", "which"), ASYMMETRIC)
def test_asymmetric_round_trip_pem(keys, alg, which):
    key = keys[which]
    out = sign(pem_private(key), alg, {"sub": "bob", "n": 1})
    res = verify(out["token"], pem_public(key))
    assert res["claims"]["sub"] == "bob"
    assert res["claims"]["n"] == 1
    assert res["header"] == {"alg": alg, "typ": "JWT"}
    # a private PEM also verifies (its public half is used)
    assert verify(out["token"], pem_private(key))["claims"]["sub"] == "bob"


@pytest.mark.parametrize(("alg", "which"), ASYMMETRIC)
def test_asymmetric_round_trip_jwk(keys, alg, which):
    key = keys[which]
    private_jwk = json.dumps(jwk_of(key, private=True))  # JWK JSON string
    out = sign(private_jwk, alg, {"sub": "carol"})
    public_jwk = jwk_of(key, private=False)  # already-decoded mapping
    assert verify(out["token"], public_jwk)["claims"]["sub"] == "carol"
    assert verify(out["token"], json.dumps(public_jwk))["claims"]["sub"] == "carol"


def test_oct_jwk_round_trip():
    jwk = {"kty": "oct", "k": b64url(SECRET.encode()), "kid": "sym"}
    out = sign(jwk, "HS384", {"sub": "dave"})
    assert out["header"]["kid"] == "sym"  # the JWK's kid goes into the header
    assert verify(out["token"], jwk)["claims"]["sub"] == "dave"
    # the same bytes as a plain secret verify too
    assert verify(out["token"], SECRET)["claims"]["sub"] == "dave"


def test_jwks_selects_key_by_kid(keys):
    jwks = {
        "keys": [
            jwk_of(keys["rsa2"], private=False, kid="old"),
            jwk_of(keys["rsa"], private=False, kid="current"),
            jwk_of(keys["p256"], private=False, kid="ec"),
            {"kty": "RSA", "use": "enc", "kid": "enc-only", "n": "AQAB", "e": "AQAB"},
        ]
    }
    out = sign(pem_private(keys["rsa"]), "RS256", {"sub": "erin"}, kid="current")
    assert out["header"]["kid"] == "current"
    res = verify(out["token"], json.dumps(jwks))
    assert res["claims"]["sub"] == "erin"
    assert res["header"]["kid"] == "current"
    # EC key found by kid in the same set
    out = sign(pem_private(keys["p256"]), "ES256", {"sub": "ec"}, kid="ec")
    assert verify(out["token"], jwks)["claims"]["sub"] == "ec"


def test_jwks_without_kid_tries_compatible_keys(keys):
    jwks = {
        "keys": [
            jwk_of(keys["p256"], private=False, kid="ec"),
            jwk_of(keys["rsa2"], private=False, kid="a"),
            jwk_of(keys["rsa"], private=False, kid="b"),
        ]
    }
    out = sign(pem_private(keys["rsa"]), "PS256", {"sub": "frank"})
    assert "kid" not in out["header"]
    assert verify(out["token"], jwks)["claims"]["sub"] == "frank"


def test_jwks_without_matching_kid_fails(keys):
    jwks = {"keys": [jwk_of(keys["rsa"], private=False, kid="current")]}
    out = sign(pem_private(keys["rsa"]), "RS256", {"sub": "x"}, kid="unknown")
    with pytest.raises(NodeError, match="no key with kid 'unknown'"):
        verify(out["token"], jwks)


def test_jwks_sign_picks_key_by_kid(keys):
    jwks = {
        "keys": [
            jwk_of(keys["rsa2"], private=True, kid="a"),
            jwk_of(keys["rsa"], private=True, kid="b"),
        ]
    }
    out = sign(jwks, "RS256", {"sub": "g"}, kid="b")
    assert verify(out["token"], pem_public(keys["rsa"]))["claims"]["sub"] == "g"
    with pytest.raises(NodeError):
        verify(out["token"], pem_public(keys["rsa2"]))


def test_jwk_alg_member_restricts_algorithm(keys):
    jwk = jwk_of(keys["rsa"], private=False, alg="RS256")
    out = sign(pem_private(keys["rsa"]), "PS256", {"sub": "h"})
    with pytest.raises(NodeError, match="cannot be verified"):
        verify(out["token"], jwk)
    ok = sign(pem_private(keys["rsa"]), "RS256", {"sub": "h"})
    assert verify(ok["token"], jwk)["claims"]["sub"] == "h"


# -- Bearer prefix -----------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["Bearer ", "bearer ", "BEARER   ", "BeArEr\t", "  Bearer "])
def test_bearer_prefix_case_insensitive(prefix):
    token = sign(SECRET, "HS256", {"sub": "i"})["token"]
    assert verify(prefix + token, SECRET)["claims"]["sub"] == "i"
    decoded = make(JwtDecodeNode).run({"$self": prefix + token}, None)
    assert decoded["payload"]["sub"] == "i"


# -- forgeries and negative cases ---------------------------------------------


def test_hs256_forged_with_rsa_public_pem_as_secret_fails(keys):
    public_pem = pem_public(keys["rsa"])
    forged = hs256_token(
        {"alg": "HS256", "typ": "JWT"},
        {"sub": "admin", "exp": int(time.time()) + 600},
        public_pem.encode(),
    )
    # allowed_algorithms unset: HS256 must still not be checked against an RSA key
    with pytest.raises(NodeError, match="cannot be verified with an RSA key"):
        verify(forged, public_pem)
    # even when the workflow (wrongly) allows HS256
    with pytest.raises(NodeError):
        verify(forged, public_pem, allowed_algorithms=["HS256", "RS256"])
    # and the same secret without a trailing newline
    forged2 = hs256_token({"alg": "HS256"}, {"sub": "admin"}, public_pem.strip().encode())
    with pytest.raises(NodeError):
        verify(forged2, public_pem)


def test_hs256_forged_with_public_jwk_or_ec_pem_as_secret_fails(keys):
    jwk_text = json.dumps(jwk_of(keys["rsa"], private=False))
    forged = hs256_token({"alg": "HS256"}, {"sub": "admin"}, jwk_text.encode())
    with pytest.raises(NodeError):
        verify(forged, jwk_text)
    ec_pem = pem_public(keys["p256"])
    forged = hs256_token({"alg": "HS256"}, {"sub": "admin"}, ec_pem.encode())
    with pytest.raises(NodeError, match="cannot be verified with an EC key"):
        verify(forged, ec_pem)


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_rejected(keys, alg):
    payload = {"sub": "admin", "exp": int(time.time()) + 600}
    unsigned = f"{segment({'alg': alg, 'typ': 'JWT'})}.{segment(payload)}."
    for key in (SECRET, pem_public(keys["rsa"])):
        with pytest.raises(NodeError, match="alg 'none'"):
            verify(unsigned, key)
    with pytest.raises(NodeError):
        verify(unsigned, SECRET, allowed_algorithms=["HS256"])
    # a "none" token carrying some signature bytes fares no better
    with pytest.raises(NodeError):
        verify(unsigned + b64url(b"sig"), SECRET)


def test_alg_none_cannot_be_signed():
    with pytest.raises(ConfigError, match="unknown algorithm 'none'"):
        make(JwtSignNode, algorithm="none")


def test_tampered_payload_rejected(keys):
    for key_sign, key_verify, alg in [
        (SECRET, SECRET, "HS256"),
        (pem_private(keys["rsa"]), pem_public(keys["rsa"]), "RS256"),
        (pem_private(keys["ed25519"]), pem_public(keys["ed25519"]), "EdDSA"),
    ]:
        token = sign(key_sign, alg, {"sub": "user", "role": "reader"})["token"]
        header, payload, sig = token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims["role"] = "admin"
        tampered = f"{header}.{segment(claims)}.{sig}"
        with pytest.raises(NodeError, match="signature verification failed"):
            verify(tampered, key_verify)


def test_expired_token_rejected():
    token = sign(SECRET, "HS256", {"sub": "j"}, expires_in=1)["token"]
    assert verify(token, SECRET)["claims"]["sub"] == "j"
    expired = sign(SECRET, "HS256", {"sub": "j", "exp": int(time.time()) - 10})["token"]
    with pytest.raises(NodeError, match="expired"):
        verify(expired, SECRET)


def test_rs256_against_different_key_fails(keys):
    token = sign(pem_private(keys["rsa"]), "RS256", {"sub": "k"})["token"]
    with pytest.raises(NodeError, match="signature verification failed"):
        verify(token, pem_public(keys["rsa2"]))
    with pytest.raises(NodeError):
        verify(token, jwk_of(keys["rsa2"], private=False))


def test_allowed_algorithms_excludes_token_alg(keys):
    token = sign(pem_private(keys["rsa"]), "RS256", {"sub": "l"})["token"]
    with pytest.raises(NodeError, match="'RS256' is not allowed"):
        verify(token, pem_public(keys["rsa"]), allowed_algorithms=["PS256", "ES256"])
    res = verify(token, pem_public(keys["rsa"]), allowed_algorithms=["RS256"])
    assert res["claims"]["sub"] == "l"


def test_embedded_jwk_header_is_ignored(keys):
    attacker = keys["rsa2"]
    header = {"alg": "RS256", "jwk": jwk_of(attacker, private=False)}
    token = pyjwt.encode({"sub": "admin"}, attacker, algorithm="RS256", headers=header)
    with pytest.raises(NodeError, match="signature verification failed"):
        verify(token, pem_public(keys["rsa"]))


def test_unknown_crit_header_rejected():
    token = pyjwt.encode(
        {"sub": "m"}, SECRET, algorithm="HS256", headers={"crit": ["exp-ext"], "exp-ext": 1}
    )
    with pytest.raises(NodeError):
        verify(token, SECRET)


def test_ec_curve_bound_to_algorithm(keys):
    # ES256 needs P-256: a P-384 key is refused for signing and verifying
    with pytest.raises(NodeError, match="cannot be used with an EC key on curve secp384r1"):
        sign(pem_private(keys["p384"]), "ES256", {})
    token = sign(pem_private(keys["p256"]), "ES256", {})["token"]
    with pytest.raises(NodeError, match="cannot be verified"):
        verify(token, pem_public(keys["p384"]))


def test_asymmetric_token_against_hmac_secret_fails(keys):
    token = sign(pem_private(keys["rsa"]), "RS256", {"sub": "n"})["token"]
    with pytest.raises(NodeError, match="cannot be verified with an HMAC secret"):
        verify(token, SECRET)


def test_wrong_hmac_secret_fails():
    token = sign(SECRET, "HS256", {"sub": "o"})["token"]
    with pytest.raises(NodeError, match="signature verification failed"):
        verify(token, SECRET + "x")


# -- claim checks ---------------------------------------------------------------------


def test_exp_with_leeway_and_toggle():
    now = int(time.time())
    token = sign(SECRET, "HS256", {"exp": now - 10})["token"]
    with pytest.raises(NodeError, match="expired"):
        verify(token, SECRET, leeway=5)
    assert verify(token, SECRET, leeway=60)["claims"]["exp"] == now - 10
    assert verify(token, SECRET, validate_exp=False)["claims"]["exp"] == now - 10


def test_nbf_with_leeway_and_toggle():
    now = int(time.time())
    token = sign(SECRET, "HS256", {"nbf": now + 100})["token"]
    with pytest.raises(NodeError, match="not valid yet"):
        verify(token, SECRET)
    with pytest.raises(NodeError, match="not valid yet"):
        verify(token, SECRET, leeway=50)
    assert verify(token, SECRET, leeway=200)["claims"]["nbf"] == now + 100
    assert verify(token, SECRET, validate_nbf=False)["claims"]["nbf"] == now + 100


def test_non_numeric_exp_rejected():
    token = pyjwt.encode({"sub": "p"}, SECRET, algorithm="HS256")
    header, _, _ = token.split(".")
    bad = hs256_token(json.loads(base64.urlsafe_b64decode(header + "==")), {"exp": "soon"}, SECRET.encode())
    with pytest.raises(NodeError, match="'exp' must be a number"):
        verify(bad, SECRET)
    assert verify(bad, SECRET, validate_exp=False)["claims"]["exp"] == "soon"


def test_issuers():
    token = sign(SECRET, "HS256", {"iss": "issuer-a"})["token"]
    assert verify(token, SECRET, issuers=["issuer-b", "issuer-a"])["claims"]["iss"] == "issuer-a"
    with pytest.raises(NodeError, match="issuer 'issuer-a' is not allowed"):
        verify(token, SECRET, issuers=["issuer-b"])
    no_iss = sign(SECRET, "HS256", {})["token"]
    with pytest.raises(NodeError, match="no 'iss'"):
        verify(no_iss, SECRET, issuers=["issuer-a"])
    assert verify(no_iss, SECRET)["claims"]["iat"] > 0  # empty issuers: any


def test_audiences_string_or_list():
    as_string = sign(SECRET, "HS256", {"aud": "api"})["token"]
    as_list = sign(SECRET, "HS256", {"aud": ["web", "api"]})["token"]
    assert verify(as_string, SECRET, audiences=["api"])["claims"]["aud"] == "api"
    assert verify(as_list, SECRET, audiences=["other", "api"])["claims"]["aud"] == ["web", "api"]
    with pytest.raises(NodeError, match="audience"):
        verify(as_string, SECRET, audiences=["web"])
    with pytest.raises(NodeError, match="audience"):
        verify(as_list, SECRET, audiences=["mobile"])
    no_aud = sign(SECRET, "HS256", {})["token"]
    with pytest.raises(NodeError, match="no 'aud'"):
        verify(no_aud, SECRET, audiences=["api"])
    # empty audiences: a token with any aud passes (unlike PyJWT's default)
    assert verify(as_list, SECRET)["claims"]["aud"] == ["web", "api"]


def test_required_claims():
    token = sign(SECRET, "HS256", {"sub": "q", "iss": "kong"})["token"]
    res = verify(token, SECRET, required_claims=["sub", "iss", "exp"])
    assert res["claims"]["sub"] == "q"
    with pytest.raises(NodeError, match="missing required claim 'email'"):
        verify(token, SECRET, required_claims=["sub", "email"])
    no_exp = sign(SECRET, "HS256", {"sub": "q"}, expires_in=0)["token"]
    with pytest.raises(NodeError, match="missing required claim 'exp'"):
        verify(no_exp, SECRET, required_claims=["exp"])


def test_kong_example_verify_config(keys):
    """authenticate-consumer-from-multiple-jwts.yaml's VERIFY_AUTH1 node."""
    jwks = json.dumps({"keys": [jwk_of(keys["rsa"], private=False, kid="k1")]})
    good = sign(pem_private(keys["rsa"]), "RS256", {"sub": "alice", "iss": "expected-issuer-1"}, kid="k1")
    attrs = {"issuers": ["expected-issuer-1"], "required_claims": ["sub", "iss", "exp"]}
    assert verify("Bearer " + good["token"], jwks, **attrs)["claims"]["sub"] == "alice"
    wrong_iss = sign(pem_private(keys["rsa"]), "RS256", {"sub": "a", "iss": "expected-issuer-2"}, kid="k1")
    with pytest.raises(NodeError):
        verify(wrong_iss["token"], jwks, **attrs)


# -- sign details --------------------------------------------------------------------


def test_sign_sets_iat_exp_static_claims_and_header():
    before = int(time.time())
    out = sign(SECRET, "HS256", {"sub": "r", "iss": "from-input"}, static_claims={"iss": "kong", "env": "dev"})
    after = int(time.time())
    claims = out["claims"]
    assert claims["sub"] == "r"
    assert claims["iss"] == "kong"  # static claims win over the claims input
    assert claims["env"] == "dev"
    assert before <= claims["iat"] <= after
    assert claims["exp"] == claims["iat"] + 300  # default expires_in
    assert claims["nbf"] == claims["iat"]  # Kong adds nbf; not_before defaults to 0
    assert out["header"] == {"alg": "HS256", "typ": "JWT"}
    _, payload, _ = jwtkit.decode(out["token"])
    assert payload == claims


def test_sign_expires_in_not_before_kid_typ():
    out = sign(SECRET, "HS512", {"sub": "s"}, expires_in=60, not_before=5, kid="key-1", typ="at+jwt")
    claims = out["claims"]
    assert claims["exp"] == claims["iat"] + 60
    assert claims["nbf"] == claims["iat"] + 5
    assert out["header"] == {"alg": "HS512", "typ": "at+jwt", "kid": "key-1"}
    header, _, _ = jwtkit.decode(out["token"])
    assert header == out["header"]
    # nbf is 5 s in the future: verify needs leeway for it
    with pytest.raises(NodeError, match="not valid yet"):
        verify(out["token"], SECRET)
    assert verify(out["token"], SECRET, leeway=10)["claims"]["sub"] == "s"


def test_sign_claims_exp_kept_and_no_claims_input():
    exp = int(time.time()) + 5000
    assert sign(SECRET, "HS256", {"exp": exp})["claims"]["exp"] == exp
    out = sign(SECRET, "HS256", None, static_claims={"iss": "kong"})
    assert out["claims"]["iss"] == "kong"
    assert verify(out["token"], SECRET)["claims"]["iss"] == "kong"


def test_sign_with_public_key_fails(keys):
    with pytest.raises(NodeError, match="needs a private key"):
        sign(pem_public(keys["rsa"]), "RS256", {})
    with pytest.raises(NodeError, match="cannot be used with an RSA key"):
        sign(pem_private(keys["rsa"]), "HS256", {})


def test_sign_rejects_non_mapping_claims_and_bad_key():
    with pytest.raises(NodeError, match="claims must be an object"):
        sign(SECRET, "HS256", ["not", "a", "map"])
    with pytest.raises(NodeError, match="JSON"):
        sign('{"not": "a jwk"}', "HS256", {})
    with pytest.raises(NodeError, match="PEM"):
        sign("-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----", "RS256", {})


# -- decode ----------------------------------------------------------------------


def test_decode_outputs_header_payload_signature(keys):
    token = sign(pem_private(keys["p256"]), "ES256", {"sub": "t", "n": [1, 2]}, kid="e1")["token"]
    out = make(JwtDecodeNode).run({"$self": token}, None)
    assert out["header"] == {"alg": "ES256", "typ": "JWT", "kid": "e1"}
    assert out["payload"]["sub"] == "t"
    assert out["payload"]["n"] == [1, 2]
    assert out["signature"] == token.split(".")[2]
    assert set(out) == {"header", "payload", "signature"}


def test_decode_does_not_verify():
    forged = hs256_token({"alg": "HS256"}, {"sub": "anyone"}, b"whatever")
    assert make(JwtDecodeNode).run({"$self": forged}, None)["payload"] == {"sub": "anyone"}


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "Bearer ",
        "not-a-jwt",
        "a.b",
        "a.b.c.d",
        "!!!.###.$$$",
        f"{segment({'alg': 'HS256'})}.{b64url(b'not json')}.",
        f"{segment({'alg': 'HS256'})}.{segment([1, 2])}.",
        f"{b64url(b'[1]')}.{segment({'sub': 'x'})}.",
    ],
)
def test_decode_malformed_token_errors(bad):
    with pytest.raises(NodeError, match="cannot decode JWT"):
        make(JwtDecodeNode).run({"$self": bad}, None)
    with pytest.raises(NodeError, match="JWT verification failed"):
        verify(bad, SECRET)


def test_decode_missing_or_non_string_input():
    with pytest.raises(NodeError, match="no token"):
        make(JwtDecodeNode).run({}, None)
    with pytest.raises(NodeError, match="must be a string"):
        make(JwtDecodeNode).run({"$self": ["a", "b"]}, None)


# -- missing inputs and config errors ------------------------------------------------


def test_missing_key_or_token_is_node_error():
    token = sign(SECRET, "HS256", {})["token"]
    with pytest.raises(NodeError, match="no key"):
        make(JwtVerifyNode).run({"token": token}, None)
    with pytest.raises(NodeError, match="no token"):
        make(JwtVerifyNode).run({"key": SECRET}, None)
    with pytest.raises(NodeError, match="no token"):
        make(JwtVerifyNode).run({"token": None, "key": SECRET}, None)
    with pytest.raises(NodeError, match="no signing key"):
        make(JwtSignNode, algorithm="HS256").run({"claims": {}}, None)
    with pytest.raises(NodeError, match="key must be a string"):
        verify(token, 12345)


@pytest.mark.parametrize(
    ("cls", "attrs", "field"),
    [
        (JwtSignNode, {"algorithm": "HS1"}, "algorithm"),
        (JwtSignNode, {}, "algorithm"),
        (JwtSignNode, {"algorithm": "HS256", "expires_in": 1.5}, "expires_in"),
        (JwtSignNode, {"algorithm": "HS256", "expires_in": "5m"}, "expires_in"),
        (JwtSignNode, {"algorithm": "HS256", "static_claims": ["iss"]}, "static_claims"),
        (JwtVerifyNode, {"allowed_algorithms": ["RS256", "none"]}, "allowed_algorithms"),
        (JwtVerifyNode, {"leeway": 2.5}, "leeway"),
        (JwtVerifyNode, {"issuers": "kong"}, "issuers"),
        (JwtVerifyNode, {"validate_exp": "yes"}, "validate_exp"),
    ],
)
def test_config_errors(cls, attrs, field):
    with pytest.raises(ConfigError) as info:
        make(cls, **attrs)
    assert info.value.field == field
    assert info.value.node == "X"


def test_null_attributes_mean_defaults():
    node = make(
        JwtVerifyNode,
        allowed_algorithms=None,
        issuers=None,
        leeway=None,
        validate_exp=None,
    )
    assert node.validate_exp is True
    assert node.leeway == 0
    signer = make(JwtSignNode, algorithm="HS256", expires_in=None, typ=None, kid=None)
    out = signer.run({"claims": {}, "key": SECRET}, None)
    assert out["claims"]["exp"] == out["claims"]["iat"] + 300
    assert out["header"]["typ"] == "JWT"


def test_other_key_encodings(keys):
    """PEM with escaped newlines (env vars), OpenSSH public keys, PKCS#1 RSA."""
    token = sign(pem_private(keys["rsa"]), "RS256", {"sub": "u"})["token"]
    escaped = pem_public(keys["rsa"]).replace("\n", "\\n")
    assert verify(token, escaped)["claims"]["sub"] == "u"
    ssh = (
        keys["ed25519"]
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    ed_token = sign(pem_private(keys["ed25519"]), "EdDSA", {"sub": "v"})["token"]
    assert verify(ed_token, ssh)["claims"]["sub"] == "v"
    pkcs1 = (
        keys["rsa"]
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        .decode()
    )
    assert verify(sign(pkcs1, "PS384", {"sub": "w"})["token"], pkcs1)["claims"]["sub"] == "w"
    # an HS256 token forged with the OpenSSH text as secret is refused too
    forged = hs256_token({"alg": "HS256"}, {"sub": "admin"}, ssh.encode())
    with pytest.raises(NodeError, match="cannot be verified"):
        verify(forged, ssh)
