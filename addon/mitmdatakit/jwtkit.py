"""JWT decode / sign / verify as pure functions, on top of PyJWT.

The node modules (`nodes/jwt_*.py`) are thin wrappers around this module; all
the security-relevant decisions live here:

- **Keys** are parsed into typed `Key`s before any token is looked at: an HMAC
  secret, a PEM (public key, private key or certificate; RSA, EC, Ed25519 or
  Ed448), an OpenSSH key, a JWK or a JWKS (JSON text or an already decoded
  mapping). A string that looks like an asymmetric key or like JSON is never
  used as an HMAC secret.
- **The algorithm is bound to the key type**: a token's `alg` is only ever
  verified with a key whose type supports it (HS* with secrets and `oct` JWKs,
  RS*/PS* with RSA keys, ES256/384/512 with P-256/384/521 keys, EdDSA with
  OKP keys). `alg: none` and unknown algorithms are always rejected; so is
  any `crit` header PyJWT does not understand. Embedded keys (`jwk`, `jku`,
  `x5u`, `x5c` headers) are never used.
- Claims are checked here (not by PyJWT) so the semantics match Datakit's
  attributes exactly: empty `issuers`/`audiences` mean "any".

Every failure raises `JWTError` with a message fit for a node error.
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.exceptions import InvalidSignatureError, PyJWTError
from jwt.warnings import InsecureKeyLengthWarning

from .codecs import parse_json
from .errors import JWTError

__all__ = [
    "ALGORITHMS",
    "JWTError",
    "Key",
    "KeySet",
    "decode",
    "load_keys",
    "sign",
    "strip_bearer",
    "verify",
]

HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC_ALGORITHMS = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
OKP_ALGORITHMS = ("EdDSA",)
ALGORITHMS: tuple[str, ...] = (
    *HMAC_ALGORITHMS,
    *RSA_ALGORITHMS,
    *EC_ALGORITHMS,
    *OKP_ALGORITHMS,
)
"""Every algorithm Datakit knows (Kong's list), in a stable order."""

_CURVE_ALGORITHM = {curve: alg for alg, curve in EC_ALGORITHMS.items()}

_KIND_ALGORITHMS: dict[str, frozenset[str]] = {
    "hmac": frozenset(HMAC_ALGORITHMS),
    "rsa": frozenset(RSA_ALGORITHMS),
    "okp": frozenset(OKP_ALGORITHMS),
}

_KIND_LABEL = {
    "hmac": "an HMAC secret",
    "rsa": "an RSA key",
    "ec": "an EC key",
    "okp": "an EdDSA (OKP) key",
}

MAX_KEYS_WITHOUT_KID = 10
"""A token without `kid` is tried against at most this many JWKS keys that
fit its algorithm (in JWKS order): every try is a signature check, so a
large JWKS would otherwise turn one request into a thousand of them."""

# exp/nbf are seconds since 1970 (RFC 7519 NumericDate); past the year 9999
# they are nonsense, and large enough ones overflow float arithmetic
MAX_NUMERIC_DATE = 253_402_300_799

_BEARER = re.compile(r"^\s*bearer\s+", re.IGNORECASE)

_PRIVATE_TYPES = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)


# -- keys --------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """One usable key, its type known before any token is looked at."""

    kind: str  # "hmac" | "rsa" | "ec" | "okp"
    material: Any  # bytes (hmac) or a `cryptography` key object
    kid: str | None = None
    alg: str | None = None  # a JWK's `alg`: the only algorithm it may be used with
    source: str = "secret"  # "secret" | "pem" | "ssh" | "jwk"

    @property
    def private(self) -> bool:
        return self.kind == "hmac" or isinstance(self.material, _PRIVATE_TYPES)

    @property
    def algorithms(self) -> frozenset[str]:
        """The algorithms this key may be used with (the key-type binding)."""
        if self.kind == "ec":
            alg = _CURVE_ALGORITHM.get(self.material.curve.name)
            algs = frozenset([alg]) if alg else frozenset()
        else:
            algs = _KIND_ALGORITHMS.get(self.kind, frozenset())
        if self.alg is not None:
            algs = algs & {self.alg}
        return algs

    def verification_material(self) -> Any:
        """What PyJWT verifies with: the secret, or the public half."""
        if self.kind != "hmac" and isinstance(self.material, _PRIVATE_TYPES):
            return self.material.public_key()
        return self.material

    def describe(self) -> str:
        label = _KIND_LABEL.get(self.kind, self.kind)
        if self.kind == "ec":
            label = f"an EC key on curve {self.material.curve.name}"
        if self.kid is not None:
            label += f" (kid {self.kid!r})"
        return label

    def __repr__(self) -> str:  # never show key material
        return f"<Key {self.kind} source={self.source} kid={self.kid!r} alg={self.alg!r}>"


