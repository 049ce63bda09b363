"""A Kong declarative file run as is by a real mitmdump (issue 12).

Rules cited from Kong's docs repository (Kong/developer.konghq.com):
- routing: app/gateway/routing/traditional.md ("Routing criteria", "Using
  wildcard hostnames", "Headers", "Path", "Regex evaluation order", "Path
  normalization", "Determining priority for traditional compatible mode");
- proxying: app/_gateway_entities/route.md ("strip_path", "preserve_host",
  "path_handling" and its v0/v1 table); app/_gateway_entities/service.md (url);
- plugin scoping: app/_gateway_entities/plugin.md ("Plugin precedence");
- properties: app/_kong_plugins/datakit/index.md (kong.router.route,
  kong.router.service).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import MockServer

HERE = Path(__file__).parent


@pytest.fixture
def shop(tmp_path, make_mock_server):
    servers = {name: make_mock_server() for name in ("ORDERS", "BILLING", "CATALOG", "LEGACY")}
    text = (HERE / "shop.kong.yaml").read_text()
    for name, srv in servers.items():
        text = text.replace(f"${name}", str(srv.port))
    path = tmp_path / "kong.yaml"
    path.write_text(text)
    return path, servers


def _last(srv: MockServer):
    assert srv.requests, "the upstream got no request"
    return srv.requests[-1]


def _ask(c, reverse: bool, method: str, host: str, path: str, **kw):
    if reverse:
        headers = {"Host": host, **kw.pop("headers", {})}
        return c.request(method, path, headers=headers, **kw)
    return c.request(method, f"http://{host}{path}", **kw)


@pytest.mark.parametrize("mode", ["regular", "reverse"])
def test_a_declarative_file_routes_scopes_and_proxies_like_kong(shop, start_mitmdump, mode):
    path, srv = shop
    reverse = mode == "reverse"
    mitm = start_mitmdump(path, mode=f"reverse:{srv['CATALOG'].url}" if reverse else None, env={"SHOP_TOKEN": "abc"})
    log = mitm.log_text()
    # the non-datakit plugin is listed once, never silently ignored
    assert log.count("plugins not run here (only datakit runs): rate-limiting (service billing)") == 1
    with mitm.client() as c:
        ask = lambda *a, **kw: _ask(c, reverse, *a, **kw)  # noqa: E731

        # more fields set first: orders-list (hosts+paths+methods) beats the regex orders-item
        r = ask("GET", "api.shop.test", "/orders/42")
        assert r.status_code == 200
        # service-level plugin; kong.router.route/service are the matched entities
        assert r.json() == {"by": "service-orders", "route": "orders-list", "service": "orders", "strip": True}
        # route plugin beats the service plugin
        r = ask("POST", "api.shop.test", "/orders")
        assert (r.status_code, r.json()) == (201, {"by": "route-orders-create"})
        # a disabled route plugin does not shadow the service plugin; regex path route
        r = ask("DELETE", "api.shop.test", "/orders/42")
        assert r.json() == {"by": "service-orders", "route": "orders-item", "service": "orders", "strip": False}
        # path normalization: %6F is an unreserved escape, `//` merged
        r = ask("GET", "api.shop.test", "/%6Frders//x")
        assert r.json()["route"] == "orders-list"

        # plain host beats wildcard host; strip_path v0; Host is the service's
        r = ask("GET", "eu.billing.test", "/pay/now?x=1")
        got = _last(srv["BILLING"])
        assert (got.path, got.raw_query) == ("/v2/now", "x=1")
        assert got.header("host") == f"127.0.0.1:{srv['BILLING'].port}"
        # the global plugin runs on routes without a plugin of their own
        assert got.header("x-datakit-by") == "global:billing-exact"
        # headers: more headers first; values case-insensitive, ~* a regex
        for value, route in (("ACME", "billing-tenant"), ("beta-7", "billing-tenant"), ("other", "billing-exact")):
            ask("GET", "eu.billing.test", "/pay/now", headers={"x-tenant": value})
            assert _last(srv["BILLING"]).header("x-datakit-by") == f"global:{route}", value
        # wildcard host at the start, any depth; preserve_host keeps the client's Host
        ask("GET", "a.shop.billing.test", "/pay/x")
        got = _last(srv["BILLING"])
        assert (got.path, got.header("host"), got.header("x-datakit-by")) == ("/v2/x", "a.shop.billing.test", "global:billing-wild")
        # path_handling v1: service path /v2 + route /pay/ stripped from /pay/abc -> /v2abc (v0: /v2/abc)
        ask("GET", "v1.billing.test", "/pay/abc")
        assert _last(srv["BILLING"]).path == "/v2abc"

        # regex paths before plain ones; the regex match is stripped
        ask("GET", "any.test", "/catalog/item-7")
        got = _last(srv["CATALOG"])
        assert (got.path, got.header("x-datakit-by")) == ("/", "global:catalog-regex")
        # longest prefix first
        ask("GET", "any.test", "/catalog/items/3")
        assert (_last(srv["CATALOG"]).path, _last(srv["CATALOG"]).header("x-datakit-by")) == ("/3", "global:catalog-deep")
        # the normalized path's decoded escapes are escaped again upstream (Kong's
        # kong.tools.uri.escape): a space or CRLF must not split the request line
        ask("GET", "any.test", "/catalog/items/a%20b/caf%C3%A9/%FF/%2e%2e/%22%0d%0aX-Evil:%201")
        got = _last(srv["CATALOG"])
        assert got.raw_path == "/a%20b/caf%C3%A9/%22%0D%0AX-Evil:%201"
        assert got.header("x-evil") is None
        # strip_path false keeps the path
        ask("GET", "any.test", "/catalog/other")
        assert _last(srv["CATALOG"]).path == "/catalog/other"
        # wildcard host at the end; a service url with a path; no route path: nothing stripped
        ask("GET", "legacy.example", "/x?q=1")
        got = _last(srv["LEGACY"])
        assert (got.path, got.raw_query) == ("/old/x", "q=1")
        # top-level route referencing its service by name; route plugin with a vault secret
        ask("GET", "any.test", "/secret")
        got = _last(srv["CATALOG"])
        assert (got.path, got.header("x-token-len"), got.header("x-datakit-by")) == ("/", "3", None)

        # a Host header naming a host the router tells apart from the destination: refused
        # (docs/hardening.md, "Matching"), whichever of the two names the guarded route
        if not reverse:
            for url_host, header in (("api.shop.test", "any.test"), ("any.test", "api.shop.test")):
                r = c.get(f"http://{url_host}/orders/42", headers={"Host": header})
                assert r.status_code == 400, (url_host, header)

        # unmatched (protocols: an https-only route is not matched over http): passes through
        before = len(srv["CATALOG"].requests)
        r = ask("GET", f"127.0.0.1:{srv['CATALOG'].port}", "/secure/x")
        assert r.status_code == 200
        got = _last(srv["CATALOG"])
        assert len(srv["CATALOG"].requests) == before + 1
        assert (got.path, got.header("x-datakit-by")) == ("/secure/x", None)


def test_the_option_answers_kongs_404_on_unmatched_flows(shop, start_mitmdump):
    path, srv = shop
    mitm = start_mitmdump(path, options={"datakit_kong_no_route_404": True}, env={"SHOP_TOKEN": "abc"})
    with mitm.client() as c:
        r = c.get(f"{srv['CATALOG'].url}/secure/x")
        assert r.status_code == 404
        assert r.json() == {"message": "no Route matched with those values"}
        assert not srv["CATALOG"].requests
        assert c.get(f"{srv['CATALOG'].url}/catalog/other").status_code == 200
    assert _last(srv["CATALOG"]).path == "/catalog/other"
