"""Flow lifecycles a workflow may meet, through a real mitmdump (one per
module, `stream_large_bodies=1k`), against a raw upstream:

- a WebSocket upgrade the upstream accepts (101) and a response-phase exit
  would answer otherwise: the flow is killed at once (mitmproxy cannot
  give the client another answer once the upstream switched protocols);
- a chunked response (no Content-Length) that mitmproxy starts streaming
  mid-body, for a workflow that changes the response: it went out already,
  so the flow is killed (the client sees the body cut) and the log says why.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import socket
import threading
import time

import pytest

from tests.reliability._support import SCRIPTS, settle, write_workflows


class RawUpstream:
    """`/ws…` accepts a WebSocket upgrade and sends one frame at once;
    anything else answers a 3 KB chunked event stream."""

    def __init__(self) -> None:
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._main, daemon=True).start()
        self._ready.wait(5)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            target = head.split(" ", 2)[1]
            if "/ws" in target:
                key = next(line.split(":", 1)[1].strip() for line in head.split("\r\n")
                           if line.lower().startswith("sec-websocket-key:"))
                accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
                writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n\x81\x05hello")
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
                for i in range(3):
                    event = f"data: {i} {'x' * 1000}\n\n".encode()
                    writer.write(b"%x\r\n%s\r\n" % (len(event), event))
                    await writer.drain()
                    await asyncio.sleep(0.05)
                writer.write(b"0\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(2)
        except (asyncio.IncompleteReadError, ConnectionError, StopIteration):
            pass
        finally:
            writer.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory, mitm_confdir):
    from tests.harness import Mitmdump

    upstream = RawUpstream()
    status = {"name": "S", "type": "jq", "input": "service_response.status", "jq": "{status: .}"}
    directory = write_workflows(tmp_path_factory.mktemp("wf"), {
        "late-exit": {"match": {"paths": ["/ws-late-exit"]}, "nodes": [
            status, {"name": "EXIT", "type": "exit", "status": 403, "inputs": {"body": "S"}}]},
        "late-header": {"match": {"paths": ["/events"]}, "nodes": [
            {"name": "H", "type": "jq", "input": "service_response.status", "jq": '{"x-status": (. | tostring)}',
             "output": "response.headers"}]},
    })
    with Mitmdump(directory, script=SCRIPTS, confdir=mitm_confdir, quiet=True,
                  options={"stream_large_bodies": "1k"}) as mitm:
        yield mitm, upstream


def exchange(mitm, request: bytes, wait: float = 5.0) -> tuple[float, bytes]:
    """Send raw bytes; read until the proxy closes (or `wait` passes)."""
    with socket.create_connection(("127.0.0.1", mitm.port), timeout=wait) as s:
        started = time.monotonic()
        s.sendall(request)
        received = b""
        try:
            while chunk := s.recv(65536):
                received += chunk
        except TimeoutError:
            pass
        return time.monotonic() - started, received


def test_a_late_exit_on_a_switched_upgrade_closes_at_once(env):
    mitm, upstream = env
    host = f"127.0.0.1:{upstream.port}"
    upgrade = (f"GET http://{host}/ws-late-exit HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    offset = mitm.log_offset()
    took, received = exchange(mitm, upgrade.encode())
    assert took < 1.5 and received == b""  # before: the 403, then the connection hung
    assert mitm.wait_for_log(r"answers 403 to a request the upstream switched to another protocol", since=offset)
    assert "Traceback" not in mitm.log_text()[offset:]
    assert settle(mitm, tasks_at_most=20)["runs"] == 0


def test_a_response_streamed_mid_body_is_cut_not_left_unchanged(env):
    mitm, upstream = env
    host = f"127.0.0.1:{upstream.port}"
    offset = mitm.log_offset()
    took, received = exchange(mitm, f"GET http://{host}/events HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    assert took < 1.5
    assert b"x-status" not in received.lower()
    assert not received.endswith(b"0\r\n\r\n")  # cut: the client can tell it is not the workflow's answer
    assert mitm.wait_for_log(r"workflow \S*late-header acts on the response, but mitmproxy streams its body",
                             since=offset)
    assert settle(mitm, tasks_at_most=20)["runs"] == 0
