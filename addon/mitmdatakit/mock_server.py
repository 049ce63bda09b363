"""The one local mock HTTP server: a real HTTP/1.1 (optionally HTTPS)
server on 127.0.0.1, used by the demo, the pytest plugin's `datakit_mock_api`
(through `mock_api.MockAPI`) and this project's own test harness.

The server is an ``aiohttp.web`` low-level server running on its own event loop
in its own thread, so it can be used from sync tests, from async tests, and
while the test's own loop is blocked.  Every request is recorded (raw header
names and repeats preserved) and answered by the most recently registered
matching route, or by the default echo handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
import socket
import ssl
import struct
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self, overload
from urllib.parse import unquote

from aiohttp import web

from .mock_records import Headers, RecordedRequest, Reply

__all__ = ["HOST", "Headers", "MockServer", "RecordedRequest", "Reply"]

HOST = "127.0.0.1"


RouteFn = Callable[[RecordedRequest], Any]
Handler = Reply | RouteFn
PathSpec = str | re.Pattern[str]


@dataclass
class _Route:
    method: str
    path: PathSpec
    handler: Handler

    def matches(self, req: RecordedRequest) -> bool:
        if self.method != "*" and self.method != req.method.upper():
            return False
        if isinstance(self.path, re.Pattern):
            return self.path.fullmatch(req.path) is not None
        if self.path.endswith("*"):
            return req.path.startswith(self.path[:-1])
        return req.path == self.path


def _coerce_reply(result: Any) -> Reply:
    if isinstance(result, Reply):
        return result
    if isinstance(result, (bytes, str)):
        return Reply(body=result)
    if result is None:
        return Reply(status=204)
    # dict / list / number: a JSON body
    return Reply(json=result)


# --------------------------------------------------------------------------- #
# The server
# --------------------------------------------------------------------------- #


class MockServer:
    """A real HTTP/1.1 server on 127.0.0.1 running in a background thread.

    ::

        with MockServer() as srv:
            srv.route("GET", "/users", Reply(json=[{"id": 1}]))
            srv.route("POST", "/slow", Reply(status=201, delay=0.3))
            srv.route("GET", "/boom", lambda req: Reply(status=500, body=req.path))
            ... httpx.get(srv.url + "/users") ...
            assert srv.requests[-1].headers.get_all("x-multi") == ["a", "b"]

    Routes: ``method`` is an HTTP method or ``"*"``; ``path`` is an exact
    decoded path, a prefix ending in ``"*"``, or a compiled regex (full
    match).  The most recently added matching route wins.  Unmatched
    requests get the echo handler (status 200, JSON of the request).

    A callable handler receives the :class:`RecordedRequest` and returns a
    :class:`Reply` (or a str/bytes body, a JSON-able value, or None for 204);
    it may also be ``async``.  It runs on the server's event loop thread.
    If it raises, the client gets a 500 and the error is kept in
    :attr:`errors`.

    HTTPS: ``tls=True`` with an ``ssl_context`` (a server context), or a
    subclass whose :meth:`_tls_context` makes one (the test harness makes a
    self-signed certificate).
    """

    def __init__(
        self,
        *,
        tls: bool = False,
        host: str = HOST,
        port: int = 0,
        name: str = "MockServer",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.tls = tls
        self.name = name
        self._ssl_context = ssl_context
        self.host = host
        self._want_port = port
        self.port: int | None = None
        self.requests: list[RecordedRequest] = []
        self.errors: list[str] = []
        self._routes: list[_Route] = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.ServerRunner | None = None
        self._stopping: asyncio.Event | None = None

    # ---------------------------------------------------------------- public
    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("MockServer is not started")
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def authority(self) -> str:
        """``host:port``, e.g. for ``kong.service.target``."""
        if self.port is None:
            raise RuntimeError("MockServer is not started")
        return f"{self.host}:{self.port}"

    def url_for(self, path: str) -> str:
        return self.url + (path if path.startswith("/") else "/" + path)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @overload
    def route(self, method: str, path: PathSpec, handler: None = None) -> Callable[[RouteFn], RouteFn]: ...
    @overload
    def route(self, method: str, path: PathSpec, handler: Handler) -> Handler: ...
    def route(self, method: str, path: PathSpec, handler: Handler | None = None) -> Handler | Callable[[RouteFn], RouteFn]:
        """Register ``handler`` for ``method`` + ``path``.

        Without ``handler`` it returns a decorator::

            @srv.route("POST", "/items")
            def create(req): return Reply(status=201, json=req.json())
        """
        if handler is None:

            def deco(fn: RouteFn) -> RouteFn:
                self.route(method, path, fn)
                return fn

            return deco
        if not isinstance(handler, Reply) and not callable(handler):
            raise TypeError(f"handler must be a Reply or a callable, got {handler!r}")
        with self._lock:
            self._routes.append(_Route(method.upper(), path, handler))
        return handler

    def clear_routes(self) -> None:
        with self._lock:
            self._routes.clear()

    def clear(self) -> None:
        """Forget recorded requests and handler errors (routes stay)."""
        with self._lock:
            self.requests.clear()
            self.errors.clear()

    @property
    def last_request(self) -> RecordedRequest:
        with self._lock:
            if not self.requests:
                raise AssertionError("the mock server received no request")
            return self.requests[-1]

    def requests_for(self, path: PathSpec, method: str | None = None) -> list[RecordedRequest]:
        """Recorded requests whose path matches (same rules as :meth:`route`)."""
        matcher = _Route((method or "*").upper(), path, Reply())
        with self._lock:
            return [r for r in self.requests if matcher.matches(r)]

    def wait_for_requests(self, count: int = 1, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least ``count`` requests were recorded; return them all."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"expected {count} request(s) within {timeout}s, got {len(self.requests)}"
                    )
                self._cond.wait(remaining)
            return list(self.requests)

    # ------------------------------------------------------------- lifecycle
    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("MockServer already started")
        ssl_ctx = self._tls_context() if self.tls else None

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._want_port))
        except OSError:
            sock.close()
            self._cleanup()
            raise
        self.port = sock.getsockname()[1]

        loop = asyncio.new_event_loop()
        self._loop = loop
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._thread_main, args=(loop, ready), name=f"{self.name}:{self.port}", daemon=True
        )
        self._thread.start()
        ready.wait()
        fut = asyncio.run_coroutine_threadsafe(self._async_start(sock, ssl_ctx), loop)
        try:
            fut.result(timeout=10)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            self._cleanup()
            return
        try:
            if thread.is_alive() and not loop.is_closed():
                fut = asyncio.run_coroutine_threadsafe(self._async_stop(), loop)
                # best effort: the loop is stopped and the thread joined anyway
                with contextlib.suppress(Exception):
                    fut.result(timeout=10)
                loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
        finally:
            if not thread.is_alive() and not loop.is_closed():
                loop.close()
            self._loop = None
            self._thread = None
            self._runner = None
            self._cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self.port is not None else "not started"
        return f"<MockServer {where} requests={len(self.requests)}>"

    # ------------------------------------------------------------ subclasses
    def _tls_context(self) -> ssl.SSLContext:
        """The server's TLS context when ``tls=True``."""
        if self._ssl_context is None:
            raise RuntimeError("MockServer(tls=True) needs an ssl_context")
        return self._ssl_context

    def _cleanup(self) -> None:
        """Called once the server stopped (or failed to start)."""

    def _record(self, request: web.BaseRequest, body: bytes) -> Any:
        """The record of one request (what :attr:`requests` holds)."""
        raw_target = request.raw_path
        path_part, _, query_string = raw_target.partition("?")
        peer = request.transport.get_extra_info("peername") if request.transport else None
        return RecordedRequest(
            method=request.method,
            path=unquote(path_part, errors="surrogateescape"),
            raw_path=raw_target,
            query_string=query_string,
            headers=Headers(
                (k.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape"))
                for k, v in request.raw_headers
            ),
            body=body,
            version=f"HTTP/{request.version.major}.{request.version.minor}",
            scheme="https" if self.tls else "http",
            remote=f"{peer[0]}:{peer[1]}" if peer else None,
        )

    # --------------------------------------------------------------- internal

    @staticmethod
    def _thread_main(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            # Cancel whatever is left so the loop can be closed cleanly.
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())

    async def _async_start(self, sock: socket.socket, ssl_ctx: ssl.SSLContext | None) -> None:
        self._stopping = asyncio.Event()
        server = web.Server(self._handle, access_log=None)
        runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.SockSite(runner, sock, ssl_context=ssl_ctx)
        await site.start()
        self._runner = runner

    async def _async_stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        # let hanging / delayed handlers observe the stop and drop their connections
        await asyncio.sleep(0.01)
        if self._runner is not None:
            await self._runner.cleanup()

    async def _sleep(self, seconds: float) -> bool:
        """Sleep on the server loop; False if the server is stopping meanwhile."""
        assert self._stopping is not None
        if self._stopping.is_set():
            return False
        if seconds <= 0:
            return True
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            return True
        return False

    @staticmethod
    def _abort(request: web.BaseRequest) -> None:
        transport = request.transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # SO_LINGER 0: close() sends an RST instead of a FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        rec = self._record(request, await request.content.read())
        with self._cond:
            self.requests.append(rec)
            self._cond.notify_all()
            routes = list(self._routes)

        handler: Handler | None = None
        for r in reversed(routes):
            if r.matches(rec):
                handler = r.handler
                break

        try:
            if handler is None:
                reply = Reply(json=rec.to_echo())
            elif isinstance(handler, Reply):
                reply = handler
            else:
                result = handler(rec)
                if inspect.isawaitable(result):
                    result = await result
                reply = _coerce_reply(result)
        except Exception:  # noqa: BLE001 - a test's handler bug becomes a 500 the test can read
            tb = traceback.format_exc()
            with self._lock:
                self.errors.append(tb)
            return web.Response(status=500, text=f"mock handler error:\n{tb}")

        if reply.hang:
            await self._sleep(float("inf"))
            self._abort(request)
            return web.Response(status=599)  # never actually sent

        if not await self._sleep(reply.delay):
            self._abort(request)
            return web.Response(status=599)

        payload = reply.body_bytes()
        resp = web.StreamResponse(status=reply.status, reason=reply.reason)
        has_ct = chunked = False
        for k, v in reply.header_pairs():
            low = k.lower()
            if low == "content-length":
                continue  # always computed from the payload
            if low == "transfer-encoding":
                chunked = "chunked" in v.lower()
                continue
            if low == "content-type":
                has_ct = True
            resp.headers.add(k, v)
        if not has_ct and reply.json is not None:
            resp.headers["Content-Type"] = "application/json"
        if reply.reset:
            if not payload:
                payload = b"x" * 1024
            resp.content_length = len(payload)
            await resp.prepare(request)
            await resp.write(payload[: max(1, len(payload) // 2)])
            await asyncio.sleep(0.01)  # let the partial body leave the socket
            self._abort(request)
            return resp
        no_body = request.method == "HEAD" or reply.status in (204, 304) or reply.status < 200
        if chunked and not no_body:
            resp.enable_chunked_encoding()
        elif not (reply.status in (204, 304) or reply.status < 200):
            resp.content_length = len(payload)
        await resp.prepare(request)
        if payload and not no_body:
            await resp.write(payload)
        await resp.write_eof()
        return resp
