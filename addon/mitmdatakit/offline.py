"""Running workflows without a proxy: `datakit run` and the pytest plugin.

A request (built here, or read from a saved mitmproxy flow file) becomes a
real `mitmproxy.http.HTTPFlow` and goes through the same `Engine` the addon
uses, with real `call` nodes. Then, if no exit fired and no node failed,
the service request is what mitmproxy would send upstream; with a given
service response (or a real upstream to send it to) the response phase
runs too and the client response is what the client would get.

The pieces:

- `build_flow(...)`: an HTTPFlow as mitmproxy builds it in regular proxy mode.
- `request_flow(spec)` / `load_request(arg)`: a flow from a description
  (`{method, url, headers, body, ...}`), a URL, or a description / flow file.
- `build_response(spec)` / `load_response(arg)`: an upstream response.
- `OfflineRunner`: runs a flow through the workflows; returns a `RunResult`.
- `load_workflows(source)`: a path, YAML/JSON text, a mapping, or Workflows.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mitmproxy import connection, http
from mitmproxy.connection import ConnectionState
from mitmproxy.proxy.mode_specs import ProxyMode

from .codecs import decode_body, decode_headers, decode_query, encode_body, encode_query, header_lookup, is_json_type
from .config import load_document, load_path, load_text
from .engine import METADATA_KEY, Engine
from .errors import DatakitError
from .header_policy import is_hop_by_hop
from .runtime import FlowRun, Services
from .scrub import scrub_message
from .workflow import Workflow

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "DEFAULT_LISTEN_PORT",
    "Message",
    "OfflineRunner",
    "RequestError",
    "RunResult",
    "UpstreamError",
    "build_flow",
    "build_response",
    "load_request",
    "load_response",
    "load_workflows",
    "message_json",
    "request_flow",
]

DEFAULT_LISTEN_PORT = 8080
"""The port the simulated client connected to (mitmdump's default), which
`kong.request.port` reports."""

DEFAULT_UPSTREAM_TIMEOUT = 30.0


REQUEST_KEYS = frozenset({"method", "url", "headers", "body", "query", "http_version", "client"})
RESPONSE_KEYS = frozenset({"status", "reason", "headers", "body", "http_version"})


class RequestError(DatakitError):
    """A request or response description that cannot be used."""


class UpstreamError(DatakitError):
    """The real upstream could not be reached (mitmproxy would answer 502)."""


# -- building messages ---------------------------------------------------------


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
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RequestError(f"invalid URL {url!r} (expected http://HOST/... or https://HOST/...)")
    if not isinstance(method, str) or not method.isalpha():
        raise RequestError(f"invalid method {method!r}")
    version = _http_version(http_version)
    scheme = parts.scheme
    host = parts.hostname
    try:
        port = parts.port or (443 if scheme == "https" else 80)
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
        headers=http.Headers([(k.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape")) for k, v in fields]),
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
    now = time.time()
    reason = spec.get("reason")
    response = http.Response(
        http_version=_http_version(spec.get("http_version")).encode(),
        status_code=status,
        reason=(reason or "").encode() if reason else b"",
        headers=http.Headers([(k.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape")) for k, v in fields]),
        content=content,
        trailers=None,
        timestamp_start=now,
        timestamp_end=now,
    )
    if not reason:
        response.reason = http.status_codes.RESPONSES.get(status, "")
    return response


def _read_description(path: Path) -> Any | None:
    """The parsed JSON/YAML document in `path`, or None when it is not one
    (e.g. a binary mitmproxy flow file)."""
    import yaml

    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    try:
        doc = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError):
        return None
    return doc if isinstance(doc, Mapping) else None


def _first_http_flow(path: Path) -> http.HTTPFlow:
    from mitmproxy import io
    from mitmproxy.exceptions import FlowReadException

    try:
        with path.open("rb") as f:
            for item in io.FlowReader(f).stream():
                if isinstance(item, http.HTTPFlow):
                    return item
    except FlowReadException as e:
        raise RequestError(f"{path}: not a request description (JSON/YAML) nor a mitmproxy flow file: {e}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise RequestError(f"{path}: not a request description (JSON/YAML) nor a mitmproxy flow file: {e}") from None
    raise RequestError(f"{path}: the flow file holds no HTTP flow")


def load_request(arg: str | os.PathLike[str]) -> http.HTTPFlow:
    """A flow from `datakit run --request ARG`: a URL (GET), a JSON/YAML
    request description file, or a saved mitmproxy flow file (its first
    HTTP flow's request; any response in it is dropped)."""
    text = os.fspath(arg)
    if text.startswith(("http://", "https://")):
        return build_flow("GET", text)
    path = Path(text)
    if not path.is_file():
        raise RequestError(f"{text}: no such file (and not an http:// or https:// URL)")
    doc = _read_description(path)
    if doc is not None:
        return request_flow(doc, where=str(path))
    saved = _first_http_flow(path)
    flow = saved.copy()  # a fresh id: the request id of this run
    flow.response = None
    flow.error = None
    flow.metadata.pop(METADATA_KEY, None)
    flow.live = True
    return flow


def load_response(arg: str | os.PathLike[str]) -> http.Response:
    """An upstream response from a JSON/YAML description file
    (`{status, headers, body}`) or a saved mitmproxy flow file (the first
    HTTP flow's response)."""
    path = Path(os.fspath(arg))
    if not path.is_file():
        raise RequestError(f"{path}: no such file")
    doc = _read_description(path)
    if doc is not None:
        return build_response(doc, where=str(path))
    saved = _first_http_flow(path)
    if saved.response is None:
        raise RequestError(f"{path}: the flow has no response")
    return saved.response.copy()


# -- reading results -------------------------------------------------------------


def _body_json(message: http.Message) -> dict[str, Any]:
    """`body` as Datakit decodes it (JSON for JSON content types, else text);
    bodies that are not UTF-8 text as `body_base64`."""
    content = message.get_content(strict=False) or b""
    content_type = message.headers.get("content-type")
    if is_json_type(content_type):
        try:
            return {"body": json.loads(content)}
        except ValueError:
            pass
    if not content:
        return {"body": None}
    try:
        return {"body": content.decode("utf-8")}
    except UnicodeDecodeError:
        return {"body_base64": base64.b64encode(content).decode("ascii")}


def message_json(message: http.Message) -> dict[str, Any]:
    """A request as `{method, url, http_version, headers, body}` or a
    response as `{status, headers, body}` (headers as a Datakit header map:
    lowercase names, repeated headers as lists)."""
    headers = decode_headers(message.headers.items(multi=True))
    if isinstance(message, http.Request):
        return {
            "method": message.method,
            "url": message.url,
            "http_version": message.http_version,
            "headers": headers,
            **_body_json(message),
        }
    assert isinstance(message, http.Response)
    return {"status": message.status_code, "headers": headers, **_body_json(message)}


class Message:
    """A read-only view of a request or response for assertions.

    `headers` is mitmproxy's case-insensitive `Headers` (`h["Content-Type"]`,
    `h.get_all("x-multi")`); `content` the bytes; `text` the decoded text;
    `json()` the parsed JSON body; `body` the value as a Datakit node sees it
    (JSON for JSON content types, else text, None when empty)."""

    def __init__(self, message: http.Message) -> None:
        self.message = message

    @property
    def headers(self) -> http.Headers:
        return self.message.headers

    @property
    def content(self) -> bytes:
        return self.message.get_content(strict=False) or b""

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def body(self) -> Any:
        return decode_body(self.content, self.headers.get("content-type"))

    def to_dict(self) -> dict[str, Any]:
        return message_json(self.message)

    # requests
    @property
    def method(self) -> str:
        return self.message.method  # type: ignore[union-attr]

    @property
    def url(self) -> str:
        return self.message.url  # type: ignore[union-attr]

    @property
    def path(self) -> str:
        """The path without the query."""
        return self.message.path.split("?", 1)[0]  # type: ignore[union-attr]

    @property
    def query(self) -> dict[str, Any]:
        """The decoded query (Datakit's query map: repeated keys as lists)."""
        path = self.message.path  # type: ignore[union-attr]
        return decode_query(path.split("?", 1)[1] if "?" in path else "")

    # responses
    @property
    def status(self) -> int:
        return self.message.status_code  # type: ignore[union-attr]

    status_code = status

    def __repr__(self) -> str:
        if isinstance(self.message, http.Request):
            return f"<request {self.method} {self.url}>"
        return f"<response {self.status} {len(self.content)} bytes>"


@dataclass
class RunResult:
    """What one offline run produced.

    - `workflow`: the name of the workflow that ran (None: no workflow's
      `match` accepted the request; the flow passes through unchanged).
    - `service_request`: the request as it goes (or would go) upstream;
      None when the workflow answered before proxying (exit or failure).
    - `response`: the client's response; None when the request would be
      proxied and no service response or upstream was given.
    - `exited`: an `exit` node answered. `failed`: a node failed (the client
      got the 500 error answer); `error`, `failed_node` say which and why.
    - `trace`: the trace report (when tracing ran), as README.md#debugging describes.
    - `flow`: the mitmproxy HTTPFlow itself.
    """

    flow: http.HTTPFlow
    workflow: str | None = None
    service_request: Message | None = None
    response: Message | None = None
    exited: bool = False
    failed: bool = False
    error: str | None = None
    failed_node: str | None = None
    trace: dict[str, Any] | None = None
    run: FlowRun | None = field(default=None, repr=False)

    @property
    def outcome(self) -> str:
        """`failed`, `exit`, `response` (the upstream's, after the response
        phase), `service_request` (would be proxied) or `no_workflow`."""
        if self.failed:
            return "failed"
        if self.exited:
            return "exit"
        if self.workflow is None and self.response is None:
            return "no_workflow"
        if self.response is not None:
            return "response"
        return "service_request"

    def to_dict(self, trace: bool = False, *, redact: bool = False) -> dict[str, Any]:
        """The JSON `datakit run` prints. `redact`: the fields a workflow
        wrote from a secret, and every string this run derived from one,
        show as `[REDACTED]` (the result's own messages stay real)."""
        out: dict[str, Any] = {"workflow": self.workflow, "outcome": self.outcome}
        if self.failed:
            out["error"] = {"node": self.failed_node, "message": self.error}
        if self.response is not None:
            out["response"] = self._shown(self.response, redact)
        elif self.service_request is not None:
            out["service_request"] = self._shown(self.service_request, redact)
        if trace:
            out["trace"] = self.trace
        run = self.run
        if redact and run is not None and (run.workflow.secrets or run.plan.secret_request_writes):
            out = run.redactor().value(out)
        return out

    def _shown(self, message: Message, redact: bool) -> dict[str, Any]:
        run = self.run
        if not redact or run is None:
            return message.to_dict()
        plan = run.plan
        is_request = isinstance(message.message, http.Request)
        writes = plan.secret_request_writes if is_request else plan.secret_response_writes
        if not writes or (not is_request and (self.failed or run.trace_to_client)):
            return message.to_dict()  # a failure's or trace's body is Datakit's own, already redacted
        copy = message.message.copy()
        scrub_message(copy, run, writes)
        return message_json(copy)


# -- running ---------------------------------------------------------------------


def load_workflows(source: Any, *, name: str = "workflow") -> list[Workflow]:
    """Workflows from a path (file or directory), YAML/JSON text, a parsed
    document (mapping), a Workflow, or a list of any of these. Raises
    ConfigError like the addon's loader."""
    if isinstance(source, Workflow):
        return [source]
    if isinstance(source, os.PathLike):
        return load_path(source)
    if isinstance(source, Mapping):
        return [load_document(source, source="<memory>", default_name=name)]
    if isinstance(source, str):
        stripped = source.lstrip()
        if "\n" in source or stripped.startswith(("{", "nodes:", "config:", "match:", "#")):
            return [load_text(source, source="<memory>", default_name=name, is_json=stripped.startswith("{"))]
        return load_path(source)
    if isinstance(source, Sequence):
        return [wf for item in source for wf in load_workflows(item, name=name)]
    raise TypeError(f"cannot load a workflow from {type(source).__name__}")


class OfflineRunner:
    """Runs flows through workflows in the current event loop, as the addon
    would inside mitmproxy. One runner pools its HTTP connections (for
    `call` nodes and the upstream); `aclose()` releases them."""

    def __init__(self, services: Services | None = None, *, upstream_timeout: float = DEFAULT_UPSTREAM_TIMEOUT) -> None:
        self.services = services or Services()
        self.upstream_timeout = upstream_timeout
        self._upstream: aiohttp.ClientSession | None = None
        self._upstream_loop: asyncio.AbstractEventLoop | None = None

    async def run(
        self,
        workflows: Sequence[Workflow],
        flow: http.HTTPFlow,
        *,
        service_response: http.Response | None = None,
        upstream: str | bool | None = None,
        trace: bool = False,
        debug: bool = False,
    ) -> RunResult:
        """Run `flow` through the first workflow that applies to it.

        Then, if it is to be proxied: with `service_response` the response
        phase runs on that response; with `upstream` the service request is
        really sent (`True`: to the URL the request names; a URL: to that
        scheme, host and port, unless the workflow retargeted the request
        with `kong.service.target` / `.upstream` / `.request.scheme`) and
        the response phase runs on the upstream's answer.

        `debug`: as mitmproxy's `datakit_debug` option (tracing on for every
        workflow: debug error bodies, and the `X-DataKit-Debug-Trace` header
        answers with the report). `trace`: record the trace report without
        changing anything the client gets."""
        if service_response is not None and upstream not in (None, False):
            raise ValueError("give a service response or an upstream, not both")
        # the result's messages stay real (tests assert on them); `datakit
        # run` redacts what it prints (RunResult.to_dict(redact=True))
        engine = Engine(self.services, debug=lambda: debug, record_trace=trace, scrub_records=False)
        engine.workflows = list(workflows)
        request = flow.request
        target = (request.scheme, request.host, request.port)

        selected = engine.select(flow)
        result = RunResult(flow=flow, workflow=selected.name if selected is not None else None)
        try:
            result.run = await engine.request(flow)
            if flow.response is None:
                result.service_request = Message(flow.request.copy())
                response = service_response
                if upstream not in (None, False):
                    retargeted = (request.scheme, request.host, request.port) != target
                    response = await self._send_upstream(flow, None if (upstream is True or retargeted) else str(upstream))
                if response is not None:
                    flow.response = response
                    await engine.response(flow)
        finally:
            await engine.aclose()

        run = result.run
        if run is not None:
            result.failed = run.failure is not None
            if run.failure is not None:
                result.error = run.failure.message
                result.failed_node = run.failure.name
            result.exited = run.exit_response is not None and not result.failed
            meta = flow.metadata.get(METADATA_KEY)
            if isinstance(meta, Mapping):
                result.trace = meta.get("trace")
            elif run.trace is not None:
                result.trace = run.report()
        if flow.response is not None:
            result.response = Message(flow.response)
        return result

    # -- the real upstream -------------------------------------------------------

    def _session(self) -> aiohttp.ClientSession:
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._upstream is None or self._upstream.closed or self._upstream_loop is not loop:
            self._upstream = aiohttp.ClientSession(
                auto_decompress=False,  # mitmproxy keeps the upstream's encoding
                trust_env=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                connector=aiohttp.TCPConnector(limit=0),
            )
            self._upstream_loop = loop
        return self._upstream

    async def _send_upstream(self, flow: http.HTTPFlow, base: str | None) -> http.Response:
        import aiohttp
        from yarl import URL

        req = flow.request
        if base is not None:
            parts = urlsplit(base)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"invalid upstream URL {base!r}")
            scheme, host = parts.scheme, parts.hostname
            port = parts.port or (443 if scheme == "https" else 80)
        else:
            scheme, host, port = req.scheme, req.host, req.port
        shown_host = f"[{host}]" if ":" in host else host
        url = f"{scheme}://{shown_host}:{port}{req.path}"
        headers = [(k, v) for k, v in req.headers.items(multi=True) if not is_hop_by_hop(k)]
        content = req.get_content(strict=False) or b""
        data = content if (content or req.method not in ("GET", "HEAD", "DELETE", "OPTIONS")) else None
        try:
            async with self._session().request(
                req.method,
                URL(url, encoded=True),
                headers=headers,
                data=data,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.upstream_timeout),
                ssl=False if scheme == "https" else None,
            ) as resp:
                raw = await resp.read()
                fields = list(resp.raw_headers)
                version = f"HTTP/{resp.version.major}.{resp.version.minor}" if resp.version else "HTTP/1.1"
                status, reason = resp.status, resp.reason or ""
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            raise UpstreamError(f"upstream {scheme}://{shown_host}:{port} failed: {type(e).__name__}: {e}") from None
        now = time.time()
        response = http.Response(
            http_version=version.encode(),
            status_code=status,
            reason=reason.encode("latin-1", "replace"),
            headers=http.Headers(fields),
            content=None,
            trailers=None,
            timestamp_start=now,
            timestamp_end=now,
        )
        response.raw_content = raw
        return response

    async def aclose(self) -> None:
        if self._upstream is not None and not self._upstream.closed:
            await self._upstream.close()
        self._upstream = None
        await self.services.aclose()
