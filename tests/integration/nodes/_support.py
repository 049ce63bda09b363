"""What the node-level integration tests share: the secrets and keys they
use, and one workflow per scenario, each under its own path prefix
(`match: {paths: [/PREFIX/]}`), served together by one mitmdump (see
conftest.py in this directory). Requests go to the mock API under that prefix
(the workflows that do not exit proxy to it).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import jwt as pyjwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.harness import Mitmdump

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


def start_proxy(config: Path, confdir: Path, **kw: Any) -> Mitmdump:
    m = Mitmdump(config, confdir=confdir, env=ENV, start=False, **kw)
    m.start()
    return m


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {n["name"]: n["status"] for n in report["nodes"]}


def actions(report: dict[str, Any], node: str) -> list[str]:
    return [e["action"] for e in report["events"] if e["name"] == node]
