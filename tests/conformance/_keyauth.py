"""A stand-in for Kong's Key Auth plugin, as a mitmproxy script loaded
before the Datakit addon (Kong runs key-auth, priority 1250, before
Datakit's access handler unless `ordering` says otherwise).

Configured by the `key-auth` plugin entities of the decK file named by
`KEYAUTH_STANDIN_DECK` (rendered with decK's `${{ env "DECK_..." }}`
substitution first, as decK would): the key is read from the headers named
by `key_names` (default `apikey`) and looked up in the consumers'
`keyauth_credentials`; no key gives Kong's `401 {"message":"No API key found
in request"}`, an unknown key `401 {"message":"Unauthorized"}`;
`hide_credentials` removes the key header. The consumer becomes mitmproxy's
proxy user (`flow.metadata["proxyauth"]`), which `kong.client.consumer`
reads here (docs/coming-from-kong.md).

Simplification: the plugin applies to requests whose path starts with one
of the `paths` of the routes it is attached to (directly, or through their
service): enough for the pages' prefix routes, not Kong's whole router.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from mitmproxy import http

from mitmdatakit.kong.deck_env import render


def _scopes(doc: dict[str, Any]) -> list[tuple[list[str], dict[str, Any]]]:
    """(route path prefixes, plugin config) of every key-auth plugin."""
    found: list[tuple[list[str], dict[str, Any]]] = []
    for service in doc.get("services", []):
        service_paths = [p for r in service.get("routes", []) for p in r.get("paths", [])]
        for plugin in service.get("plugins", []):
            if plugin["name"] == "key-auth":
                found.append((service_paths, plugin.get("config", {})))
        for route in service.get("routes", []):
            for plugin in route.get("plugins", []):
                if plugin["name"] == "key-auth":
                    found.append((list(route.get("paths", [])), plugin.get("config", {})))
    assert not [p for p in doc.get("plugins", []) if p["name"] == "key-auth"], "top-level key-auth: not modelled"
    return found


class KeyAuthStandIn:
    def __init__(self) -> None:
        path = os.environ.get("KEYAUTH_STANDIN_DECK")
        doc = yaml.safe_load(render(Path(path).read_text(), path)) if path else {}
        self.scopes = _scopes(doc)
        self.keys = {cred["key"]: consumer["username"]
                     for consumer in doc.get("consumers", []) for cred in consumer.get("keyauth_credentials", [])}

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        # the client's path: loaded after Datakit, `request` sees the service's
        flow.metadata["keyauth_standin_path"] = flow.request.path

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return
        path = flow.metadata.get("keyauth_standin_path", flow.request.path)
        for paths, config in self.scopes:
            if any(path.startswith(p) for p in paths):
                self._authenticate(flow, config)
                return

    def _authenticate(self, flow: http.HTTPFlow, config: dict[str, Any]) -> None:
        names = config.get("key_names") or ["apikey"]
        found = [(name, flow.request.headers[name]) for name in names if name in flow.request.headers]
        if not found:
            self._deny(flow, "No API key found in request")
            return
        name, key = found[0]
        if key not in self.keys:
            self._deny(flow, "Unauthorized")
            return
        flow.metadata["proxyauth"] = (self.keys[key], "")
        if config.get("hide_credentials"):
            del flow.request.headers[name]

    @staticmethod
    def _deny(flow: http.HTTPFlow, message: str) -> None:
        flow.response = http.Response.make(401, json.dumps({"message": message}).encode(),
                                           {"Content-Type": "application/json", "X-Standin": "key-auth"})


addons = [KeyAuthStandIn()]
