"""Small networking helpers (127.0.0.1 only)."""

from __future__ import annotations

import socket
import time

HOST = "127.0.0.1"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    The port is released before returning, so another process may grab it in
    between; callers that start a server on it should retry on EADDRINUSE.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_accepts(port: int, host: str = HOST, timeout: float = 0.2) -> bool:
    """True if a TCP connection to host:port succeeds right now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(port: int, host: str = HOST, timeout: float = 10.0) -> None:
    """Block until host:port accepts TCP connections, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        if port_accepts(port, host):
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{host}:{port} did not accept connections within {timeout}s")
        time.sleep(0.05)
