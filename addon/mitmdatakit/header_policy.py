"""What a workflow's header map may set on a message it writes.

Framing and hop-by-hop headers (RFC 9110 §7.6.1, RFC 9112 §6) describe one
connection or how a body is delimited on it: the proxy (mitmproxy, or
aiohttp for `call`) owns them and computes them for the final message. A map
that sets them would let a merged header (the common `.headers *
$call.headers`) frame the body wrongly: a copied Content-Length makes the
upstream read the rest of the body as a second request (smuggling).

So every header-map write goes through `writable_headers`: such entries are
dropped (setting and `null` removal alike), with a debug log line naming
them, and the rest of the map is written as usual.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

logger = logging.getLogger("mitmdatakit")

HOP_BY_HOP_HEADERS = frozenset({
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
})
"""Framing and hop-by-hop header names; every `proxy-*` name is one too."""

_PROXY_PREFIX = "proxy-"  # Proxy-Authorization, Proxy-Authenticate, ...


def is_hop_by_hop(name: str) -> bool:
    lname = name.lower()
    return lname in HOP_BY_HOP_HEADERS or lname.startswith(_PROXY_PREFIX)


def writable_headers(value: Any, where: str, also_drop: Iterable[str] = ()) -> Any:
    """The header map without the entries a map may not set (see the module
    doc), plus the names its own Connection header lists (those were meant
    for the hop the map came from). `also_drop`: more lowercase names the
    caller owns (a call's Host). Anything but a mapping is returned as is
    for the codec to refuse. Without such entries the map itself is
    returned (no copy)."""
    if not isinstance(value, Mapping):
        return value
    drop: set[str] | None = None
    for name in value:
        if isinstance(name, str):
            lname = name.lower()
            if lname in HOP_BY_HOP_HEADERS or lname.startswith(_PROXY_PREFIX) or lname in also_drop:
                if drop is None:
                    drop = set()
                drop.add(name)
    if drop is None:
        return value
    listed = _connection_tokens(value, drop)
    if listed:
        drop.update(name for name in value if isinstance(name, str) and name.lower() in listed)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("Datakit: %s: header map entries not written (framing/hop-by-hop, set by the proxy): %s",
                     where, ", ".join(name for name in value if name in drop))
    return {name: item for name, item in value.items() if name not in drop}


def _connection_tokens(value: Mapping[Any, Any], dropped: Iterable[str]) -> frozenset[str]:
    """Lowercase names listed in the map's own Connection header (any case)."""
    tokens: set[str] = set()
    for name in dropped:
        if name.lower() == "connection":
            item = value[name]
            for text in item if isinstance(item, list) else [item]:
                if isinstance(text, str):
                    tokens.update(t.strip().lower() for t in text.split(",") if t.strip())
    return frozenset(tokens)
