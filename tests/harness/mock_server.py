"""A real HTTP/1.1 (optionally HTTPS) server on 127.0.0.1 for integration tests.

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
import json as _json
import re
import shutil
import socket
import ssl
import struct
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload
from urllib.parse import parse_qs, unquote

from aiohttp import web

from .net import HOST
from .tls import generate_self_signed

__all__ = ["Headers", "MockServer", "RecordedRequest", "Reply"]


# --------------------------------------------------------------------------- #
# Headers / recorded requests
# --------------------------------------------------------------------------- #


class Headers(Sequence[tuple[str, str]]):
    """An ordered list of ``(name, value)`` pairs, exactly as received.

    Names keep their original case and repeated headers stay separate pairs.
    Lookups by name are case-insensitive::

        h.get("content-type")        # first value or None
        h.get_all("x-multi")         # every value, in order
        h["X-One"]                   # first value, KeyError if absent
        h[0]                         # first pair
        "accept" in h                # case-insensitive name test
        h.to_dict()                  # {lowercase name: str | [str, ...]}
    """

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._pairs: list[tuple[str, str]] = [(str(k), str(v)) for k, v in pairs]

    # Sequence protocol -----------------------------------------------------
    @overload
    def __getitem__(self, key: int) -> tuple[str, str]: ...
    @overload
    def __getitem__(self, key: slice) -> list[tuple[str, str]]: ...
    @overload
    def __getitem__(self, key: str) -> str: ...
    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, str):
            values = self.get_all(key)
            if not values:
                raise KeyError(key)
            return values[0]
        return self._pairs[key]

    def __len__(self) -> int:
        return len(self._pairs)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._pairs)

    def __contains__(self, item: object) -> bool:
        if isinstance(item, str):
            low = item.lower()
            return any(k.lower() == low for k, _ in self._pairs)
        return item in self._pairs

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._pairs == other._pairs
        if isinstance(other, list):
            return self._pairs == [tuple(p) for p in other]
        return NotImplemented

    def __repr__(self) -> str:
        return f"Headers({self._pairs!r})"

    # Lookups -----------------------------------------------------------------
    def get(self, name: str, default: str | None = None) -> str | None:
        values = self.get_all(name)
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        low = name.lower()
        return [v for k, v in self._pairs if k.lower() == low]

    def names(self) -> list[str]:
        """Header names as received (original case, with repeats)."""
        return [k for k, _ in self._pairs]

    def items(self) -> list[tuple[str, str]]:
        return list(self._pairs)

    def to_dict(self) -> dict[str, str | list[str]]:
        """Lowercase names; single values as str, repeated ones as a list."""
        out: dict[str, str | list[str]] = {}
        for k, v in self._pairs:
            low = k.lower()
            if low not in out:
                out[low] = v
            else:
                prev = out[low]
                out[low] = [*prev, v] if isinstance(prev, list) else [prev, v]
        return out


@dataclass
class RecordedRequest:
    """One request as the mock server received it."""

    method: str
    path: str  # percent-decoded path, without the query
    raw_path: str  # request target as sent (path + "?" + query), undecoded
    query_string: str  # raw query string (no leading "?"), undecoded
    headers: Headers
    body: bytes
    version: str = "HTTP/1.1"
    scheme: str = "http"
    remote: str | None = None  # client "ip:port"
    received_at: float = field(default_factory=time.monotonic)

    @property
    def raw_query(self) -> str:
        return self.query_string

    @property
    def query(self) -> dict[str, list[str]]:
        """Decoded query: every key maps to the list of its values (blank kept)."""
        return parse_qs(self.query_string, keep_blank_values=True)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return _json.loads(self.body)

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    def to_echo(self) -> dict[str, Any]:
        """The JSON document the default echo handler answers with."""
        query: dict[str, str | list[str]] = {
            k: (v[0] if len(v) == 1 else v) for k, v in self.query.items()
        }
        return {
            "method": self.method,
            "path": self.path,
            "raw_path": self.raw_path,
            "query": query,
            "raw_query": self.query_string,
            "headers": self.headers.to_dict(),
            "raw_headers": [list(p) for p in self.headers],
            "body": self.body.decode("utf-8", "replace"),
        }


# --------------------------------------------------------------------------- #
# Replies
# --------------------------------------------------------------------------- #

HeadersLike = Mapping[str, str] | Sequence[tuple[str, str]]


@dataclass
class Reply:
    """A static response description.

    ``json`` (when not None) is serialized as the body with
    ``Content-Type: application/json`` unless ``headers`` sets one; otherwise
    ``body`` (str or bytes) is sent as is.  ``headers`` may be a mapping or a
    list of pairs (for repeated headers).  ``delay`` (seconds) is awaited on
    the server loop before answering, so concurrent delayed requests overlap.

    Faults: ``reset=True`` sends the headers (with the full Content-Length)
    and part of the body, then aborts the TCP connection (RST).
    ``hang=True`` never answers; the connection is dropped when the server
    stops.
    """

    status: int = 200
    json: Any = None
    body: bytes | str | None = None
    headers: HeadersLike | None = None
    delay: float = 0.0
    reset: bool = False
    hang: bool = False
    reason: str | None = None

    def header_pairs(self) -> list[tuple[str, str]]:
        if self.headers is None:
            return []
        if isinstance(self.headers, Mapping):
            return [(str(k), str(v)) for k, v in self.headers.items()]
        return [(str(k), str(v)) for k, v in self.headers]

    def body_bytes(self) -> bytes:
        if self.json is not None:
            return _json.dumps(self.json).encode()
        if self.body is None:
            return b""
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return bytes(self.body)


Handler = Reply | Callable[[RecordedRequest], Any]
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
    """

    def __init__(self, *, tls: bool = False, host: str = HOST, port: int = 0) -> None:
        self.tls = tls
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
        self._tmpdir: Path | None = None
        self.ca_pem_path: Path | None = None
        self.cert_pem_path: Path | None = None
        self.key_pem_path: Path | None = None

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

    def route(self, method: str, path: PathSpec, handler: Handler | None = None):
        """Register ``handler`` for ``method`` + ``path``.

        Without ``handler`` it returns a decorator::

            @srv.route("POST", "/items")
            def create(req): return Reply(status=201, json=req.json())
        """
        if handler is None:

            def deco(fn: Callable[[RecordedRequest], Any]):
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
    def start(self) -> MockServer:
        if self._thread is not None:
            raise RuntimeError("MockServer already started")
        ssl_ctx = None
        if self.tls:
            self._tmpdir = Path(tempfile.mkdtemp(prefix="mockserver-tls-"))
            files = generate_self_signed(self._tmpdir)
            self.ca_pem_path = files.ca_pem_path
            self.cert_pem_path = files.cert_pem_path
            self.key_pem_path = files.key_pem_path
            ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_ctx.load_cert_chain(files.cert_pem_path, files.key_pem_path)
            ssl_ctx.set_alpn_protocols(["http/1.1"])

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._want_port))
        except OSError:
            sock.close()
            self._cleanup_tmp()
            raise
        self.port = sock.getsockname()[1]

        loop = asyncio.new_event_loop()
        self._loop = loop
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._thread_main, args=(loop, ready), name=f"MockServer:{self.port}", daemon=True
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
            self._cleanup_tmp()
            return
        try:
            if thread.is_alive() and not loop.is_closed():
                fut = asyncio.run_coroutine_threadsafe(self._async_stop(), loop)
                with contextlib.suppress(Exception):  # pragma: no cover - best effort
                    fut.result(timeout=10)
                loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
        finally:
            if not thread.is_alive() and not loop.is_closed():
                loop.close()
            self._loop = None
            self._thread = None
            self._runner = None
            self._cleanup_tmp()

    def __enter__(self) -> MockServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self.port is not None else "not started"
        return f"<MockServer {where} requests={len(self.requests)}>"

    # --------------------------------------------------------------- internal
    def _cleanup_tmp(self) -> None:
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

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
        body = await request.content.read()
        raw_target = request.raw_path
        path_part, _, query_string = raw_target.partition("?")
        peer = request.transport.get_extra_info("peername") if request.transport else None
        rec = RecordedRequest(
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
        except Exception:  # noqa: BLE001 - a handler's bug becomes a 500 the test sees
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
