"""Building mitmproxy messages: the one place a request (as a live-looking
`HTTPFlow`) or a response is made from a description, a URL or raw fields."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from mitmproxy import connection, http
from mitmproxy.connection import ConnectionState
from mitmproxy.net.http import status_codes
from mitmproxy.proxy.mode_specs import ProxyMode

from ..codecs import encode_body, encode_query, header_lookup
from ..errors import RequestError
from ..urls import default_port, http_url

__all__ = [
    "DEFAULT_LISTEN_PORT",
    "REQUEST_KEYS",
    "RESPONSE_KEYS",
    "RequestError",
    "build_flow",
    "build_response",
    "make_response",
    "request_flow",
]

DEFAULT_LISTEN_PORT = 8080
"""The port the simulated client connected to (mitmdump's default), which
`kong.request.port` reports."""

REQUEST_KEYS = frozenset({"method", "url", "headers", "body", "query", "http_version", "client"})
RESPONSE_KEYS = frozenset({"status", "reason", "headers", "body", "http_version"})


def _header_fields(headers: Any, what: str) -> list[tuple[str, str]]:
    """Header fields from a mapping (a value may be a list: repeated header)
    or a list of [name, value] pairs."""
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        pairs = [
            (name, item)
            for name, value in headers.items()
            for item in (value if isinstance(value, list) else [value])
            if item is not None
        ]
    elif isinstance(headers, (list, tuple)) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in headers):
        pairs = list(headers)
    else:
        raise RequestError(f"{what}: 'headers' must be a mapping or a list of [name, value] pairs")
    out = []
    for name, item in pairs:
        name, text = str(name), _scalar(item)
        if not name or any(c in name + text for c in "\r\n\0"):
            raise RequestError(f"{what}: invalid header {name!r} (empty name, or CR, LF or NUL in it)")
        out.append((name, text))
    return out


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _body_bytes(body: Any, fields: list[tuple[str, str]], what: str) -> tuple[bytes, list[tuple[str, str]]]:
    """A description's body: a string is sent as is; anything else is JSON
    (Content-Type: application/json unless the headers set one), or a form
    when the headers say application/x-www-form-urlencoded."""
    if body is None:
        return b"", fields
    if isinstance(body, bytes):
        return body, fields
    content_type = header_lookup({k: v for k, v in fields}, "content-type")
    try:
        data, set_type = encode_body(body, content_type)
    except (TypeError, ValueError) as e:
        raise RequestError(f"{what}: body cannot be encoded: {e}") from None
    if set_type is not None:
        fields = [*fields, ("Content-Type", set_type)]
    return data, fields


def _http_version(value: Any) -> str:
    text = str(value or "HTTP/1.1").upper()
    if not text.startswith("HTTP/"):
        text = "HTTP/" + text
    if text in ("HTTP/2", "HTTP/2.0"):
        return "HTTP/2.0"
    if text in ("HTTP/1.1", "HTTP/1.0"):
        return text
    raise RequestError(f"unsupported http_version {value!r} (HTTP/1.0, HTTP/1.1 or HTTP/2)")


def build_flow(
    method: str = "GET",
    url: str = "http://localhost/",
    headers: Any = None,
    body: Any = None,
    *,
    query: Mapping[str, Any] | None = None,
    http_version: str = "HTTP/1.1",
    client_ip: str = "127.0.0.1",
    client_port: int = 50000,
    listen_port: int = DEFAULT_LISTEN_PORT,
) -> http.HTTPFlow:
    """A live-looking HTTPFlow for `method url`, as mitmproxy sees a request
    sent through it in regular proxy mode (client on `client_ip`, proxy
    listening on `listen_port`).

    `headers`: a mapping (list values repeat a header) or [name, value]
    pairs; a `Host` header is added unless given (not for HTTP/2).
    `body`: str or bytes as is; other values JSON-encoded (with
    `Content-Type: application/json` unless the headers set one).
    `query`: merged into the URL's query string."""
    if not isinstance(url, str):
        raise RequestError(f"'url' must be a string, got {type(url).__name__}")
    parts = http_url(url)
    if parts is None:
        raise RequestError(f"invalid URL {url!r} (expected http://HOST/... or https://HOST/...)")
    if not isinstance(method, str) or not method.isalpha():
        raise RequestError(f"invalid method {method!r}")
    version = _http_version(http_version)
    scheme = parts.scheme
    host = parts.hostname
    assert host is not None  # http_url accepts only URLs with a host
    try:
        port = default_port(parts)
    except ValueError:
        raise RequestError(f"invalid port in URL {url!r}") from None
    path = parts.path or "/"
    raw_query = parts.query
    if query:
        extra = encode_query(dict(query))
        raw_query = f"{raw_query}&{extra}" if raw_query else extra
    if raw_query:
        path = f"{path}?{raw_query}"
    netloc = parts.netloc.rpartition("@")[2]

    fields = _header_fields(headers, "request")
    content, fields = _body_bytes(body, fields, "request")
    names = {k.lower() for k, _ in fields}
    if version != "HTTP/2.0" and "host" not in names:
        fields.insert(0, ("Host", netloc))
    if content and "content-length" not in names and "transfer-encoding" not in names:
        fields.append(("Content-Length", str(len(content))))

    now = time.time()
    request = http.Request(
        host=host,
        port=port,
        method=method.upper().encode(),
        scheme=scheme.encode(),
        authority=netloc.encode(),  # absolute-form request target (or :authority)
        path=path.encode("utf-8", "surrogateescape"),
        http_version=version.encode(),
        headers=http.Headers(_raw_fields(fields)),
        content=content,
        trailers=None,
        timestamp_start=now,
        timestamp_end=now,
    )
    tls = scheme == "https"
    client = connection.Client(
        peername=(client_ip, int(client_port)),
        sockname=("127.0.0.1", int(listen_port)),
        state=ConnectionState.OPEN,
        timestamp_start=now,
        tls=tls,
        timestamp_tls_setup=now if tls else None,
        sni=host if tls else None,
        tls_version="TLSv1.3" if tls else None,
        alpn=(b"h2" if version == "HTTP/2.0" else b"http/1.1") if tls else None,
        proxy_mode=ProxyMode.parse("regular"),
    )
    server = connection.Server(address=(host, port))
    flow = http.HTTPFlow(client, server, live=True)
    flow.request = request
    return flow


def request_flow(spec: Mapping[str, Any], *, where: str = "request") -> http.HTTPFlow:
    """A flow from a request description: `method` (GET), `url` (required),
    `headers`, `body` (string, or JSON), `query` (merged into the URL),
    `http_version` (HTTP/1.1) and `client: {ip, port}`."""
    if not isinstance(spec, Mapping):
        raise RequestError(f"{where}: a request description must be a mapping, got {type(spec).__name__}")
    unknown = sorted(set(spec) - REQUEST_KEYS)
    if unknown:
        raise RequestError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(REQUEST_KEYS))})")
    if "url" not in spec:
        raise RequestError(f"{where}: 'url' is required")
    client = spec.get("client") or {}
    if not isinstance(client, Mapping):
        raise RequestError(f"{where}: 'client' must be a mapping with 'ip' and/or 'port'")
    try:
        return build_flow(
            spec.get("method") or "GET",
            spec["url"],
            spec.get("headers"),
            spec.get("body"),
            query=spec.get("query"),
            http_version=spec.get("http_version") or "HTTP/1.1",
            client_ip=str(client.get("ip", "127.0.0.1")),
            client_port=int(client.get("port", 50000)),
        )
    except RequestError as e:
        raise RequestError(f"{where}: {e}") from None


