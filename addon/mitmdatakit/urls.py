"""The one check of "an absolute http:// or https:// URL with a host", used
wherever a URL comes from a workflow or a user (`call` nodes, `datakit run`,
the offline runner's upstream)."""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, urlsplit

__all__ = ["default_port", "http_url"]


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
