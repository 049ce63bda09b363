"""The test harness's mock HTTP server: the package's one mock server
(`mitmdatakit.mock_server`) plus HTTPS with a self-signed certificate made
per server (``MockServer(tls=True)``; its CA in ``ca_pem_path``).

Routing, recording, scripted replies and faults (delays, connection
resets, hangs) are documented on :class:`mitmdatakit.mock_server.MockServer`.
"""

from __future__ import annotations

import shutil
import ssl
import tempfile
from pathlib import Path

from mitmdatakit import mock_server as _package
from mitmdatakit.mock_records import Headers, RecordedRequest, Reply

from .net import HOST
from .tls import generate_self_signed

__all__ = ["Headers", "MockServer", "RecordedRequest", "Reply"]


class MockServer(_package.MockServer):
    """A real HTTP/1.1 server on 127.0.0.1 running in a background thread;
    ``tls=True`` serves HTTPS with a fresh self-signed certificate."""

    def __init__(self, *, tls: bool = False, host: str = HOST, port: int = 0) -> None:
        super().__init__(tls=tls, host=host, port=port)
        self._tmpdir: Path | None = None
        self.ca_pem_path: Path | None = None
        self.cert_pem_path: Path | None = None
        self.key_pem_path: Path | None = None

    def _tls_context(self) -> ssl.SSLContext:
        self._tmpdir = Path(tempfile.mkdtemp(prefix="mockserver-tls-"))
        files = generate_self_signed(self._tmpdir)
        self.ca_pem_path = files.ca_pem_path
        self.cert_pem_path = files.cert_pem_path
        self.key_pem_path = files.key_pem_path
        ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_ctx.load_cert_chain(files.cert_pem_path, files.key_pem_path)
        ssl_ctx.set_alpn_protocols(["http/1.1"])
        return ssl_ctx

    def _cleanup(self) -> None:
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
