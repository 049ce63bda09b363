"""Kong conformance of app/_cookbooks/secure-external-mcp-gateway.md
("Secure External MCP Gateway"), the Datakit parts: the page's
`kong-recipe.yaml` (tests/conformance/decks/secure-external-mcp-gateway.yaml,
verbatim) runs in a real mitmdump with the page's `DECK_*` variables
exported.

The `github-mcp` route's Datakit plugin (`ordering.before.access:
[ai-mcp-proxy, key-auth]`) answers a request without an `Authorization`
header with `401` and the PRM pointer; with one, the request goes on to
Key Auth and the upstream MCP server. Stand-ins: Key Auth is
`_keyauth.KeyAuthStandIn`, loaded *after* the Datakit addon as the
plugin's `ordering` says; `api.githubcopilot.com:443` and the
`DECK_KONNECT_MCP_HOST` host are local TLS mocks (`_standins.TestHosts`).
AI MCP Proxy (tool ACLs), AI MCP OAuth2, CORS and the two transformer
plugins are not Datakit and do not run here (docs/kong.md, "Other plugins").
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import DEFAULT_SCRIPT, Mitmdump, MockServer, RecordedRequest, Reply

PAGE = "app/_cookbooks/secure-external-mcp-gateway.md"
HERE = Path(__file__).parent
DECK = HERE / "decks" / "secure-external-mcp-gateway.yaml"
SCRIPTS = [HERE / "_standins.py", DEFAULT_SCRIPT, HERE / "_keyauth.py"]
KONNECT_HOST = "konnect-mcp.test"
DECK_ENV = {
    "DECK_KONNECT_MCP_HOST": KONNECT_HOST,
    "DECK_OAUTH_AUTH_SERVER": "https://idp.test/oauth2/default",
    "DECK_OAUTH_INTROSPECTION_URL": "https://idp.test/oauth2/default/v1/introspect",
    "DECK_OAUTH_CLIENT_ID": "client-id",
    "DECK_OAUTH_CLIENT_SECRET": "client-secret",
    "DECK_KONNECT_MCP_TOKEN": "kpat_test",
}
CHALLENGE = ('Bearer resource_metadata="https://localhost:8443/.well-known/oauth-protected-resource/github-mcp", '
             'error="invalid_token"')
PRM = {"resource": "https://api.githubcopilot.com/mcp", "authorization_servers": ["https://github.com/login/oauth"],
       "scopes_supported": ["repo", "gist", "notifications"]}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}}


def mcp(name: str):
    def answer(req: RecordedRequest) -> Reply:
        call = req.json()
        return Reply(json={"jsonrpc": "2.0", "id": call["id"], "result": {"serverInfo": {"name": name}}})
    return answer


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, MockServer]]:
    with MockServer(tls=True) as github, MockServer(tls=True) as konnect:
        github.route("POST", "/mcp", mcp("github"))
        github.route("GET", "/.well-known/oauth-protected-resource/mcp", Reply(json=PRM))
        konnect.route("POST", "/*", mcp("konnect"))
        yield {"api.githubcopilot.com:443": github, f"{KONNECT_HOST}:443": konnect}


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, mitm_confdir, servers) -> Iterator[Mitmdump]:
    deck = tmp_path_factory.mktemp("external-mcp") / "kong-recipe.yaml"
    deck.write_text(DECK.read_text())
    env = {**DECK_ENV, "KEYAUTH_STANDIN_DECK": str(deck),
           "DATAKIT_TEST_HOSTS": ",".join(f"{name}=127.0.0.1:{srv.port}" for name, srv in servers.items())}
    mitm = Mitmdump(deck, script=SCRIPTS, confdir=mitm_confdir, env=env, options={"ssl_insecure": True}, quiet=True)
    try:
        yield mitm
    finally:
        code = mitm.stop()
        print(f"\n----- {mitm!r} exit={code} log tail -----\n{mitm.log_tail(60)}")


def send(proxy: Mitmdump, path: str, body: Any = INITIALIZE, **headers: str) -> httpx.Response:
    """What the page's MCP client sends to `https://localhost:8443/github-mcp`
    (plain HTTP here: the route takes both protocols)."""
    with proxy.client() as c:
        if body is None:
            return c.get(f"http://localhost:8443{path}", headers=headers)
        return c.post(f"http://localhost:8443{path}", json=body, headers=headers)


@pytest.mark.parametrize("headers", [{}, {"apikey": "dev-api-key"}], ids=["no-headers", "apikey-only"])
def test_without_authorization_datakit_answers_401_with_the_prm_pointer(proxy, servers, headers):
    """app/_cookbooks/secure-external-mcp-gateway.md "GitHub MCP: PRM discovery
    with Datakit": CHECK_AUTH is false, AUTH_BRANCH runs `else`, UNAUTH_EXIT
    "Returns status 401 with the static headers and body, short-circuiting
    the request so it never reaches the upstream"; it runs before Key Auth
    (`ordering.before.access`), so an `apikey` alone does not change it."""
    github = servers["api.githubcopilot.com:443"]
    before = len(github.requests)
    r = send(proxy, "/github-mcp", **headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == CHALLENGE
    assert r.headers["content-type"] == "application/json"
    assert r.content == b'{"message": "Unauthorized"}'  # UNAUTH_RESPONSE.BODY, a string, sent as is
    assert "x-standin" not in r.headers  # Datakit's answer, not key-auth's
    assert len(github.requests) == before


@pytest.mark.parametrize("name", ["Authorization", "authorization"])
def test_with_authorization_the_request_reaches_github_mcp(proxy, servers, name):
    """app/_cookbooks/secure-external-mcp-gateway.md: CHECK_AUTH "checks if an
    `Authorization` header is present (case-insensitive)"; AUTH_BRANCH "If
    `true`, the request passes through to the next Plugin (Key Auth)"; the
    Bearer token is "Passed through to GitHub's MCP server", the `apikey`
    is Key Auth's (hidden by `hide_credentials`)."""
    github = servers["api.githubcopilot.com:443"]
    r = send(proxy, "/github-mcp", **{name: "Bearer ghu_test", "apikey": "dev-api-key"})
    assert r.status_code == 200
    assert r.json()["result"]["serverInfo"] == {"name": "github"}
    sent = github.requests[-1]
    assert (sent.method, sent.path) == ("POST", "/mcp")  # the service's path, route path stripped
    assert sent.header("authorization") == "Bearer ghu_test"
    assert sent.header("apikey") is None
    assert sent.json() == INITIALIZE


