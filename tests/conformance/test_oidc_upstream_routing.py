"""Kong conformance of app/_how-tos/gateway/configure-oidc-datakit-upstream-routing.md
("Dynamically set upstream based on the authenticated caller"), through a
real mitmdump running the guide's decK entities: the three Upstream
entities, `example-service` updated to `host: upstream-default`, the
prerequisite `example-route` (`/anything`), the openid-connect plugin and
the Datakit plugin as the page writes them.

Keycloak is a mock issuing the same tokens (`_oidc`); the OpenID Connect
plugin is a stand-in configured by the file (`_standins.OidcStandIn`).
The page's upstreams all target `httpbin.konghq.com:80`; a second file
gives each its own host ("In production, each upstream would point at a
different backend host"), with the same Datakit plugin.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from tests.conformance._oidc import TRACE_TRUE, Keycloak, completes, fetch_token, keycloak, oidc_plugin, start
from tests.harness import Mitmdump, MockServer, RecordedRequest, Reply

__all__ = ["keycloak"]  # the fixture, imported for this module

UPSTREAMS = """\
_format_version: "3.0"
upstreams:
  - name: upstream-a
    targets:
      - target: {a}
  - name: upstream-b
    targets:
      - target: {b}
  - name: upstream-default
    targets:
      - target: {default}
services:
  - name: example-service
    host: upstream-default
    port: 80
    protocol: http
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

DATAKIT = """\
  - name: datakit
    service: example-service
    config:
      nodes:
        - name: GET_CREDENTIAL
          type: property
          property: kong.client.credential
        - name: PICK_UPSTREAM
          type: jq
          input: GET_CREDENTIAL
          jq: |
            {
              "caller-a": "upstream-a",
              "caller-b": "upstream-b"
            }[.id] // "upstream-default"
        - name: SET_UPSTREAM
          type: property
          property: kong.service.upstream
          input: PICK_UPSTREAM
      debug: true
"""

HTTPBIN = "httpbin.konghq.com:80"
OWN_HOSTS = {"upstream-a": "backend-a.test:80", "upstream-b": "backend-b.test:80", "upstream-default": "backend-default.test:80"}


def echo(name: str):
    def answer(req: RecordedRequest) -> Reply:
        return Reply(json={"backend": name, "path": req.path, "host": req.header("host")})
    return answer


@pytest.fixture(scope="module")
def backends() -> Iterator[dict[str, MockServer]]:
    with ExitStack() as stack:
        servers = {name: stack.enter_context(MockServer()) for name in (HTTPBIN, *OWN_HOSTS.values())}
        for name, server in servers.items():
            server.route("*", "/*", echo(name))
        yield servers


@pytest.fixture(scope="module")
def page(tmp_path_factory, mitm_confdir, keycloak: Keycloak, backends) -> Iterator[Mitmdump]:
    deck = tmp_path_factory.mktemp("oidc-upstream-routing") / "kong.yaml"
    deck.write_text(UPSTREAMS.format(a=HTTPBIN, b=HTTPBIN, default=HTTPBIN) + oidc_plugin(keycloak) + DATAKIT)
    yield from start(deck, mitm_confdir, backends)


@pytest.fixture(scope="module")
def production(tmp_path_factory, mitm_confdir, keycloak: Keycloak, backends) -> Iterator[Mitmdump]:
    deck = tmp_path_factory.mktemp("oidc-upstream-routing-own") / "kong.yaml"
    text = UPSTREAMS.format(a=OWN_HOSTS["upstream-a"], b=OWN_HOSTS["upstream-b"], default=OWN_HOSTS["upstream-default"])
    # a second route on the same service whose Datakit plugin sets no upstream
    text = text.replace("plugins:\n", "  - name: untouched\n    paths: [/untouched]\n    service: {name: example-service}\n"
                        "plugins:\n  - name: datakit\n    route: untouched\n    config:\n      nodes:\n"
                        "        - {name: IP, type: property, property: kong.client.ip}\n")
    deck.write_text(text + oidc_plugin(keycloak) + DATAKIT)
    yield from start(deck, mitm_confdir, backends)


def send(proxy: Mitmdump, token: str, path: str = "/anything", **headers: str) -> httpx.Response:
    """The guide's `curl -si http://localhost:8000/anything -H "Authorization: Bearer $TOKEN"`."""
    with proxy.client() as c:
        return c.get(f"http://localhost:8000{path}", headers={"Authorization": f"Bearer {token}", **headers})


@pytest.mark.parametrize("caller", ["caller-a", "caller-b", "kong"])
def test_every_caller_gets_a_200_from_httpbin(page, keycloak, caller):
    """app/_how-tos/gateway/configure-oidc-datakit-upstream-routing.md "Validate
    the routing": "All three upstreams point at the same host in this
    tutorial, so each request returns an HTTP 200 from httpbin.konghq.com"."""
    r = send(page, fetch_token(keycloak, caller))
    assert r.status_code == 200
    assert r.json()["backend"] == HTTPBIN
    # the updated service has no path; the route's `/anything` is stripped
    assert r.json()["path"] == "/"


@pytest.mark.parametrize("caller,upstream", [("caller-a", "upstream-a"), ("caller-b", "upstream-b"), ("kong", "upstream-default")])
def test_trace_shows_the_picked_upstream(page, keycloak, caller, upstream):
    """app/_how-tos/gateway/configure-oidc-datakit-upstream-routing.md: in each
    node's `complete` event GET_CREDENTIAL has `id` = the caller,
    PICK_UPSTREAM and SET_UPSTREAM the upstream name; `kong` is not in the
    map and gets `upstream-default`."""
    r = send(page, fetch_token(keycloak, caller), **TRACE_TRUE)
    assert r.status_code == 200
    values = completes(r.json())
    assert values["GET_CREDENTIAL"]["id"] == caller
    assert values["PICK_UPSTREAM"] == values["SET_UPSTREAM"] == upstream


@pytest.mark.parametrize("caller,upstream", [("caller-a", "upstream-a"), ("caller-b", "upstream-b"), ("kong", "upstream-default")])
def test_each_upstream_its_own_backend(production, keycloak, caller, upstream):
    """app/_how-tos/gateway/configure-oidc-datakit-upstream-routing.md "Add
    upstreams": "In production, each upstream would point at a different
    backend host": the upstream picked for the caller is the one proxied to."""
    assert send(production, fetch_token(keycloak, caller)).json()["backend"] == OWN_HOSTS[upstream]


def test_the_service_host_names_the_default_upstream(production, keycloak):
    """app/_how-tos/gateway/configure-oidc-datakit-upstream-routing.md: "Update
    the example-service Service so that its host points to upstream-default.
    This is the default backend": a route whose workflow picks nothing goes
    to upstream-default's target."""
    r = send(production, fetch_token(keycloak, "caller-a"), path="/untouched")
    assert r.json()["backend"] == OWN_HOSTS["upstream-default"]
