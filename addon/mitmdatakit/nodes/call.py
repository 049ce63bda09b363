"""`call`: an HTTP request to a third-party API (async, pooled)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from ..codecs import (
    bytes_to_text,
    decode_body,
    decode_headers,
    encode_body,
    encode_headers,
    encode_query,
    header_lookup,
    json_type,
)
from ..context import NodeContext
from ..errors import BodyDecodeError, BodyTooLarge, NodeError
from ..header_policy import writable_headers
from ..ports import Ports, PortType
from ..urls import http_url, wire_url
from .base import Node, NodeSpec, WorkflowInfo, register

DEFAULT_TIMEOUT_MS = 60_000
# besides framing and hop-by-hop headers (aiohttp's), the call's URL sets Host
_CALL_OWNED = ("host",)


@register
class CallNode(Node):
    type_name = "call"
    traces_dispatch = True
    schema: ClassVar[Mapping[str, Any]] = {
        "properties": {
            "url": {"type": "string", "minLength": 1, "description": "The URL to call (the `url` input overrides it)."},
            "method": {
                "type": "string",
                "minLength": 1,
                "maxLength": 32,
                "pattern": "^[A-Z]+$",  # Kong refuses lower-case methods
                "default": "GET",
                "description": "HTTP method, upper-case letters only.",
            },
            "timeout": {"type": "integer", "minimum": 0, "maximum": 2147483646, "description": "Timeout in milliseconds."},
            "ssl_verify": {"type": "boolean", "default": True, "description": "Verify the server's TLS certificate."},
            "ssl_server_name": {"type": "string", "description": "SNI and certificate name to use."},
        },
        "required": ["url"],
    }

    def __init__(self, spec: NodeSpec, workflow: WorkflowInfo) -> None:
        super().__init__(spec, workflow)
        self.url: str = spec.attrs["url"]
        self._check_url(self.url, config=True)
        # parsed once, used while no input changes the URL (a URL that yarl
        # refuses still fails at run time, as a node error, like any other)
        try:
            self._url: URL | None = URL(wire_url(self.url), encoded=True)
        except ValueError:
            self._url = None
        self.method: str = self.attr("method", "GET").upper()
        if not self.method.isalpha():
            raise self.config_error(f"invalid HTTP method {self.method!r}", field="method")
        timeout_ms = self.attr("timeout", DEFAULT_TIMEOUT_MS)
        self.timeout = aiohttp.ClientTimeout(total=timeout_ms / 1000 if timeout_ms else None)
        self.ssl_verify: bool = self.attr("ssl_verify", True)
        self.ssl_server_name: str | None = self.attr("ssl_server_name")

    def _check_url(self, url: Any, config: bool = False) -> None:
        if http_url(url) is None:
            message = f"invalid URL {url!r} (expected http:// or https://)"
            if config:
                raise self.config_error(message, field="url")
            raise NodeError(message)

    def summary(self) -> str:
        url = str(self.spec.attrs.get("url"))
        scheme, sep, rest = url.partition("://")
        if sep and "@" in rest.split("/", 1)[0]:  # no credentials in pictures
            url = f"{scheme}://{rest.split('@', 1)[1]}"
        return f"{str(self.spec.attrs.get('method') or 'GET').upper()} {url}"

    def input_ports(self) -> Ports:
        return Ports(
            named={
                "body": PortType.ANY,
                "headers": PortType.MAP,
                "query": PortType.MAP,
                "url": PortType.STRING,
                "http_proxy": PortType.STRING,
                "https_proxy": PortType.STRING,
                "proxy_auth_username": PortType.STRING,
                "proxy_auth_password": PortType.STRING,
            }
        )

    def output_ports(self) -> Ports:
        return Ports(named={"body": PortType.ANY, "headers": PortType.MAP, "status": PortType.NUMBER, "raw_body": PortType.STRING})

    async def run(self, inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        url = inputs.get("url") or self.url
        if url is not self.url:  # the configured URL was checked when loading
            self._check_url(url)
        if inputs.get("query") is not None:
            url = _with_query(url, inputs["query"])

        header_map = inputs.get("headers") or {}
        headers = CIMultiDict(encode_headers(writable_headers(header_map, self.name, _CALL_OWNED)))
        data = None
        if inputs.get("body") is not None:
            data, content_type = encode_body(inputs["body"], header_lookup(header_map, "content-type"))
            if content_type is not None:
                headers["Content-Type"] = content_type

        is_https = url.lower().startswith("https:")
        proxy = inputs.get("https_proxy") if is_https else inputs.get("http_proxy")
        proxy_auth = None
        if proxy and inputs.get("proxy_auth_username") is not None:
            proxy_auth = aiohttp.BasicAuth(inputs["proxy_auth_username"], inputs.get("proxy_auth_password") or "")

        kwargs: dict[str, Any] = {}
        if is_https:
            if not self.ssl_verify:
                kwargs["ssl"] = False
            if self.ssl_server_name:
                kwargs["server_hostname"] = self.ssl_server_name
        if url is self.url and self._url is not None:
            target = self._url
        else:
            try:
                target = URL(wire_url(url), encoded=True)
            except ValueError as e:
                raise NodeError(f"invalid URL {_safe(url)!r}: {e}") from None
        session = ctx.services.http()
        try:
            async with session.request(
                self.method,
                target,
                headers=headers,
                data=data,
                proxy=proxy or None,
                proxy_auth=proxy_auth,
                timeout=self.timeout,
                allow_redirects=False,
                **kwargs,
            ) as resp:
                content = await _read_bounded(resp, ctx.services.body_size_limit, f"the response of {_safe(url)}")
                status = resp.status
                resp_headers = decode_headers((k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.raw_headers)
        except TimeoutError:
            raise NodeError(f"call to {_safe(url)} timed out after {self.timeout.total:g} s") from None
        except aiohttp.ClientError as e:
            raise NodeError(f"call to {_safe(url)} failed: {type(e).__name__}: {e}") from None

        found = resp_headers.get("content-type")
        content_type = found if isinstance(found, str) else None  # repeated: none applies
        if not 200 <= status < 300:
            # Kong's message (index.md, "Making node execution errors
            # visible"); the trace's `fail` event shows the answer
            raise NodeError(f"non-2XX response code: {status}", outputs={
                "status": status, "headers": resp_headers, "body": _error_body(content, content_type),
            })
        try:
            body = decode_body(content, content_type, strict=True)
        except BodyDecodeError as e:
            raise NodeError(f"call to {_safe(url)}: {e}") from None
        return {"status": status, "headers": resp_headers, "body": body, "raw_body": bytes_to_text(content)}


async def _read_bounded(resp: aiohttp.ClientResponse, limit: int, what: str) -> bytes:
    """The (decompressed) response body, read chunk by chunk and abandoned
    at limit + 1 bytes: an endless or inflating body fails fast and small."""
    if resp.content_length is not None and resp.content_length > limit and not resp.headers.get("content-encoding"):
        raise BodyTooLarge(what, limit)
    parts: list[bytes] = []
    total = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        total += len(chunk)
        if total > limit:
            raise BodyTooLarge(what, limit)
        parts.append(chunk)
    return b"".join(parts)


def _error_body(content: bytes, content_type: str | None) -> Any:
    """The body of a failed call, for its trace: decoded where it can be."""
    try:
        return decode_body(content, content_type)
    except Exception:  # noqa: BLE001 - only shown, never used
        return bytes_to_text(content)


def _with_query(url: str, query: Any) -> str:
    """The URL with its query replaced by the `query` input, as Kong's
    lua-resty-http does with a `query` parameter (an empty map: no query)."""
    if not isinstance(query, dict):
        raise NodeError(f"query must be a map, got {json_type(query)}")
    return urlunsplit(urlsplit(url)._replace(query=encode_query(query)))


def _safe(url: str) -> str:
    """The URL without credentials or query (these may be secrets)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