def build_response(spec: Mapping[str, Any], *, where: str = "service response") -> http.Response:
    """An upstream response from `{status (200), headers, body, reason}`;
    the body as in `build_flow`."""
    if not isinstance(spec, Mapping):
        raise RequestError(f"{where}: a response description must be a mapping, got {type(spec).__name__}")
    unknown = sorted(set(spec) - RESPONSE_KEYS)
    if unknown:
        raise RequestError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(RESPONSE_KEYS))})")
    status = spec.get("status", 200)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise RequestError(f"{where}: 'status' must be a status code (100-599), got {status!r}")
    fields = _header_fields(spec.get("headers"), where)
    content, fields = _body_bytes(spec.get("body"), fields, where)
    if "content-length" not in {k.lower() for k, _ in fields}:
        fields.append(("Content-Length", str(len(content))))
    reason = spec.get("reason")
    response = make_response(
        status, (reason or "").encode() if reason else b"", _raw_fields(fields), content, _http_version(spec.get("http_version"))
    )
    if not reason:
        response.reason = status_codes.RESPONSES.get(status, "")
    return response


def make_response(
    status: int, reason: bytes, fields: list[tuple[bytes, bytes]], content: bytes, http_version: str = "HTTP/1.1", *, raw: bool = False
) -> http.Response:
    """A response stamped now; `raw`: `content` is the body as sent on the
    wire (still content-encoded), as mitmproxy holds an upstream's answer."""
    now = time.time()
    response = http.Response(
        http_version=http_version.encode(),
        status_code=status,
        reason=reason,
        headers=http.Headers(fields),
        content=None if raw else content,
        trailers=None,
        timestamp_start=now,
        timestamp_end=now,
    )
    if raw:
        response.raw_content = content
    return response


def _raw_fields(fields: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape")) for k, v in fields]
