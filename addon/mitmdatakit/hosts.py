"""The host `match.hosts` tests: the one the client asked for, normalized.

Kong routes on the client's Host. mitmproxy's reverse mode replaces the Host
header with the upstream's before any addon hook runs (unless
`keep_host_header` is set), so `ClientHost` takes that rewrite over: it
asks mitmproxy to keep the header, remembers the client's value and then
rewrites the header exactly as mitmproxy would have. Upstreams see what
they saw before; the matcher sees the client's Host.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mitmproxy.net.http import url
from mitmproxy.proxy.mode_specs import ReverseMode

CLIENT_HOST = "datakit_client_host"  # flow.metadata key: the client's Host in reverse mode
# flow.metadata key: every host the client's request named, before the reverse-mode rewrite
CLIENT_HOSTS = "datakit_client_hosts"
_SECURE_SCHEMES = frozenset({"https", "tls", "dtls", "http3", "quic"})


def normalize_host(authority: str) -> str:
    """`API.Test.:8080` → `api.test`: lowercase, no port, no trailing dot."""
    host = authority.strip()
    if host.startswith("["):  # IPv6 literal, maybe with a port
        end = host.find("]")
        return host[1:end].lower() if end > 0 else host.lower()
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".").lower()


def wildcard_host_test(pattern: str) -> Callable[[str], bool] | None:
    """The test of a normalized host against `*.example.com` (any depth) or
    `example.*`, as Kong's router has them; None for an exact name."""
    if pattern.startswith("*."):
        suffix = pattern[1:]
        return lambda host: host.endswith(suffix) and len(host) > len(suffix)
    if pattern.endswith(".*"):
        prefix = pattern[:-1]
        return lambda host: host.startswith(prefix) and len(host) > len(prefix)
    return None


def request_host(flow: Any) -> str:
    """The host a flow's request is for, as `match.hosts` tests it.

    Reverse mode: the client's Host (or HTTP/2 `:authority`). Other modes:
    the host mitmproxy sends the request to (absolute-form target or
    CONNECT host), which a Host header cannot contradict.
    """
    request = flow.request
    if isinstance(getattr(flow.client_conn, "proxy_mode", None), ReverseMode):
        client = flow.metadata.get(CLIENT_HOST)
        return normalize_host(client if client is not None else request.host_header or "")
    return normalize_host(request.host)


class AmbiguousHost(Exception):
    """The request names two hosts that select different workflows."""

    def __init__(self, host: str, other: str) -> None:
        super().__init__(f"the request names the hosts {host!r} and {other!r}")
        self.host = host
        self.other = other


def named_hosts(request: Any) -> tuple[str, ...]:
    """Every host a request names besides its destination: each Host field
    and the request target's authority (HTTP/1 absolute-form, HTTP/2
    `:authority`), as sent."""
    names = request.headers.get_all("host")
    authority = request.authority
    return (*names, authority) if authority else tuple(names)


def other_hosts(flow: Any, host: str) -> set[str]:
    """The normalized hosts the request names that are not `host` (its
    `request_host`). Any of them may be the host an upstream serves: in
    regular mode a Host header the destination honours (a shared server,
    "domain fronting"); in reverse mode a second Host field or an
    absolute-form target, which mitmproxy passes on."""
    names = flow.metadata.get(CLIENT_HOSTS)
    if names is None:
        names = named_hosts(flow.request)
    return {normalized for name in names if (normalized := normalize_host(name)) != host}


class ClientHost:
    """mitmproxy hooks that keep the client's Host visible in reverse mode."""

    def __init__(self) -> None:
        self.rewrite = False  # True: we do mitmproxy's reverse-mode Host rewrite
        self._user_keeps_host = False
        self._own_change = False

    def options_changed(self, options: Any, updated: set[str]) -> None:
        if self._own_change:
            return
        if "keep_host_header" in updated:
            self._user_keeps_host = bool(options.keep_host_header)
        if "keep_host_header" in updated or "mode" in updated:
            reverse = any(str(spec).startswith("reverse:") for spec in options.mode)
            self.rewrite = reverse and not self._user_keeps_host
            if self.rewrite and not options.keep_host_header:
                self._own_change = True
                try:
                    options.update(keep_host_header=True)
                finally:
                    self._own_change = False

    def requestheaders(self, flow: Any) -> None:
        if not self.rewrite or not isinstance(flow.client_conn.proxy_mode, ReverseMode):
            return
        flow.metadata[CLIENT_HOST] = flow.request.host_header or ""
        flow.metadata[CLIENT_HOSTS] = named_hosts(flow.request)
        server = flow.server_conn
        if server.address:  # what mitmproxy does when keep_host_header is off
            flow.request.host_header = url.hostport("https" if server.tls else "http", *server.address)

    def server_connect(self, data: Any) -> None:
        # with keep_host_header on, mitmproxy would send the client's SNI to
        # the reverse target; off, the target's name: keep the latter
        mode = data.client.proxy_mode
        if (
            self.rewrite
            and isinstance(mode, ReverseMode)
            and mode.scheme in _SECURE_SCHEMES
            and data.server.address == mode.address
        ):
            data.server.sni = mode.address[0]
