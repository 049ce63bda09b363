"""The Keycloak stand-in of the two OIDC + Datakit routing how-tos: a mock
identity provider answering the client-credentials grant the guides use
(`POST /realms/master/protocol/openid-connect/token` with `client_id`,
`client_secret`, `grant_type`) with an RS256 access token carrying
`client_id`, and its JWKS at `.../certs`. The OpenID Connect plugin is
`_standins.OidcStandIn`, configured by the decK file's `openid-connect`
entity; the Datakit plugin runs as the page wrote it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.harness import DEFAULT_SCRIPT, Mitmdump, MockServer, RecordedRequest, Reply

HERE = Path(__file__).parent
STANDINS = HERE / "_standins.py"
REALM = "/realms/master/protocol/openid-connect"
# the guide's DECK_ISSUER: Keycloak stamps `localhost:8080` whatever URL fetched the token
ISSUER = "http://localhost:8080/realms/master"
# the guide's Keycloak clients: `kong` (the plugin's own, also the fallback caller) and the two callers
CLIENTS = {"kong": "kong-secret", "caller-a": "a-secret", "caller-b": "b-secret"}
TRACE_TRUE = {"X-Datakit-Debug-Trace": "true"}  # the guides send `true`


class Keycloak(MockServer):
    def __init__(self) -> None:
        super().__init__()
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "kc-" + uuid.uuid4().hex[:8]
        jwk = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        self.route("POST", f"{REALM}/token", self._token)
        self.route("GET", f"{REALM}/certs", Reply(json={"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}))

    def _token(self, req: RecordedRequest) -> Reply:
        form = {k: v[0] for k, v in parse_qs(req.body.decode()).items()}
        client_id = form.get("client_id", "")
        if form.get("grant_type") != "client_credentials" or CLIENTS.get(client_id) != form.get("client_secret"):
            return Reply(status=401, json={"error": "unauthorized_client"})
        return Reply(json={"access_token": self.issue({"client_id": client_id, "azp": client_id}),
                           "token_type": "Bearer", "expires_in": 60})

    def issue(self, claims: dict[str, Any], key: Any = None, **header: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "sub": str(uuid.uuid4()), "iat": now, "exp": now + 60, "typ": "Bearer", **claims}
        return jwt.encode(body, key or self.private_key, algorithm="RS256", headers={"kid": self.kid, **header})

    @property
    def jwks_endpoint(self) -> str:
        return f"{self.url}{REALM}/certs"


def fetch_token(keycloak: Keycloak, client_id: str) -> str:
    """The guides' `curl -X POST .../token -d client_id=... -d client_secret=... -d grant_type=client_credentials`."""
    r = httpx.post(f"{keycloak.url}{REALM}/token", data={
        "client_id": client_id, "client_secret": CLIENTS[client_id], "grant_type": "client_credentials"})
    r.raise_for_status()
    return str(r.json()["access_token"])


def oidc_plugin(keycloak: Keycloak) -> str:
    """The guides' openid-connect entity, with decK's variables filled in."""
    return f"""\
  - name: openid-connect
    service: example-service
    config:
      issuer: {ISSUER}
      using_pseudo_issuer: true
      jwks_endpoint: {keycloak.jwks_endpoint}
      client_id:
        - kong
      client_secret:
        - {CLIENTS["kong"]}
      client_auth:
        - client_secret_post
      auth_methods:
        - bearer
      credential_claim:
        - client_id
      consumer_optional: true
      cache_tokens_salt: 0123456789abcdef
"""


@pytest.fixture(scope="module")
def keycloak() -> Iterator[Keycloak]:
    with Keycloak() as server:
        yield server


def start(deck: Path, confdir: Path, hosts: dict[str, MockServer], **options: Any) -> Iterator[Mitmdump]:
    """A mitmdump running `deck` with the OIDC stand-in before Datakit and
    the page's host names resolved to the mocks."""
    env = {"OIDC_STANDIN_DECK": str(deck),
           "DATAKIT_TEST_HOSTS": ",".join(f"{name}=127.0.0.1:{srv.port}" for name, srv in hosts.items())}
    mitm = Mitmdump(deck, script=[STANDINS, DEFAULT_SCRIPT], confdir=confdir, env=env,
                    options={"ssl_insecure": True, **options}, quiet=True)
    try:
        yield mitm
    finally:
        code = mitm.stop()
        print(f"\n----- {mitm!r} exit={code} log tail -----\n{mitm.log_tail(60)}")


def completes(report: dict[str, Any]) -> dict[str, Any]:
    """Each node's `complete` event's output value (the guides' `value.value`)."""
    out: dict[str, Any] = {}
    for event in report["events"]:
        if event["action"] == "complete":
            (value,) = [v for v in event.get("values", []) if v.get("key") == "$self"]
            out[event["name"]] = value["value"]
    return out