@dataclass(frozen=True)
class KeySet:
    """The keys a `key` input yields. `is_set`: it was a JWKS."""

    keys: tuple[Key, ...]
    is_set: bool = False


def load_keys(key: Any) -> KeySet:
    """Parse a `key` input: HMAC secret, PEM, OpenSSH key, JWK or JWKS.

    Strings and mappings are accepted; a mapping is a decoded JWK (`kty`) or
    JWKS (`keys`). Parsed keys are cached, as the same key (usually a vault
    secret) is used on every request.
    """
    if key is None:
        raise JWTError("no key given")
    if isinstance(key, Mapping):
        try:
            text = json.dumps(key, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise JWTError(f"key mapping is not valid JSON: {exc}") from None
        return _load_json_key(text)
    if isinstance(key, (bytes, bytearray)):
        try:
            key = bytes(key).decode("utf-8")
        except UnicodeDecodeError:
            raise JWTError("key bytes are not UTF-8 text") from None
    if not isinstance(key, str):
        raise JWTError(f"key must be a string or a JWK/JWKS object, not {_type_name(key)}")
    return _load_string_key(key)


@functools.lru_cache(maxsize=128)
def _load_string_key(text: str) -> KeySet:
    stripped = text.strip()
    if not stripped:
        raise JWTError("key is empty")
    if "-----BEGIN" in stripped:
        return KeySet((_load_pem(stripped),))
    if stripped.startswith(("ssh-rsa ", "ssh-ed25519 ", "ssh-ed448 ", "ecdsa-sha2-")):
        try:
            material = serialization.load_ssh_public_key(stripped.encode())
        except (ValueError, TypeError, NotImplementedError) as exc:
            raise JWTError(f"invalid OpenSSH public key: {exc}") from None
        return KeySet((_asymmetric_key(material, source="ssh"),))
    if stripped.startswith(("{", "[")):
        # Never fall back to using JSON text as an HMAC secret: a public JWK
        # used as a secret would let anyone who knows it forge HS* tokens.
        return _load_json_key(stripped)
    return KeySet((Key("hmac", text.encode("utf-8"), source="secret"),))


@functools.lru_cache(maxsize=128)
def _load_json_key(text: str) -> KeySet:
    try:
        data = parse_json(text)
    except ValueError as exc:  # JSONTooDeep included
        raise JWTError(f"key looks like JSON but does not parse: {exc}") from None
    if not isinstance(data, dict):
        raise JWTError("JSON key must be a JWK or JWKS object")
    if "keys" in data:
        members = data["keys"]
        if not isinstance(members, list) or not members:
            raise JWTError("JWKS 'keys' must be a non-empty list")
        keys: list[Key] = []
        problems: list[str] = []
        for i, member in enumerate(members):
            try:
                keys.append(_load_jwk(member))
            except JWTError as exc:  # real JWKS carry keys we cannot use
                problems.append(f"#{i}: {exc}")
        if not keys:
            raise JWTError("JWKS contains no usable signing key (" + "; ".join(problems) + ")")
        return KeySet(tuple(keys), is_set=True)
    if "kty" in data:
        return KeySet((_load_jwk(data),))
    raise JWTError("JSON key is neither a JWK ('kty') nor a JWKS ('keys')")


_PYJWK_ALG = {"RSA": "RS256", "oct": "HS256", "OKP": "EdDSA"}
_PYJWK_EC_ALG = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}


