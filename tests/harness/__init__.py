"""Integration test harness: real mitmdump processes, real local HTTP servers.

Everything binds to 127.0.0.1.  Main pieces:

- :func:`free_port`, :func:`wait_for_port`
- :class:`MockServer` / :class:`Reply` / :class:`RecordedRequest` / :class:`Headers`:
  a threaded aiohttp server that records requests and serves scripted replies
  (delays, connection resets, hangs; optional TLS).
- :class:`Mitmdump`: a real ``mitmdump -s addon/datakit.py`` subprocess.
- :func:`client` / :func:`async_client`: httpx clients going through a proxy.
- pytest fixtures in :mod:`tests.harness.fixtures` (enable with
  ``pytest_plugins = ["tests.harness.fixtures"]``).
"""

from .clients import DEFAULT_TIMEOUT, async_client, client, ssl_context
from .mitmdump import (
    DEFAULT_READY_PATTERN,
    DEFAULT_SCRIPT,
    MITMDUMP,
    REPO,
    Mitmdump,
    MitmdumpError,
    ensure_mitm_ca,
    mitm_ca_cert,
)
from .mock_server import Headers, MockServer, RecordedRequest, Reply
from .net import HOST, free_port, port_accepts, wait_for_port
from .tls import CertFiles, generate_self_signed

run_and_expect_exit = Mitmdump.run_and_expect_exit

__all__ = [
    "DEFAULT_READY_PATTERN",
    "DEFAULT_SCRIPT",
    "DEFAULT_TIMEOUT",
    "HOST",
    "MITMDUMP",
    "REPO",
    "CertFiles",
    "Headers",
    "Mitmdump",
    "MitmdumpError",
    "MockServer",
    "RecordedRequest",
    "Reply",
    "async_client",
    "client",
    "ensure_mitm_ca",
    "free_port",
    "generate_self_signed",
    "mitm_ca_cert",
    "port_accepts",
    "run_and_expect_exit",
    "ssl_context",
    "wait_for_port",
]
