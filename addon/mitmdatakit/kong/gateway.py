"""The mitmproxy hooks that make mitmdump act as Kong for the routes of
loaded declarative files: route each flow, answer Kong's 404 when asked to,
and send routed flows to their route's service.

A child addon of `Datakit`, present only while a declarative file is
loaded. It runs after the Datakit engine in the `request` hook, so the
upstream is rewritten after the workflow ran, and only in the parts the
workflow left alone: a workflow that set `kong.service.target` keeps its
target, as in Kong.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from mitmproxy import http

from ..hosts import CLIENT_HOST
from .declarative import RouterMatch
from .proxying import upstream_for
from .router import RouteMatch, Router

logger = logging.getLogger("mitmdatakit")

NO_ROUTE_OPTION = "datakit_kong_no_route_404"
NO_ROUTE_BODY = {"message": "no Route matched with those values"}


def routers_of(workflows: Iterable[Any]) -> list[Router]:
    """The routers of the declarative files the workflows came from, in load order."""
    routers: dict[int, Router] = {}
    for wf in workflows:
        if isinstance(wf.match, RouterMatch):
            routers.setdefault(id(wf.match.router), wf.match.router)
    return list(routers.values())


class KongGateway:
    def __init__(self, answer_no_route: Callable[[], bool]) -> None:
        self.routers: list[Router] = []
        self.answer_no_route = answer_no_route
        # flow id -> the request's destination before the workflow ran
        self._before: dict[str, tuple[str, str, int, str, str | None]] = {}

    def use(self, workflows: Iterable[Any]) -> None:
        self.routers = routers_of(workflows)

    def route(self, flow: http.HTTPFlow) -> RouteMatch | None:
        for router in self.routers:  # files in load order: the first that routes the flow
            found = router.route_for(flow)
            if found is not None:
                return found
        return None

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return
        if self.route(flow) is None:
            if self.answer_no_route():
                flow.response = http.Response.make(404, json.dumps(NO_ROUTE_BODY).encode(), {"Content-Type": "application/json; charset=utf-8"})
            return
        r = flow.request
        self._before[flow.id] = (r.scheme, r.host, r.port, r.path, r.host_header)

    def request(self, flow: http.HTTPFlow) -> None:
        before = self._before.pop(flow.id, None)
        if before is None or flow.response is not None:
            return
        found = self.route(flow)
        r = flow.request
        path_now, _, query = r.path.partition("?")
        upstream = upstream_for(found, query) if found else None
        if upstream is None:
            return
        scheme, host, port, path, host_header = before
        client_host = flow.metadata.get(CLIENT_HOST, host_header)
        header_now = r.host_header
        if (r.scheme, r.host, r.port) == (scheme, host, port):
            r.scheme, r.host, r.port = upstream.scheme, upstream.host, upstream.port
        if path_now == path.partition("?")[0]:
            r.path = upstream.path
        if header_now in (host_header, client_host):
            r.host_header = upstream.host_header if upstream.host_header is not None else client_host

    def error(self, flow: http.HTTPFlow) -> None:
        self._before.pop(flow.id, None)