def _load_jwk(data: Any) -> Key:
    if not isinstance(data, dict):
        raise JWTError("JWK must be an object")
    kty = data.get("kty")
    if kty == "EC":
        crv = data.get("crv")
        parse_alg = _PYJWK_EC_ALG.get(crv) if isinstance(crv, str) else None
        if parse_alg is None:
            raise JWTError(f"unsupported EC curve {data.get('crv')!r}")
    else:
        parse_alg = _PYJWK_ALG.get(kty) if isinstance(kty, str) else None
        if parse_alg is None:
            raise JWTError(f"unsupported JWK key type {kty!r}")
    kid = data.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise JWTError("JWK 'kid' must be a string")
    if data.get("use") not in (None, "sig"):
        raise JWTError(f"JWK is for use {data.get('use')!r}, not signatures")
    alg = data.get("alg")
    if alg is not None and alg not in ALGORITHMS:
        raise JWTError(f"JWK algorithm {alg!r} is not a supported signing algorithm")
    try:
        parsed = jwt.PyJWK(data, algorithm=parse_alg)
    except (PyJWTError, ValueError, TypeError, KeyError) as exc:
        raise JWTError(f"invalid JWK: {exc}") from None
    if kty == "oct":
        material = parsed.key
        if not isinstance(material, bytes) or not material:
            raise JWTError("JWK 'oct' key has an empty secret")
        key = Key("hmac", material, kid=kid, alg=alg, source="jwk")
    else:
        key = _asymmetric_key(parsed.key, source="jwk", kid=kid, alg=alg)
    if not key.algorithms:
        raise JWTError(f"JWK algorithm {alg!r} does not fit its key type {kty!r}")
    return key


def _load_pem(text: str) -> Key:
    if "\n" not in text and "\\n" in text:
        # a PEM pasted into an environment variable with escaped newlines
        text = text.replace("\\n", "\n")
    data = text.encode("utf-8")
    material: Any = None
    try:
        if "OPENSSH PRIVATE KEY" in text:
            material = serialization.load_ssh_private_key(data, password=None)
        elif "CERTIFICATE" in text:
            material = x509.load_pem_x509_certificate(data).public_key()
        elif "PRIVATE KEY" in text:
            material = serialization.load_pem_private_key(data, password=None)
        else:
            material = serialization.load_pem_public_key(data)
    except TypeError as exc:  # encrypted private keys
        raise JWTError(f"unsupported PEM key: {exc}") from None
    except (ValueError, NotImplementedError) as exc:
        raise JWTError(f"invalid PEM key: {exc}") from None
    return _asymmetric_key(material, source="pem")


