"""The one check of "an absolute http:// or https:// URL with a host", used
wherever a URL comes from a workflow or a user (`call` nodes, `datakit run`,
the offline runner's upstream)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import SplitResult, quote, urlsplit

__all__ = ["default_port", "escape_uri", "http_url", "wire_url"]

# What a URI cannot hold as it is (RFC 3986): space and other controls,
# non-ASCII, and `"<>\^`{|}`. Sent raw, a space splits the request line
# (`GET /a b HTTP/1.1`: the upstream sees the target `/a`).
_NOT_URI = re.compile(r'[^!-~]|["<>\\^`{|}]')
_URI_KEEP = "!#$%&'()*+,/:;=?@[]~"  # reserved characters and `%`: escapes stay as written
_AUTHORITY_END = re.compile(r"[/?#]")
_NOT_AUTHORITY = re.compile(r'[\x00-\x20\x7f"<>\\^`{|}]')  # non-ASCII host names pass, as before


def http_url(url: Any) -> SplitResult | None:
    """`url` split into its parts when it is a string naming an http or https
    scheme and a host; None otherwise (also for what urlsplit refuses, such as
    an unclosed IPv6 bracket)."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return None
    return parts if ok else None


def default_port(parts: SplitResult) -> int:
    """The URL's port, or the scheme's default. Raises ValueError for a port
    that is not a number from 0 to 65535."""
    return parts.port or (443 if parts.scheme == "https" else 80)


def wire_url(url: str) -> str:
    """The URL as sent: what a URI cannot hold in the path, query or
    fragment percent-encoded (UTF-8), as browsers do; everything else,
    escapes included, as written. Tab, CR and LF are dropped first, as
    `urlsplit` and yarl drop them. Raises ValueError for a space, a
    control or one of `"<>\\^`{|}` in the scheme or authority (`http://a b/`),
    and for a lone surrogate that no byte decodes to."""
    if _NOT_URI.search(url) is None:
        return url  # the common case
    url = url.replace("\t", "").replace("\r", "").replace("\n", "")
    start = url.find("://")
    start = start + 3 if start >= 0 else 0
    end = _AUTHORITY_END.search(url, start)
    split = end.start() if end else len(url)
    head, rest = url[:split], url[split:]
    if _NOT_AUTHORITY.search(head):
        raise ValueError(f"invalid character in the URL's host part: {head!r}")
    return head + escape_uri(rest)


def escape_uri(text: str) -> str:
    """`text` (a path, maybe with query and fragment) with what a URI cannot
    hold percent-encoded as UTF-8; reserved characters and escapes (`%`)
    stay as written. Kong's `kong.tools.uri.escape` keeps the same."""
    return quote(text, safe=_URI_KEEP, errors="surrogateescape")
