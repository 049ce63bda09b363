"""Stand-ins for what Kong's how-to guides rely on around Datakit and that
cannot run here, as a mitmproxy script loaded before the Datakit addon.

- `OidcStandIn`: the OpenID Connect plugin's bearer flow, configured by the
  `openid-connect` plugin entity of the decK file named by
  `OIDC_STANDIN_DECK`: `auth_methods: [bearer]`, the token's signature
  checked against `jwks_endpoint`, `iss` against `issuer`, and the
  `credential_claim` claim made the credential. Here the credential is
  mitmproxy's proxy user (`flow.metadata["proxyauth"]`), which is what
  `kong.client.credential` reads (docs/coming-from-kong.md). Anything else
  gets the plugin's 401.
- `TestHosts`: name resolution for the third-party hosts a page's config
  names unchanged (`httpbin.konghq.com:80`): `DATAKIT_TEST_HOSTS` is
  `name:port=127.0.0.1:port,...`, applied when mitmproxy connects upstream.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jwt
import yaml
from mitmproxy import http


def _oidc_config(path: str) -> dict[str, Any]:
    doc = yaml.safe_load(Path(path).read_text())
    plugins = [*doc.get("plugins", [])]
    for service in doc.get("services", []):
        plugins += service.get("plugins", [])
    (config,) = [p["config"] for p in plugins if p["name"] == "openid-connect"]
    return dict(config)


class OidcStandIn:
    def __init__(self) -> None:
        path = os.environ.get("OIDC_STANDIN_DECK")
        self.config = _oidc_config(path) if path else None
        self.keys = jwt.PyJWKClient(self.config["jwks_endpoint"], cache_keys=False) if self.config else None

    def request(self, flow: http.HTTPFlow) -> None:
        if self.config is None or self.keys is None or flow.response is not None:
            return
        assert self.config["auth_methods"] == ["bearer"]
        scheme, _, token = flow.request.headers.get("authorization", "").partition(" ")
        try:
            if scheme.lower() != "bearer" or not token:
                raise jwt.InvalidTokenError("no bearer token")
            key = self.keys.get_signing_key_from_jwt(token)
            claims = jwt.decode(token, key.key, algorithms=["RS256"], issuer=self.config["issuer"],
                                options={"verify_aud": False, "require": ["exp", "iss"]})
            (claim,) = self.config["credential_claim"]
            flow.metadata["proxyauth"] = (str(claims[claim]), "")
        except (jwt.PyJWTError, KeyError) as e:
            flow.response = http.Response.make(401, json.dumps({"message": "Unauthorized"}).encode(),
                                               {"Content-Type": "application/json", "X-Standin-Reason": str(e)[:80]})


class TestHosts:
    def __init__(self) -> None:
        self.hosts: dict[tuple[str, int], tuple[str, int]] = {}
        for item in filter(None, os.environ.get("DATAKIT_TEST_HOSTS", "").split(",")):
            name, _, address = item.partition("=")
            host, _, port = name.rpartition(":")
            to_host, _, to_port = address.rpartition(":")
            self.hosts[(host, int(port))] = (to_host, int(to_port))

    def server_connect(self, data: Any) -> None:
        address = self.hosts.get(tuple(data.server.address))
        if address is not None:
            data.server.address = address


addons = [OidcStandIn(), TestHosts()]
