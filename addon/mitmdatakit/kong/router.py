"""Kong's router, `traditional_compatible` flavour, for HTTP routes.

The rules (developer.konghq.com app/gateway/routing/traditional.md,
"Routing criteria" and "Determining priority for traditional compatible
mode"): a request matches a route when it matches every field the route
sets, and one value of each. Routes are tried in priority order: more
fields set first; then routes whose hosts are all plain; then more
headers; then regex paths (by `regex_priority`) before plain paths (longest
first). A route with several paths is tried once per path, each path with
its own priority, as Kong's compatible router splits it. Equal priorities
keep file order (Kong leaves that order unspecified).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .. import config_regex
from ..codecs import normalize_path, normalize_path_regex
from ..config_regex import ConfigRegex
from ..errors import ConfigError
from ..hosts import normalize_host, request_host, wildcard_host_test
from .entities import Route


@dataclass(frozen=True)
class RouteMatch:
    """The route a request matched, and the part of the path after what
    the route's path matched (what `strip_path` keeps)."""

    route: Route
    path: str  # the normalized request path
    postfix: str


def request_protocol(flow: Any) -> str:
    conn = flow.client_conn
    return "https" if conn is not None and conn.tls_established else "http"


class _Candidate:
    """One route with at most one of its paths: what the router sorts."""

    __slots__ = ("headers", "host_tests", "key", "methods", "prefix", "protocols", "regex", "route", "snis")

    def __init__(self, route: Route, path: str | None, source: str) -> None:
        self.route = route
        self.methods = frozenset(route.methods)
        self.protocols = frozenset(route.protocols)
        self.snis = frozenset(normalize_host(s) for s in route.snis)
        self.host_tests = [_host_test(normalize_host(h)) for h in route.hosts]
        field = f"routes.{route.name or route.id}.headers.{{}}"
        self.headers = [(name, [_value_test(v, field.format(name), source) for v in values]) for name, values in route.headers.items()]
        self.prefix: str | None = None
        self.regex: ConfigRegex | None = None
        if path is not None and path.startswith("~"):
            try:  # Kong anchors regex paths at the start (PCRE's `(?<name>)` is understood)
                self.regex = ConfigRegex(normalize_path_regex(path[1:]))
            except config_regex.error as e:
                raise ConfigError(f"invalid path regex {path!r}: {e}", file=source, field=f"routes.{route.name or route.id}.paths") from None
        elif path is not None:
            self.prefix = normalize_path(path)  # Kong normalizes plain route paths as it does requests'
        weight = sum(bool(x) for x in (route.methods, route.hosts, route.headers, route.snis, route.paths))
        plain_hosts = bool(route.hosts) and not any("*" in h for h in route.hosts)
        regex = self.regex is not None
        self.key = (
            weight,
            plain_hosts,
            len(route.headers),
            regex,
            route.regex_priority if regex else 0,
            len(self.prefix) if self.prefix is not None else 0,
        )

    def match(self, method: str, host: str, path: str, protocol: str, flow: Any) -> RouteMatch | None:
        if protocol not in self.protocols:
            return None
        if self.methods and method not in self.methods:
            return None
        if self.host_tests and not any(test(host) for test in self.host_tests):
            return None
        if self.snis:
            sni = getattr(flow.client_conn, "sni", None)
            if not sni or normalize_host(sni) not in self.snis:
                return None
        for name, tests in self.headers:
            values = flow.request.headers.get_all(name)
            if not any(test(v) for v in values for test in tests):
                return None
        if self.prefix is not None:
            if not path.startswith(self.prefix):
                return None
            return RouteMatch(self.route, path, path[len(self.prefix):])
        if self.regex is not None:
            m = self.regex.match(path)
            if m is None:
                return None
            return RouteMatch(self.route, path, path[m.end():])
        return RouteMatch(self.route, path, path)


def _host_test(pattern: str) -> Callable[[str], bool]:
    """Exact, `*.example.com` (any depth) or `example.*` (traditional.md,
    "Using wildcard hostnames")."""
    return wildcard_host_test(pattern) or (lambda host: host == pattern)


def _value_test(value: str, field: str, source: str) -> Callable[[str], bool]:
    """Header values: case-insensitive, or a `~*` regex (Kong's router)."""
    if value.startswith("~*"):
        try:
            rx = ConfigRegex(value[2:], ignore_case=True)
        except config_regex.error as e:
            raise ConfigError(f"invalid header regex {value!r}: {e}", file=source, field=field) from None
        return lambda v: rx.search(v) is not None
    low = value.lower()
    return lambda v: v.lower() == low


class Router:
    """The routes of one declarative file, in the order Kong tries them."""

    def __init__(self, routes: Sequence[Route], source: str = "<memory>") -> None:
        self.routes = list(routes)
        candidates = []
        for route in self.routes:
            paths: Sequence[str | None] = route.paths or [None]  # a route without paths matches any path
            for path in paths:
                candidates.append(_Candidate(route, path, source))
        # stable: equal keys keep file order
        self._candidates = sorted(candidates, key=lambda c: c.key, reverse=True)
        # the flow's match, computed once however many workflows ask
        self._matches: weakref.WeakKeyDictionary[Any, RouteMatch | None] = weakref.WeakKeyDictionary()

    def find(self, method: str, host: str, path: str, protocol: str = "http", flow: Any = None) -> RouteMatch | None:
        for candidate in self._candidates:
            found = candidate.match(method, host, path, protocol, flow)
            if found is not None:
                return found
        return None

    def route_for(self, flow: Any) -> RouteMatch | None:
        try:
            return self._matches[flow]
        except KeyError:
            pass
        found = self.find(
            flow.request.method.upper(),
            request_host(flow),
            normalize_path(flow.request.path.partition("?")[0] or "/"),
            request_protocol(flow),
            flow,
        )
        self._matches[flow] = found
        return found