def _asymmetric_key(material: Any, *, source: str, kid: str | None = None, alg: str | None = None) -> Key:
    if isinstance(material, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        kind = "rsa"
    elif isinstance(material, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        kind = "ec"
        if material.curve.name not in _CURVE_ALGORITHM:
            raise JWTError(f"unsupported EC curve {material.curve.name!r}")
    elif isinstance(
        material,
        (
            ed25519.Ed25519PrivateKey,
            ed25519.Ed25519PublicKey,
            ed448.Ed448PrivateKey,
            ed448.Ed448PublicKey,
        ),
    ):
        kind = "okp"
    else:
        raise JWTError(f"unsupported key type {type(material).__name__}")
    return Key(kind, material, kid=kid, alg=alg, source=source)


# -- tokens ------------------------------------------------------------------


def strip_bearer(token: Any) -> str:
    """The compact token, without a case-insensitive `Bearer ` prefix."""
    if token is None:
        raise JWTError("no token given")
    if isinstance(token, (bytes, bytearray)):
        token = bytes(token).decode("utf-8", "replace")
    if not isinstance(token, str):
        raise JWTError(f"token must be a string, not {_type_name(token)}")
    compact = _BEARER.sub("", token, count=1).strip()
    if not compact:
        raise JWTError("token is empty")
    return compact


def _parse(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Header, payload and signature segment of a compact JWS, unverified."""
    if token.count(".") != 2:
        raise JWTError("malformed token: a JWT has three dot-separated parts")
    try:
        parts = jwt.api_jws.PyJWS().decode_complete(token, options={"verify_signature": False})
    except PyJWTError as exc:
        raise JWTError(f"malformed token: {exc}") from None
    header = parts["header"]
    try:
        payload = parse_json(parts["payload"])  # standard JSON: no NaN, no 1e400 (inf)
    except ValueError as exc:
        raise JWTError(f"malformed token: payload is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise JWTError("malformed token: payload is not a JSON object")
    return header, payload, token.rsplit(".", 1)[1]


def decode(token: Any) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Decode without verifying: (header, payload, signature as in the token)."""
    return _parse(strip_bearer(token))


def _checked_alg(alg: Any) -> str:
    if not isinstance(alg, str) or not alg:
        raise JWTError("token header has no 'alg'")
    if alg.lower() == "none":
        raise JWTError("unsigned tokens (alg 'none') are not accepted")
    if alg not in ALGORITHMS:
        raise JWTError(f"unsupported algorithm {alg!r}")
    return alg


class ClaimRules(TypedDict, total=False):
    """What `check_claims` checks (`verify` passes them on): issuers and
    audiences allowed (empty: any), claims required, leeway in seconds,
    whether exp and nbf are checked (default: both)."""

    issuers: Iterable[str]
    audiences: Iterable[str]
    required_claims: Iterable[str]
    leeway: float
    validate_exp: bool
    validate_nbf: bool


def verify(
    token: Any,
    key: Any,
    *,
    allowed_algorithms: Iterable[str] = (),
    now: float | None = None,
    **rules: Unpack[ClaimRules],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify signature and claims; return (header, claims)."""
    compact = strip_bearer(token)
    header, payload, _ = _parse(compact)
    alg = _checked_alg(header.get("alg"))
    allowed = frozenset(allowed_algorithms)
    if allowed and alg not in allowed:
        raise JWTError(f"algorithm {alg!r} is not allowed (allowed: {', '.join(sorted(allowed))})")

    keyset = load_keys(key)
    candidates = _candidates(keyset, header)
    usable = [k for k in candidates if alg in k.algorithms]
    if not usable:
        kinds = ", ".join(sorted({k.describe() for k in candidates}))
        raise JWTError(f"algorithm {alg!r} cannot be verified with {kinds}")
    skipped = 0
    if len(usable) > MAX_KEYS_WITHOUT_KID:  # only a JWKS and a token without kid get here
        skipped = len(usable) - MAX_KEYS_WITHOUT_KID
        usable = usable[:MAX_KEYS_WITHOUT_KID]

    jws = jwt.api_jws.PyJWS(algorithms=[alg])
    for k in usable:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", InsecureKeyLengthWarning)
                jws.decode_complete(compact, key=k.verification_material(), algorithms=[alg])
        except InvalidSignatureError:
            continue
        except PyJWTError as exc:
            if len(usable) == 1:
                raise JWTError(f"signature verification failed: {exc}") from None
            continue
        break
    else:
        if skipped:
            raise JWTError(
                f"signature verification failed with the first {MAX_KEYS_WITHOUT_KID} of {MAX_KEYS_WITHOUT_KID + skipped} "
                f"JWKS keys for {alg} (a token without 'kid' is tried against at most {MAX_KEYS_WITHOUT_KID}; "
                "give the token a 'kid')"
            )
        raise JWTError("signature verification failed")

    check_claims(payload, now=now, **rules)
    return header, payload


def _candidates(keyset: KeySet, header: Mapping[str, Any]) -> list[Key]:
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise JWTError("token header 'kid' must be a string")
    if keyset.is_set:
        if kid is None:
            return list(keyset.keys)
        matching = [k for k in keyset.keys if k.kid == kid]
        if not matching:
            raise JWTError(f"no key with kid {kid!r} in the JWKS")
        return matching
    (only,) = keyset.keys
    if kid is not None and only.kid is not None and only.kid != kid:
        raise JWTError(f"token kid {kid!r} does not match the JWK's kid {only.kid!r}")
    return [only]


def _numeric_date(claims: Mapping[str, Any], name: str) -> float:
    """A time claim as float seconds; anything else is a JWTError (never an
    OverflowError from a huge int)."""
    value = claims[name]
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise JWTError(f"claim {name!r} must be a number")
    if not (isinstance(value, int) or math.isfinite(value)) or abs(value) > MAX_NUMERIC_DATE:
        raise JWTError(f"claim {name!r} is out of range (seconds since 1970, at most {MAX_NUMERIC_DATE})")
    return float(value)


def check_claims(claims: Mapping[str, Any], *, now: float | None = None, **rules: Unpack[ClaimRules]) -> None:
    """Datakit's claim checks; raises `JWTError` on the first failure."""
    now = time.time() if now is None else now
    issuers = rules.get("issuers", ())
    audiences = rules.get("audiences", ())
    required_claims = rules.get("required_claims", ())
    leeway = rules.get("leeway", 0)
    validate_exp = rules.get("validate_exp", True)
    validate_nbf = rules.get("validate_nbf", True)
    # a leeway past every representable date changes nothing, and keeps a
    # huge configured one from overflowing float arithmetic
    leeway = min(leeway, 2 * MAX_NUMERIC_DATE)
    for name in required_claims:
        if claims.get(name) is None:
            raise JWTError(f"missing required claim {name!r}")
    if validate_exp and "exp" in claims:
        exp = _numeric_date(claims, "exp")
        if now >= exp + leeway:
            raise JWTError("token has expired")
    if validate_nbf and "nbf" in claims:
        nbf = _numeric_date(claims, "nbf")
        if now + leeway < nbf:
            raise JWTError("token is not valid yet (nbf)")
    issuers = list(issuers)
    if issuers:
        iss = claims.get("iss")
        if iss is None:
            raise JWTError("token has no 'iss' claim")
        if not isinstance(iss, str) or iss not in issuers:
            raise JWTError(f"issuer {iss!r} is not allowed")
    audiences = list(audiences)
    if audiences:
        aud = claims.get("aud")
        if aud is None:
            raise JWTError("token has no 'aud' claim")
        token_auds = [aud] if isinstance(aud, str) else aud
        if not isinstance(token_auds, list) or not all(isinstance(a, str) for a in token_auds):
            raise JWTError("claim 'aud' must be a string or a list of strings")
        if not set(token_auds) & set(audiences):
            raise JWTError(f"audience {aud!r} is not allowed")


def sign(
    claims: Mapping[str, Any] | None,
    key: Any,
    algorithm: str,
    *,
    static_claims: Mapping[str, Any] | None = None,
    expires_in: int | None = 300,
    not_before: int | None = 0,
    kid: str | None = None,
    typ: str | None = "JWT",
    now: float | None = None,
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Build and sign a JWT; return (token, claims, header).

    Claims are the `claims` input overlaid with `static_claims` (static wins);
    `iat` is always now; `exp` is now + `expires_in` unless the claims carry
    one (`expires_in` 0 adds none); `nbf` is now + `not_before` (default 0:
    now) unless the claims carry one (Kong: "Automatically adds `iat`, `exp`,
    and `nbf` time claims").
    """
    alg = _checked_alg(algorithm)
    if claims is not None and not isinstance(claims, Mapping):
        raise JWTError(f"claims must be an object, not {_type_name(claims)}")

    keyset = load_keys(key)
    candidates = list(keyset.keys)
    if keyset.is_set and kid is not None:
        candidates = [k for k in candidates if k.kid == kid]
        if not candidates:
            raise JWTError(f"no key with kid {kid!r} in the JWKS")
    fitting = [k for k in candidates if alg in k.algorithms]
    if not fitting:
        kinds = ", ".join(sorted({k.describe() for k in candidates}))
        raise JWTError(f"algorithm {alg!r} cannot be used with {kinds}")
    private = [k for k in fitting if k.private]
    if not private:
        raise JWTError(f"signing with {alg} needs a private key, got a public key")
    signing_key = private[0]

    issued_at = int(time.time() if now is None else now)
    payload: dict[str, Any] = dict(claims or {})
    payload.update(static_claims or {})
    payload["iat"] = issued_at
    if "exp" not in payload and expires_in:
        payload["exp"] = issued_at + int(expires_in)
    if "nbf" not in payload:
        payload["nbf"] = issued_at + int(not_before or 0)
    for name in ("exp", "nbf"):
        if name in payload:
            try:
                _numeric_date(payload, name)
            except JWTError as exc:
                raise JWTError(f"cannot sign token: {exc}") from None

    headers: dict[str, Any] = {"typ": typ or None}
    header_kid = kid if kid is not None else signing_key.kid
    if header_kid is not None:
        headers["kid"] = header_kid
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InsecureKeyLengthWarning)
            token = jwt.encode(payload, signing_key.material, algorithm=alg, headers=headers, json_encoder=_StandardJSON)
    except (PyJWTError, TypeError, ValueError) as exc:
        raise JWTError(f"cannot sign token: {exc}") from None
    header = jwt.get_unverified_header(token)
    return token, payload, header


class _StandardJSON(json.JSONEncoder):
    """PyJWT's encoder, refusing NaN and Infinity (not JSON; no verifier
    would accept the token)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["allow_nan"] = False
        super().__init__(**kwargs)


def _type_name(value: Any) -> str:
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "a list"
    return type(value).__name__


def unknown_algorithms(names: Iterable[Any]) -> list[Any]:
    """The names among `names` that are not supported algorithms."""
    return [n for n in names if n not in ALGORITHMS]
