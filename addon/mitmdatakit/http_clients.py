"""The one owner of Datakit's aiohttp client sessions.

Two kinds of client, each a pooled session per event loop (a session binds
to the loop it was made in; a new loop, as in tests or a restarted proxy,
gets a new one):

- `CALLS`: what `call` nodes send with (keep-alive across flows, bodies
  decompressed for the node's outputs);
- `UPSTREAM`: what the offline runner proxies a service request with, acting
  as mitmproxy does (the upstream's content encoding kept, no headers added).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import aiohttp

__all__ = ["CALLS", "UPSTREAM", "HttpClients"]

CALLS = "calls"
UPSTREAM = "upstream"


def _settings(kind: str) -> dict[str, Any]:
    import aiohttp  # here, not at the top: most workflows make no calls

    if kind == CALLS:
        return {
            "connector": aiohttp.TCPConnector(limit=0, limit_per_host=256, ttl_dns_cache=300, keepalive_timeout=30),
            "auto_decompress": True,
            "trust_env": False,
            "skip_auto_headers": ("User-Agent",),
        }
    if kind == UPSTREAM:
        return {
            "connector": aiohttp.TCPConnector(limit=0),
            "auto_decompress": False,  # mitmproxy keeps the upstream's encoding
            "trust_env": False,
            "skip_auto_headers": ("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        }
    raise ValueError(f"unknown HTTP client kind {kind!r}")


class HttpClients:
    """Client sessions by kind, made on first use in the running loop."""

    def __init__(self) -> None:
        self._sessions: dict[str, tuple[aiohttp.ClientSession, asyncio.AbstractEventLoop]] = {}

    def session(self, kind: str = CALLS) -> aiohttp.ClientSession:
        import aiohttp

        loop = asyncio.get_running_loop()
        held = self._sessions.get(kind)
        if held is None or held[0].closed or held[1] is not loop:
            held = self._sessions[kind] = (aiohttp.ClientSession(**_settings(kind)), loop)
        return held[0]

    async def aclose(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for session, _ in sessions.values():
            if not session.closed:
                await session.close()
