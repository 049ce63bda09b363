"""httpx clients preconfigured for talking through a local mitmdump."""

from __future__ import annotations

import os
import ssl
from typing import Any

import httpx

__all__ = ["DEFAULT_TIMEOUT", "async_client", "client", "ssl_context"]

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def _kwargs(proxy_url: str | None, kw: dict[str, Any]) -> dict[str, Any]:
    kw.setdefault("trust_env", False)
    kw.setdefault("timeout", DEFAULT_TIMEOUT)
    if proxy_url is not None:
        kw.setdefault("proxy", proxy_url)
    verify = kw.get("verify")
    if isinstance(verify, (str, os.PathLike)):
        kw["verify"] = ssl_context(verify)
    return kw


def ssl_context(cafile: str | os.PathLike[str]) -> ssl.SSLContext:
    """A client SSL context trusting the CA certificate(s) in ``cafile``.

    (httpx >= 0.28 deprecates ``verify=<path>``; the clients below convert a
    path given as ``verify=`` with this.)
    """
    return ssl.create_default_context(cafile=os.fspath(cafile))


def client(proxy_url: str | None = None, **kw: Any) -> httpx.Client:
    """An ``httpx.Client`` sending through ``proxy_url`` (None: direct).

    Defaults: ``trust_env=False`` (ignore HTTP(S)_PROXY from the environment),
    10 s timeout (5 s connect).  Any ``httpx.Client`` keyword can be passed,
    e.g. ``verify=mitm.ca_cert_path`` (a path is turned into an SSL context) for HTTPS through
    mitmproxy, or ``base_url=...``.
    """
    return httpx.Client(**_kwargs(proxy_url, kw))


def async_client(proxy_url: str | None = None, **kw: Any) -> httpx.AsyncClient:
    """Like :func:`client`, as an ``httpx.AsyncClient`` (use ``async with``)."""
    return httpx.AsyncClient(**_kwargs(proxy_url, kw))
