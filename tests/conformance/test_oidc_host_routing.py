"""Kong conformance of app/_how-tos/gateway/configure-oidc-datakit-host-routing.md
("Dynamically set host based on the authenticated caller with Datakit"),
through a real mitmdump running the guide's decK entities: the prerequisite
`example-service` (`http://httpbin.konghq.com/anything`) and `example-route`
(`/anything`, app/_data/entity_examples/gateway/), the openid-connect plugin
and the Datakit plugin exactly as the page writes them.

Keycloak is a mock issuing the same tokens (`_oidc`); the OpenID Connect
plugin is a stand-in that checks them the way the page configures it
(`_standins.OidcStandIn`). `httpbin.konghq.com:80` (plain) and
`httpbun.com:443` (TLS) resolve to local echo servers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conformance._oidc import TRACE_TRUE, Keycloak, completes, fetch_token, keycloak, oidc_plugin, start
from tests.harness import Mitmdump, MockServer, RecordedRequest, Reply

PAGE = "app/_how-tos/gateway/configure-oidc-datakit-host-routing.md"
__all__ = ["keycloak"]  # the fixture, imported for this module

DATAKIT = """\
  - name: datakit
    service: example-service
    config:
      nodes:
        - name: GET_CREDENTIAL
          type: property
          property: kong.client.credential
        - name: PICK_TARGET
          type: jq
          input: GET_CREDENTIAL
          jq: |
            {
              "caller-a": {"target": "httpbin.konghq.com:80", "scheme": "http"},
              "caller-b": {"target": "httpbun.com:443", "scheme": "https"}
            }[.id] // {"target": "httpbin.konghq.com:80", "scheme": "http"}
        - name: EXTRACT_TARGET
          type: jq
          input: PICK_TARGET
          jq: .target
        - name: SET_TARGET
          type: property
          property: kong.service.target
          input: EXTRACT_TARGET
        - name: EXTRACT_SCHEME
          type: jq
          input: PICK_TARGET
          jq: .scheme
        - name: SET_SCHEME
          type: property
          property: kong.service.request.scheme
          input: EXTRACT_SCHEME
      debug: true
"""

PREREQS = """\
_format_version: "3.0"
services:
  - name: example-service
    url: http://httpbin.konghq.com/anything
routes:
  - name: example-route
    paths:
      - /anything
    service:
      name: example-service
    protocols:
      - http
      - https
plugins:
"""


def echo(name: str):
    def answer(req: RecordedRequest) -> Reply:
        return Reply(json={"backend": name, "host": req.header("host"), "path": req.path,
                           "authorization": req.header("authorization")})
    return answer


@pytest.fixture(scope="module")
def backends() -> Iterator[dict[str, MockServer]]:
    with MockServer() as httpbin, MockServer(tls=True) as httpbun:
        httpbin.route("*", "/*", echo("httpbin"))
        httpbun.route("*", "/*", echo("httpbun"))
        yield {"httpbin.konghq.com:80": httpbin, "httpbun.com:443": httpbun}


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, mitm_confdir, keycloak: Keycloak, backends) -> Iterator[Mitmdump]:
    deck = tmp_path_factory.mktemp("oidc-host-routing") / "kong.yaml"
    deck.write_text(PREREQS + oidc_plugin(keycloak) + DATAKIT)
    yield from start(deck, mitm_confdir, backends)


def send(proxy: Mitmdump, token: str | None, **headers: str) -> httpx.Response:
    """The guide's `curl -si http://localhost:8000/anything -H "Authorization: Bearer $TOKEN"`."""
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    with proxy.client() as c:
        return c.get("http://localhost:8000/anything", headers=headers)


@pytest.mark.parametrize("caller,backend", [("caller-a", "httpbin"), ("caller-b", "httpbun"), ("kong", "httpbin")])
def test_each_caller_reaches_its_backend(proxy, keycloak, caller, backend):
    """app/_how-tos/gateway/configure-oidc-datakit-host-routing.md "Validate the routing": caller-a's response comes from
    httpbin.konghq.com, caller-b's from httpbun.com; `kong` is not in the
    map and falls back to httpbin.konghq.com."""
    r = send(proxy, fetch_token(keycloak, caller))
    assert r.status_code == 200
    body = r.json()
    assert body["backend"] == backend
    assert body["path"] == "/anything"  # the service path, route path stripped