@pytest.mark.parametrize("apikey,message", [(None, "No API key found in request"), ("nope", "Unauthorized")])
def test_a_bearer_token_without_a_valid_apikey_stops_at_key_auth(proxy, servers, apikey, message):
    """app/_cookbooks/secure-external-mcp-gateway.md "Dual auth model": Datakit
    lets a request with a Bearer token through; Key Auth, next, needs the
    `apikey` of a Kong Consumer."""
    github = servers["api.githubcopilot.com:443"]
    before = len(github.requests)
    headers = {"Authorization": "Bearer ghu_test", **({"apikey": apikey} if apikey else {})}
    r = send(proxy, "/github-mcp", **headers)
    assert (r.status_code, r.json(), r.headers.get("x-standin")) == (401, {"message": message}, "key-auth")
    assert len(github.requests) == before


def test_the_prm_route_carries_no_datakit_challenge(proxy, servers):
    """app/_cookbooks/secure-external-mcp-gateway.md: "The client fetches the
    PRM document from Kong" unauthenticated: the `github-mcp-prm` route has
    no Datakit plugin, so it is proxied to GitHub's PRM path."""
    r = send(proxy, "/.well-known/oauth-protected-resource/github-mcp", body=None)
    assert r.status_code == 200
    assert r.json()["authorization_servers"] == ["https://github.com/login/oauth"]
    sent = servers["api.githubcopilot.com:443"].requests[-1]
    assert (sent.method, sent.path) == ("GET", "/.well-known/oauth-protected-resource/mcp")


def test_the_konnect_service_host_comes_from_deck_konnect_mcp_host(proxy, servers):
    """app/_cookbooks/secure-external-mcp-gateway.md: `host: ${{ env
    "DECK_KONNECT_MCP_HOST" }}` (app/deck/reference/env-variables.md): the
    `konnect-mcp` route is proxied over HTTPS to the host the variable
    names; no Datakit runs there (an MCP call without a token goes through)."""
    konnect = servers[f"{KONNECT_HOST}:443"]
    before = len(konnect.requests)
    r = send(proxy, "/konnect-mcp")
    assert r.status_code == 200
    assert r.json()["result"]["serverInfo"] == {"name": "konnect"}
    assert len(konnect.requests) == before + 1
    assert konnect.requests[-1].header("host") == KONNECT_HOST


def test_the_other_plugins_are_named_as_not_run(proxy):
    """app/_cookbooks/secure-external-mcp-gateway.md's plugins besides Datakit
    (docs/kong.md "Other plugins": listed once per load)."""
    line = proxy.wait_for_log(r"plugins not run here \(only datakit runs\): [^\n]*").group(0)
    for name in ("key-auth", "ai-mcp-proxy", "cors", "response-transformer-advanced", "ai-mcp-oauth2",
                 "request-transformer-advanced"):
        assert name in line


@pytest.mark.parametrize("unset", ["DECK_KONNECT_MCP_TOKEN", "DECK_KONNECT_MCP_HOST"])
def test_each_deck_variable_is_needed(tmp_path, unset):
    """app/_cookbooks/secure-external-mcp-gateway.md: "The `DECK_OAUTH_*`,
    `DECK_KONNECT_MCP_TOKEN`, and `DECK_KONNECT_MCP_HOST` env vars are already
    exported"; without one the file is refused, as decK refuses it, naming
    it (DECK_KONNECT_MCP_TOKEN sits inside a longer string)."""
    deck = tmp_path / "kong-recipe.yaml"
    deck.write_text(DECK.read_text())
    code, output = Mitmdump.run_and_expect_exit(deck, env={**DECK_ENV, unset: None})
    assert code != 0
    assert f"environment variable '{unset}' present in state file but not set" in output
