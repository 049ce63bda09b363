"""Kong's router and upstream paths, in process.

Sources (Kong/developer.konghq.com): app/_gateway_entities/route.md (the
path_handling v0/v1 table under "path_handling"), app/gateway/routing/
traditional.md ("Regex evaluation order", "Determining priority for
traditional compatible mode", "Path normalization").
"""

from __future__ import annotations

import pytest

from mitmdatakit.kong.entities import Route, Service
from mitmdatakit.kong.proxying import upstream_path
from mitmdatakit.kong.router import Router


def route(name, service=None, order=0, **raw):
    return Route.build({"name": name, **raw}, service, order, "<test>", name)


SERVICE_S = Service.build({"name": "s", "url": "http://up/s"}, "<test>", "s")


# route.md's table, row by row (its "/s/fv01/" is a typo for "/s/fv0/")
@pytest.mark.parametrize("route_path, request_path, strip, handling, expected", [
    ("/fv0", "/fv0/req", False, "v0", "/s/fv0/req"),
    ("/fv0", "/fv0", False, "v0", "/s/fv0"),
    ("/fv1", "/fv1/req", False, "v1", "/sfv1/req"),
    ("/fv1", "/fv1", False, "v1", "/sfv1"),
    ("/tv0", "/tv0/req", True, "v0", "/s/req"),
    ("/tv0", "/tv0", True, "v0", "/s"),
    ("/tv1", "/tv1/req", True, "v1", "/s/req"),
    ("/tv1", "/tv1", True, "v1", "/s"),
    ("/fv0/", "/fv0/req", False, "v0", "/s/fv0/req"),
    ("/fv0/", "/fv0/", False, "v0", "/s/fv0/"),
    ("/fv1/", "/fv1/req", False, "v1", "/sfv1/req"),
    ("/fv1/", "/fv1/", False, "v1", "/sfv1/"),
    ("/tv0/", "/tv0/req", True, "v0", "/s/req"),
    ("/tv0/", "/tv0/", True, "v0", "/s/"),
    ("/tv1/", "/tv1/req", True, "v1", "/sreq"),
    ("/tv1/", "/tv1/", True, "v1", "/s"),
])
def test_path_handling_table(route_path, request_path, strip, handling, expected):
    r = route("r", SERVICE_S, paths=[route_path], strip_path=strip, path_handling=handling)
    found = Router([r]).find("GET", "h", request_path)
    assert found is not None
    assert upstream_path(r, SERVICE_S, found.path, found.postfix) == expected


def test_regex_evaluation_order_of_the_docs():
    """traditional.md: `/version/\\d+/status/\\d+` (6), `/status/\\d+` (0),
    `/version/any/`, then `/version`."""
    routes = [
        route("a", paths=[r"~/status/\d+"], regex_priority=0),
        route("b", paths=[r"~/version/\d+/status/\d+"], regex_priority=6),
        route("c", paths=["/version"]),
        route("d", paths=["~/version/any/"]),
    ]
    router = Router(routes)
    assert router.find("GET", "h", "/version/1/status/2").route.name == "b"
    assert router.find("GET", "h", "/status/2").route.name == "a"
    assert router.find("GET", "h", "/version/any/x").route.name == "d"
    assert router.find("GET", "h", "/version/x").route.name == "c"


def test_match_weight_then_plain_hosts_then_headers():
    routes = [
        route("host", hosts=["example.com"]),
        route("host-post", hosts=["example.com"], methods=["POST"]),
        route("wild", hosts=["*.example.com"], paths=["/"]),
        route("plain", hosts=["a.example.com"], paths=["/"]),
    ]
    router = Router(routes)
    assert router.find("GET", "example.com", "/").route.name == "host"
    assert router.find("POST", "example.com", "/").route.name == "host-post"
    assert router.find("GET", "a.example.com", "/").route.name == "plain"
    assert router.find("GET", "x.y.example.com", "/").route.name == "wild"


def test_requests_and_plain_route_paths_are_normalized():
    router = Router([route("r", paths=["/a/./b/../c"])])
    assert router.find("GET", "h", "/a/c/d").route.name == "r"


def test_a_route_needs_a_matching_field():
    with pytest.raises(Exception, match="at least one of"):
        route("empty")
