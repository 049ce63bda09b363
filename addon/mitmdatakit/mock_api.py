"""A small local HTTP API for tests and the demo (127.0.0.1, aiohttp).

    api = MockAPI().start()                 # or: with MockAPI() as api:
    api.route("GET", "/users/1", json={"id": 1, "name": "Ada"})
    api.route("POST", "/token", status=201, json={"access_token": "t0k"}, delay=0.1)
    api.route("GET", "/dyn", lambda req: {"you_sent": req.query})
    ... api.url ...                         # http://127.0.0.1:PORT
    api.requests[-1].headers["authorization"]
    api.stop()

The server runs on its own event loop in its own thread, so it answers
while a sync test waits and while an async test's loop is busy. Unrouted
requests get an echo: `{method, path, query, headers, body}` of the request,
handy as an upstream that shows what it received. The most recently added
matching route wins; a path ending in `*` is a prefix.

`MockAPI` is the project's one mock server (`mock_server.MockServer`) with a
chainable `route(...)` and simpler records (`Recorded`).
"""

from __future__ import annotations

import json as _json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qsl

from .mock_records import Reply
from .mock_server import Handler as ServerHandler
from .mock_server import MockServer

__all__ = ["MockAPI", "Recorded", "Reply"]


@dataclass
class Recorded:
    """One request the API received. `headers`: lowercase name -> value
    (repeated headers joined by ', ' as HTTP allows; `raw_headers` keeps
    them apart)."""

    method: str
    path: str
    query: dict[str, Any]
    headers: dict[str, str]
    raw_headers: list[tuple[str, str]]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return _json.loads(self.body)

    def echo(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "query": self.query, "headers": self.headers, "body": self.text}

    to_echo = echo  # what the server answers unrouted requests with


Handler = Reply | Callable[[Recorded], Any]


class MockAPI(MockServer):
    """A real HTTP server on 127.0.0.1 (`port=0`: a free port)."""

    def __init__(self, port: int = 0, name: str = "mock-api") -> None:
        super().__init__(port=port, name=name)
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def route(self, method: str, path: str, handler: Handler | None = None, *, status: int = 200, json: Any = None,  # type: ignore[override]
              body: str | bytes | None = None, headers: Mapping[str, str] | None = None, delay: float = 0.0) -> MockAPI:
        """Answer `method` (or `*`) `path` (exact, or a prefix ending in `*`)
        with `handler` (a Reply, or a function of the Recorded request
        returning a Reply, a dict/list (JSON), str/bytes, or None for 204),
        or else with the status/json/body/headers/delay given."""
        if handler is None:
            handler = Reply(status=status, json=json, body=body, headers=dict(headers or {}), delay=delay)
        # this server records every request as a Recorded (`_record`)
        super().route(method, path, cast(ServerHandler, handler))
        return self

    def __repr__(self) -> str:
        return f"<MockAPI {self.name} {self.url} requests={len(self.requests)}>"

    def _record(self, request: Any, body: bytes) -> Recorded:
        raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]
        headers: dict[str, str] = {}
        for k, v in raw:
            key = k.lower()
            headers[key] = f"{headers[key]}, {v}" if key in headers else v
        query: dict[str, Any] = {}
        for k, v in parse_qsl(request.query_string, keep_blank_values=True):
            query[k] = [*query[k], v] if isinstance(query.get(k), list) else ([query[k], v] if k in query else v)
        return Recorded(request.method, request.path, query, headers, raw, body)
