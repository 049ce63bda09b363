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
"""

from __future__ import annotations

import asyncio
import json as _json
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["MockAPI", "Recorded", "Reply"]

HOST = "127.0.0.1"


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


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    body: str | bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0


Handler = Reply | Callable[[Recorded], Any]


class MockAPI:
    """A real HTTP server on 127.0.0.1 (`port=0`: a free port)."""

    def __init__(self, port: int = 0, name: str = "mock-api") -> None:
        self.name = name
        self.port = port
        self.requests: list[Recorded] = []
        self._routes: list[tuple[str, str, Handler]] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: Any = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def route(self, method: str, path: str, handler: Handler | None = None, *, status: int = 200, json: Any = None,
              body: str | bytes | None = None, headers: Mapping[str, str] | None = None, delay: float = 0.0) -> MockAPI:
        """Answer `method` (or `*`) `path` (exact, or a prefix ending in `*`)
        with `handler` (a Reply, or a function of the Recorded request
        returning a Reply, a dict/list (JSON), str/bytes, or None for 204),
        or else with the status/json/body/headers/delay given."""
        if handler is None:
            handler = Reply(status=status, json=json, body=body, headers=dict(headers or {}), delay=delay)
        with self._lock:
            self._routes.append((method.upper(), path, handler))
        return self

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> MockAPI:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name=f"{self.name}:{self.port}", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(sock), loop).result(timeout=10)
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._runner is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(timeout=10)
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        self._loop = self._thread = self._runner = None

    def __enter__(self) -> MockAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<MockAPI {self.name} {self.url} requests={len(self.requests)}>"

    # -- serving ---------------------------------------------------------------

    async def _serve(self, sock: socket.socket) -> None:
        from aiohttp import web

        runner = web.ServerRunner(web.Server(self._handle, access_log=None), handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runner = runner

    def _find(self, req: Recorded) -> Handler | None:
        with self._lock:
            routes = list(self._routes)
        for method, path, handler in reversed(routes):
            if method not in ("*", req.method):
                continue
            if path == req.path or (path.endswith("*") and req.path.startswith(path[:-1])):
                return handler
        return None

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        body = await request.read()
        raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]
        headers: dict[str, str] = {}
        for k, v in raw:
            key = k.lower()
            headers[key] = f"{headers[key]}, {v}" if key in headers else v
        query: dict[str, Any] = {}
        for k, v in parse_qsl(request.query_string, keep_blank_values=True):
            query[k] = [*query[k], v] if isinstance(query.get(k), list) else ([query[k], v] if k in query else v)
        rec = Recorded(request.method, request.path, query, headers, raw, body)
        with self._lock:
            self.requests.append(rec)
        handler = self._find(rec)
        try:
            if handler is None:
                reply = Reply(json=rec.echo())
            elif isinstance(handler, Reply):
                reply = handler
            else:
                result = handler(rec)
                if asyncio.iscoroutine(result):
                    result = await result
                reply = _as_reply(result)
        except Exception as e:  # noqa: BLE001 - a broken handler answers 500
            reply = Reply(status=500, body=f"mock handler failed: {type(e).__name__}: {e}")
        if reply.delay:
            await asyncio.sleep(reply.delay)
        out_headers = dict(reply.headers)
        if reply.json is not None:
            data = _json.dumps(reply.json).encode()
            if not any(k.lower() == "content-type" for k in out_headers):
                out_headers["Content-Type"] = "application/json"
        elif isinstance(reply.body, str):
            data = reply.body.encode()
        else:
            data = reply.body or b""
        return web.Response(status=reply.status, body=data, headers=out_headers)


def _as_reply(result: Any) -> Reply:
    if isinstance(result, Reply):
        return result
    if result is None:
        return Reply(status=204)
    if isinstance(result, (str, bytes)):
        return Reply(body=result)
    return Reply(json=result)
