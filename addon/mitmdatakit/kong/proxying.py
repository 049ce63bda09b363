"""Where Kong sends a routed request: the route's service, with the path
built by `strip_path` and `path_handling`, and the Host by `preserve_host`.

Rules from developer.konghq.com app/_gateway_entities/route.md ("Route
behavior": strip_path, preserve_host, path_handling and its v0/v1 table).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..urls import escape_uri
from .entities import DEFAULT_PORTS, Route, Service
from .router import RouteMatch


@dataclass(frozen=True)
class Upstream:
    scheme: str
    host: str
    port: int
    path: str  # with the request's query string
    host_header: str | None  # None: keep the client's


def upstream_path(route: Route, service: Service, path: str, postfix: str) -> str:
    """The upstream path for a normalized request `path` whose part after
    the route's matched path is `postfix`."""
    base = service.path or "/"
    if route.path_handling == "v1":
        # the service path is a prefix; the request's leading slash is not kept
        tail = postfix if route.strip_path else path[1:]
        if base.endswith("/") and tail.startswith("/"):
            tail = tail[1:]
        return base + tail
    # v0: service path, route path and request path are joined as segments
    if base.endswith("/"):
        if route.strip_path:
            if postfix == "":
                if base == "/":
                    return "/"
                return base if path.endswith("/") else base[:-1]
            return base[:-1] + postfix if postfix.startswith("/") else base + postfix
        return base + path[1:]
    if route.strip_path:
        if postfix == "":
            return base + "/" if len(path) > 1 and path.endswith("/") else base
        return base + postfix if postfix.startswith("/") else base + "/" + postfix
    return base if path == "/" else base + path


def upstream_for(match: RouteMatch, query: str) -> Upstream | None:
    """None: the route has no service (Kong answers such flows itself)."""
    route, service = match.route, match.route.service
    if service is None:
        return None
    # the normalized path has its escapes decoded (`%20`, `%0D%0A`, UTF-8):
    # escaped again, as Kong does, or a space or CRLF would split the
    # request line sent upstream
    path = escape_uri(upstream_path(route, service, match.path, match.postfix))
    if query:
        path = f"{path}?{query}"
    host_header = None
    if not route.preserve_host:  # Kong sends the service's host, with a port unless the scheme's default
        default = DEFAULT_PORTS.get(service.protocol)
        host_header = service.host if service.port == default else f"{service.host}:{service.port}"
    host, port = service.host, service.port
    if service.balanced_target is not None:  # the host names an Upstream entity: go to its target
        name, _, number = service.balanced_target.rpartition(":")
        host, port = name.strip("[]"), int(number)
    return Upstream(service.protocol, host, port, path, host_header)
