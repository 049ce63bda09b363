"""A small, fast HTTP/1.1 upstream for the benchmarks (its own process).

Raw asyncio protocol, keep-alive, no framework: it must cost as little CPU
as possible so that mitmdump, not the upstream, is what is measured.

Routes (any method; the request body is read and ignored):

    /delay/MS[/...]   answers after MS milliseconds
    /api/a, /api/b    small JSON documents (the "combine two APIs" APIs)
    anything else     a small JSON document

A request with `X-Bench-Echo: 1` and `X-Bench-Tag: V` is answered at once
with `X-Seen-Tag: V` (to check what a workflow sent upstream; the load runs
send no X-Bench-Echo, so every arm gets the same answers).

Run: python -m bench.upstream --port PORT [--seconds LIMIT]
The process exits by itself after --seconds (default one hour).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal

API_A = json.dumps({"id": 42, "name": "Ada Lovelace", "email": "ada@example.test"}).encode()
API_B = json.dumps({"orders": [{"id": 1, "total": 12.5}, {"id": 2, "total": 3.25}], "count": 2}).encode()
DEFAULT = json.dumps({"ok": True, "service": "bench-upstream"}).encode()


def _response(body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\n" + extra + b"Content-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


R_A, R_B, R_DEFAULT = _response(API_A), _response(API_B), _response(DEFAULT)


class Upstream(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buf = b""
        self.pending = 0  # body bytes still to skip

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            if self.pending:
                n = min(self.pending, len(self.buf))
                self.buf = self.buf[n:]
                self.pending -= n
                if self.pending:
                    return
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end]
            self.buf = self.buf[end + 4:]
            line, _, rest = head.partition(b"\r\n")
            parts = line.split(b" ")
            path = parts[1] if len(parts) > 1 else b"/"
            lower = rest.lower()
            i = lower.find(b"content-length:")
            if i >= 0:
                j = lower.find(b"\r\n", i)
                self.pending = int(lower[i + 15 : j if j >= 0 else None])
            i = lower.find(b"x-bench-tag:") if b"x-bench-echo:" in lower else -1
            if i >= 0:  # echoed, so a benchmark can check what reached the upstream
                j = lower.find(b"\r\n", i)
                tag = rest[i + 12 : j if j >= 0 else None].strip()
                self._write(_response(DEFAULT, b"X-Seen-Tag: " + tag + b"\r\n"))
                continue
            self._answer(path)

    def _answer(self, path: bytes) -> None:
        if path.startswith(b"/delay/"):
            ms = int(path.split(b"/")[2].split(b"?")[0])
            asyncio.get_running_loop().call_later(ms / 1000, self._write, R_DEFAULT)
        elif path.startswith(b"/api/a"):
            self._write(R_A)
        elif path.startswith(b"/api/b"):
            self._write(R_B)
        else:
            self._write(R_DEFAULT)

    def _write(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)


async def serve(port: int, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Upstream, "127.0.0.1", port, backlog=1024, reuse_address=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print("ready", flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    server.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--seconds", type=float, default=3600.0)
    a = p.parse_args()
    asyncio.run(serve(a.port, a.seconds))
    os._exit(0)


if __name__ == "__main__":
    main()
