"""Reliability, abandoned clients: a client that disconnects cancels its run.

mitmproxy does not deliver a client's disconnect while the `request` hook
is awaited; Datakit watches the client connection itself and aborts the
run's calls (addon/mitmdatakit/disconnects.py). Measured here through a
real mitmdump, at the upstream the call talks to: it sees its connection
closed within a second of the client leaving, and a neighbour workflow
calling the same host is not starved by hundreds of abandoned runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from dataclasses import dataclass

from tests.reliability._support import SCRIPTS, settle, write_workflows

HOLD_SECONDS = 10.0  # the slow endpoint answers after this, if still connected
ABORT_WITHIN = 1.0  # the brief: in-flight calls are aborted within 1 s
ABANDONED = 300
FAST_FLOWS = 20
FAST_WITHIN = 2.0


@dataclass
class Held:
    arrived: float
    closed: float | None = None


class HoldingUpstream:
    """A raw HTTP/1.1 server: `/fast` answers at once; anything else is held
    for HOLD_SECONDS, recording when the caller closes the connection."""

    def __init__(self) -> None:
        self.held: list[Held] = []
        self.fast = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)
        self.port = 0

    def __enter__(self) -> HoldingUpstream:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=1024))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        path = head.split(b" ", 2)[1]
        if path.startswith(b"/fast"):
            with self._lock:
                self.fast += 1
        else:
            record = Held(time.monotonic())
            with self._lock:
                self.held.append(record)
            try:
                data = await asyncio.wait_for(reader.read(1), HOLD_SECONDS)
            except TimeoutError:
                data = None
            except ConnectionError:
                data = b""
            if data == b"":
                record.closed = time.monotonic()
                writer.close()
                return
        body = b'{"ok": true}'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    def wait_held(self, count: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.held) >= count:
                    break
            time.sleep(0.02)
        with self._lock:
            return len(self.held)


def _workflows(upstream: HoldingUpstream) -> dict[str, dict]:
    def call_exit(path: str) -> list[dict]:
        return [
            {"name": "CALL", "type": "call", "url": f"{upstream.url}{path}", "timeout": 30_000},
            {"name": "EXIT", "type": "exit", "inputs": {"body": "CALL.body"}},
        ]
    return {
        "slow": {"match": {"paths": ["/slow"]}, "nodes": call_exit("/slow")},
        "fast": {"match": {"paths": ["/fast"]}, "nodes": call_exit("/fast")},
    }


def _request(path: str) -> bytes:
    return f"GET http://app.test{path} HTTP/1.1\r\nHost: app.test\r\n\r\n".encode()


def test_disconnect_aborts_the_call_within_a_second(tmp_path, start_mitmdump):
    with HoldingUpstream() as upstream:
        mitm = start_mitmdump(write_workflows(tmp_path / "wf", _workflows(upstream)), script=SCRIPTS, quiet=True)
        client = socket.create_connection(("127.0.0.1", mitm.port))
        client.sendall(_request("/slow"))
        assert upstream.wait_held(1, timeout=10) == 1, mitm.log_tail()
        left = time.monotonic()
        client.close()

        deadline = left + HOLD_SECONDS
        while upstream.held[0].closed is None and time.monotonic() < deadline:
            time.sleep(0.01)
        closed = upstream.held[0].closed
        assert closed is not None, "the call was not aborted: the upstream held it until it answered"
        assert closed - left < ABORT_WITHIN, f"call aborted {closed - left:.2f} s after the client left"

        report = settle(mitm, tasks_at_most=10**6, timeout=5)
        assert report["runs"] == 0, report
        mitm.wait_for_log(r"workflow 00-slow abandoned.*: client disconnected", timeout=5)
        assert mitm.is_running()


async def _abandon(port: int, count: int, upstream: HoldingUpstream) -> None:
    """`count` clients send a slow request each; once the upstream holds
    them (or the call pool is full), all of them hang up."""
    conns = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port) for _ in range(count)))
    for _, writer in conns:
        writer.write(_request("/slow"))
    await asyncio.gather(*(w.drain() for _, w in conns))
    # aiohttp's pool allows 256 connections per host: the rest wait in it
    await asyncio.to_thread(upstream.wait_held, 256, 15)
    for _, writer in conns:
        writer.transport.abort()


async def _fast_requests(port: int, count: int) -> list[float]:
    async def one() -> float:
        started = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_request("/fast"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HOLD_SECONDS * 2)
        writer.close()
        assert head.startswith(b"HTTP/1.1 200"), head
        return time.monotonic() - started
    return list(await asyncio.gather(*(one() for _ in range(count))))


def test_abandoned_runs_do_not_starve_a_neighbour(tmp_path, start_mitmdump):
    with HoldingUpstream() as upstream:
        mitm = start_mitmdump(write_workflows(tmp_path / "wf", _workflows(upstream)), script=SCRIPTS, quiet=True)
        asyncio.run(_abandon(mitm.port, ABANDONED, upstream))
        held = len(upstream.held)
        assert held >= 256, f"only {held} calls reached the upstream: the test did not fill the pool"

        elapsed = asyncio.run(_fast_requests(mitm.port, FAST_FLOWS))
        assert max(elapsed) < FAST_WITHIN, f"neighbour answered in up to {max(elapsed):.2f} s: starved"

        # every abandoned call was aborted, none waited for its answer
        time.sleep(ABORT_WITHIN)
        open_calls = [h for h in upstream.held if h.closed is None]
        assert not open_calls, f"{len(open_calls)} abandoned calls still open"
        report = settle(mitm, tasks_at_most=10**6, timeout=5)
        assert report["runs"] == 0, report
