"""Start and stop a private redis-server for tests.

    async def test_x(redis_server):  # the fixture, registered in tests/conftest.py
        redis_server.port ...

`RedisServer` runs its own `redis-server` on a free 127.0.0.1 port, with no
persistence (`--save '' --appendonly no`) and its files in a temporary
directory, and stops it afterwards. Tests using the fixture are skipped (with
the reason) only when the `redis-server` binary is absent; CI installs it
with `apt-get install -y redis-server`.

`free_port()` gives a port with nothing listening (for "dead Redis" tests).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

__all__ = ["RedisServer", "free_port", "redis_binary", "redis_server", "require_redis", "running_redis"]


def redis_binary() -> str | None:
    return shutil.which("redis-server")


def require_redis() -> str:
    """The redis-server path, or skip the test with the reason."""
    path = redis_binary()
    if path is None:
        pytest.skip("redis-server binary not found (apt-get install -y redis-server)")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _command(sock: socket.socket, *args: str) -> bytes:
    payload = f"*{len(args)}\r\n".encode() + b"".join(
        f"${len(a.encode())}\r\n".encode() + a.encode() + b"\r\n" for a in args
    )
    sock.sendall(payload)
    return sock.recv(65536)


class RedisServer:
    """One redis-server process. `start()` waits until it answers PING."""

    def __init__(self, extra_args: Sequence[str] = (), config: str | None = None, binary: str | None = None):
        self.binary = binary or require_redis()
        self.extra_args = list(extra_args)
        self.config = config  # text of a config file (e.g. sentinel), optional
        self.host = "127.0.0.1"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def dir(self) -> Path:
        assert self._dir is not None
        return Path(self._dir.name)

    def command(self, *args: str) -> bytes:
        """Send one command over a fresh connection; the raw RESP reply."""
        with socket.create_connection((self.host, self.port), timeout=2) as s:
            return _command(s, *args)

    def _spawn(self) -> None:
        args = [self.binary]
        if self.config is not None:
            conf = self.dir / "redis.conf"
            conf.write_text(self.config.replace("{port}", str(self.port)))
            args.append(str(conf))
        args += [
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(self.dir),
            "--loglevel", "warning",
            *self.extra_args,
        ]  # fmt: skip
        with open(self.dir / "redis.log", "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)

    def _wait_ready(self, timeout: float) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                reply = self.command("PING")
                # any answer but "still loading" (e.g. -NOAUTH with requirepass)
                if reply and not reply.startswith(b"-LOADING"):
                    return True
            except OSError:
                pass
            time.sleep(0.02)
        return False

    def start(self, timeout: float = 10.0) -> RedisServer:
        self._dir = tempfile.TemporaryDirectory(prefix="datakit-redis-")
        for _ in range(3):  # the free port may be taken between probe and bind
            self.port = free_port()
            self._spawn()
            if self._wait_ready(timeout):
                return self
            self.kill()
        log = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"redis-server did not start: {log}")

    def kill(self) -> None:
        """Stop the process but keep the port and directory (see `restart`)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def restart(self, timeout: float = 10.0) -> RedisServer:
        """Start again on the same port (after `kill`), empty."""
        self.kill()
        deadline = time.monotonic() + timeout
        while True:
            self._spawn()
            if self._wait_ready(max(0.1, deadline - time.monotonic())):
                return self
            self.kill()
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not restart on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.kill()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running_redis(extra_args: Sequence[str] = (), config: str | None = None) -> Iterator[RedisServer]:
    """A started RedisServer for the duration of the block."""
    server = RedisServer(extra_args, config)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server shared by the tests of one module (use
    distinct keys per test); skipped when redis-server is not installed."""
    require_redis()
    with running_redis() as server:
        yield server