def test_https_scheme_is_used_for_caller_b(proxy, keycloak, backends):
    """app/_how-tos/gateway/configure-oidc-datakit-host-routing.md SET_SCHEME: "Kong uses the correct scheme when connecting"
    (httpbun.com:443 is TLS only; the mock refuses plain HTTP)."""
    before = len(backends["httpbun.com:443"].requests)
    assert send(proxy, fetch_token(keycloak, "caller-b")).json()["backend"] == "httpbun"
    assert len(backends["httpbun.com:443"].requests) == before + 1


@pytest.mark.parametrize("caller,target,scheme", [
    ("caller-a", "httpbin.konghq.com:80", "http"),
    ("caller-b", "httpbun.com:443", "https"),
    ("kong", "httpbin.konghq.com:80", "http"),
])
def test_trace_shows_each_nodes_value(proxy, keycloak, caller, target, scheme):
    """app/_how-tos/gateway/configure-oidc-datakit-host-routing.md "Validate the routing": with `X-Datakit-Debug-Trace: true` the
    response body is a JSON trace; in each node's `complete` event
    GET_CREDENTIAL's value has `id` = the caller, PICK_TARGET is
    `{"target", "scheme"}`, EXTRACT_/SET_TARGET the `host:port`,
    EXTRACT_/SET_SCHEME the scheme."""
    r = send(proxy, fetch_token(keycloak, caller), **TRACE_TRUE)
    values = completes(r.json())
    assert values["GET_CREDENTIAL"]["id"] == caller
    assert values["PICK_TARGET"] == {"target": target, "scheme": scheme}
    assert values["EXTRACT_TARGET"] == values["SET_TARGET"] == target
    assert values["EXTRACT_SCHEME"] == values["SET_SCHEME"] == scheme


def test_trace_request_still_reaches_the_backend(proxy, keycloak, backends):
    """app/_how-tos/gateway/configure-oidc-datakit-host-routing.md: with the trace header "The response comes from
    httpbin.konghq.com": the request is proxied, the trace replaces the body
    and the backend's status stays."""
    httpbin = backends["httpbin.konghq.com:80"]
    before = len(httpbin.requests)
    r = send(proxy, fetch_token(keycloak, "caller-a"), **TRACE_TRUE)
    assert r.status_code == 200
    assert len(httpbin.requests) == before + 1
    assert {n["name"]: n["status"] for n in r.json()["nodes"]}["SET_SCHEME"] == "NODE_COMPLETE"


@pytest.mark.parametrize("token", [None, "not-a-jwt"])
def test_without_a_valid_bearer_token_nothing_is_routed(proxy, backends, token):
    """app/_how-tos/gateway/configure-oidc-datakit-host-routing.md "auth_methods: bearer": the plugin only accepts a token in
    `Authorization: Bearer`; Datakit never runs for an unauthenticated call."""
    counts = {k: len(s.requests) for k, s in backends.items()}
    r = send(proxy, token)
    assert r.status_code == 401
    assert {k: len(s.requests) for k, s in backends.items()} == counts


def test_a_token_of_another_issuer_is_refused(proxy, keycloak):
    """app/_how-tos/gateway/configure-oidc-datakit-host-routing.md "issuer": the value "is still used to validate the `iss` claim
    in incoming tokens"."""
    token = keycloak.issue({"client_id": "caller-b", "iss": "http://evil.example/realms/master"})
    assert send(proxy, token).status_code == 401


def test_a_token_signed_with_another_key_is_refused(proxy, keycloak):
    """app/_how-tos/gateway/configure-oidc-datakit-host-routing.md "jwks_endpoint": tokens are checked against Keycloak's signing keys."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    other: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert send(proxy, keycloak.issue({"client_id": "caller-b"}, key=other)).status_code == 401
