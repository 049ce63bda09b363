"""Kong properties, with their mitmproxy meaning (docs/nodes.md#property).

Each property is a getter and/or a setter taking the node's context
(`NodeContext`) and, for families like `kong.ctx.shared.KEY`, the key.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .codecs import json_type
from .errors import NodeError
from .memory_stats import memory_stats
from .ports import Phase

if TYPE_CHECKING:
    from .context import NodeContext

KONG_VERSION = "3.15.0"

Getter = Callable[["NodeContext", str], Any]
Setter = Callable[["NodeContext", str, Any], None]


@dataclass(frozen=True)
class Property:
    name: str
    get: Getter | None = None
    set: Setter | None = None
    get_phase: Phase = Phase.REQUEST  # the earliest phase a get makes sense in
    doc: str = ""
    sets_client_response: bool = False  # a set changes the response the client gets


# -- getters and setters ---------------------------------------------------


Store = Callable[["NodeContext"], dict[str, Any]]


def _ctx_get(store: Store) -> Getter:
    return lambda ctx, key: store(ctx).get(key)


def _ctx_set(store: Store) -> Setter:
    def setter(ctx: NodeContext, key: str, value: Any) -> None:
        if value is None:
            store(ctx).pop(key, None)
        else:
            store(ctx)[key] = value

    return setter


def _shared(ctx: NodeContext) -> dict[str, Any]:
    return ctx.ctx_shared


def _plugin(ctx: NodeContext) -> dict[str, Any]:
    return ctx.ctx_plugin


def _client_ip(ctx: NodeContext, _: str) -> Any:
    peer = ctx.flow.client_conn.peername
    return peer[0] if peer else None


def _client_port(ctx: NodeContext, _: str) -> Any:
    peer = ctx.flow.client_conn.peername
    return peer[1] if peer else None


def _client_protocol(ctx: NodeContext, _: str) -> str:
    return "https" if ctx.flow.client_conn.tls_established else "http"


def _client_request(ctx: NodeContext) -> tuple[str, int, str]:
    """(host, port, scheme) of the request as the client sent it.

    `kong.request.*` describes the client's request; retargeting the upstream
    (`kong.service.target`, `.request.scheme`, `.upstream`) changes
    `flow.request` (and its Host header), so the setters remember the
    original first.
    """
    saved = ctx.client_request
    if saved is not None:
        return saved
    req = ctx.flow.request
    return req.pretty_host, req.port, req.scheme


def _remember_client_request(ctx: NodeContext) -> None:
    if ctx.client_request is None:
        ctx.client_request = _client_request(ctx)


def _request_port(ctx: NodeContext, _: str) -> Any:
    sock = ctx.flow.client_conn.sockname
    return sock[1] if sock else _client_request(ctx)[1]


def _forwarded(header: str, fallback: Callable[[NodeContext], Any], convert: Callable[[str], Any] = str) -> Getter:
    def getter(ctx: NodeContext, _: str) -> Any:
        value = ctx.flow.request.headers.get(header)
        if value:
            first = value.split(",", 1)[0].strip()
            try:
                return convert(first)
            except ValueError:
                pass
        return fallback(ctx)

    return getter


def _split_target(text: str) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not host or (rest and not rest.startswith(":")):
            raise NodeError(f"invalid target {text!r}")
        port = rest[1:] if rest else None
    elif text.count(":") > 1:  # a bare IPv6 address has no port
        host, port = text, None
    else:
        host, sep, port = text.partition(":")
        port = port if sep else None
    if not host:
        raise NodeError(f"invalid target {text!r}: no host")
    host = _wire_host(host, text)
    if port is None:
        return host, None
    if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise NodeError(f"invalid port in target {text!r}")
    return host, int(port)


# A host name: letters, digits, `-`, `_` and `.` (RFC 1123, plus the `_`
# some internal names use). The host becomes the Host header, the SNI and,
# in upstream proxy mode, the request line's authority: a space, `/`, `@`,
# `?` or CR/LF there rewrote the request line or injected a header.
_HOST_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def _wire_host(host: str, text: str) -> str:
    """The host as sent: a host name (non-ASCII ones IDNA-encoded) or an IP
    address; anything else is a node error."""
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise NodeError(f"invalid host in target {text!r}") from None
    if _HOST_NAME.fullmatch(host):
        return host
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        raise NodeError(f"invalid host in target {text!r} (a host name or an IP address)") from None
    return host


def _before_proxying(ctx: NodeContext, what: str) -> None:
    if ctx.phase is not Phase.REQUEST:
        raise NodeError(f"cannot set {what} after the request was proxied")


def _target_set(ctx: NodeContext, _: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise NodeError(f"kong.service.target must be a 'host:port' string, got {json_type(value)}")
    _before_proxying(ctx, "kong.service.target")
    host, port = _split_target(value)
    _remember_client_request(ctx)
    req = ctx.flow.request
    req.host = host
    if port is not None:
        req.port = port


def _scheme_set(ctx: NodeContext, _: str, value: Any) -> None:
    if value not in ("http", "https"):
        raise NodeError(f"kong.service.request.scheme must be 'http' or 'https', got {value!r}")
    _before_proxying(ctx, "kong.service.request.scheme")
    _remember_client_request(ctx)
    ctx.flow.request.scheme = value


def _upstream_set(ctx: NodeContext, _: str, value: Any) -> None:
    if not isinstance(value, str):
        raise NodeError(f"kong.service.upstream must be an upstream name, got {json_type(value)}")
    _before_proxying(ctx, "kong.service.upstream")
    upstreams: Mapping[str, Any] = ctx.workflow.upstreams
    entry = upstreams.get(value)
    if entry is None:
        known = ", ".join(sorted(upstreams)) or "none defined"
        raise NodeError(f"unknown upstream {value!r} (the workflow's upstreams: {known})")
    req = ctx.flow.request
    scheme: str | None
    if isinstance(entry, str):
        scheme, sep, rest = entry.partition("://")
        if not sep:
            scheme, rest = None, entry
        host, port = _split_target(rest.rstrip("/"))
    else:
        scheme, host, port = entry.get("scheme"), _wire_host(entry["host"], entry["host"]), entry.get("port")
    _remember_client_request(ctx)
    if scheme:
        req.scheme = scheme
    req.host = host
    req.port = port if port is not None else (443 if req.scheme == "https" else 80)


def _response_status_set(ctx: NodeContext, _: str, value: Any) -> None:
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 100 <= value <= 599:
        raise NodeError(f"kong.response.status must be a status code (100-599), got {value!r}")
    if value < 200:  # an interim answer: the client would wait for the real one (101: a protocol switch)
        raise NodeError(f"kong.response.status {value}: a 1xx is not a final response; use 200-599")
    ctx.client_response.status = value


def _service_response_status(ctx: NodeContext, _: str) -> Any:
    resp = ctx.flow.response
    return resp.status_code if resp is not None else None


def _route(ctx: NodeContext, _: str) -> dict[str, Any] | None:
    wf = ctx.workflow
    route = wf.match.matched_route(ctx.flow)  # a Kong declarative file: the route entity
    if route is not None:
        return route
    return {"name": wf.name, "source": wf.source, "match": wf.match.describe()}


def _service(ctx: NodeContext, _: str) -> dict[str, Any] | None:
    return ctx.workflow.match.matched_service(ctx.flow)


def _entity_field(find: Callable[[NodeContext], dict[str, Any] | None], field: str) -> Getter:
    """A field of the matched route or service entity (null without a Kong
    declarative file, docs/kong.md)."""

    def getter(ctx: NodeContext, _: str) -> Any:
        entity = find(ctx)
        return entity.get(field) if entity is not None else None

    return getter


def _consumer_set(ctx: NodeContext, _: str, value: Any) -> None:
    if value is None:
        ctx.consumer = None
        return
    if not isinstance(value, Mapping) or not any(value.get(k) is not None for k in ("id", "username", "custom_id")):
        raise NodeError("kong.client.consumer must be an object with 'id', 'username' or 'custom_id'")
    ctx.consumer = dict(value)


def _proxy_user(ctx: NodeContext) -> dict[str, str] | None:
    """The client authenticated by mitmproxy's proxyauth addon, Kong-style."""
    auth = ctx.flow.metadata.get("proxyauth")
    if auth:
        user = auth[0] if isinstance(auth, (tuple, list)) else str(auth)
        return {"id": user, "username": user}
    return None


def _consumer_get(ctx: NodeContext, _: str) -> Any:
    return ctx.consumer if ctx.consumer is not None else _proxy_user(ctx)


def _credential_get(ctx: NodeContext, _: str) -> Any:
    return ctx.credential if ctx.credential is not None else _proxy_user(ctx)


def _consumer_groups_get(ctx: NodeContext, _: str) -> Any:
    """PDK `kong.client.get_consumer_groups()`: the authenticated consumer's
    groups; nil when none were authenticated (no consumer, no decK file with
    `consumer_groups`, or the consumer is in none)."""
    consumer = _consumer_get(ctx, "")
    return ctx.workflow.match.consumer_groups(consumer) if consumer is not None else None


def _response_source_get(ctx: NodeContext, _: str) -> str | None:
    """PDK `kong.response.get_source()`: "exit" once an exit node answered,
    "error" once the flow failed (mitmproxy's `flow.error`: the upstream
    could not be reached), "service" once the upstream answered; null before
    any answer. A read waits for the response phase (`get_phase`), as Kong's
    PDK refuses the call before `header_filter`: a workflow sees "service",
    or "exit" after an exit node of the response phase."""
    if ctx.client_response.exit is not None:
        return "exit"
    flow = ctx.flow
    if flow.error is not None:
        return "error"
    return "service" if flow.response is not None else None


# Options that hold, or may hold, credentials are not readable from
# workflows: by name (upstream_auth, proxyauth, web_password,
# stickyauth, stickycookie, any *key*/*token*/*secret*/*cert* option)...
_SENSITIVE_OPTION_WORDS = ("auth", "pass", "secret", "token", "key", "cookie", "cert")
# ...and these, whose values are free text a user may put a credential in
# (an Authorization header, a body, a URL with user info) or name key files
_SENSITIVE_OPTIONS = frozenset({"modify_headers", "modify_body", "map_remote", "map_local", "client_certs", "certs"})


def refused_option(key: str) -> bool:
    """Whether `kong.configuration.<key>` is refused (may hold credentials)."""
    low = key.lower()
    return low in _SENSITIVE_OPTIONS or any(word in low for word in _SENSITIVE_OPTION_WORDS)


def _configuration(ctx: NodeContext, key: str) -> Any:
    if refused_option(key):
        raise NodeError(f"kong.configuration.{key}: the option may hold credentials and is not readable")
    try:
        return ctx.services.option(key)
    except KeyError:
        raise NodeError(f"kong.configuration.{key}: no such mitmproxy option") from None


PROPERTIES: dict[str, Property] = {
    p.name: p
    for p in (
        Property("kong.client.ip", _client_ip, doc="The client's IP address."),
        Property("kong.client.port", _client_port, doc="The client's source port."),
        Property("kong.client.protocol", _client_protocol, doc="'https' when the client connection uses TLS, else 'http'."),
        Property("kong.request.port", _request_port, doc="The port mitmproxy received the request on."),
        Property("kong.request.forwarded_host", _forwarded("x-forwarded-host", lambda r: _client_request(r)[0]), doc="X-Forwarded-Host, else the request host."),
        Property("kong.request.forwarded_port", _forwarded("x-forwarded-port", lambda r: _client_request(r)[1], int), doc="X-Forwarded-Port, else the request port."),
        Property("kong.request.forwarded_scheme", _forwarded("x-forwarded-proto", lambda r: _client_request(r)[2]), doc="X-Forwarded-Proto, else the request scheme."),
        # Kong's four set-only properties (INDEX "Supported properties"): no
        # getter, so a node reading one is refused at load, as in Kong.
        Property("kong.service.target", set=_target_set, doc="Set the host:port the request is proxied to."),
        Property("kong.service.request.scheme", set=_scheme_set, doc="Set http or https towards the upstream."),
        Property("kong.service.upstream", set=_upstream_set, doc="Proxy to a named entry of the workflow's `upstreams`."),
        Property("kong.service.response.status", _service_response_status, get_phase=Phase.RESPONSE, doc="The upstream's status code."),
        Property("kong.response.status", set=_response_status_set, doc="Set the status the client gets.", sets_client_response=True),
        Property("kong.router.route", _route, doc="The matched route entity (a Kong declarative file), else the matched workflow: name, file and match block."),
        Property("kong.router.service", _service, doc="The matched route's service entity (a Kong declarative file), else null."),
        Property("kong.route_name", lambda ctx, _: ctx.workflow.name, doc="The matched workflow's name."),
        Property("kong.route_id", _entity_field(lambda ctx: ctx.workflow.match.matched_route(ctx.flow), "id"), doc="The matched route entity's id, else null."),
        Property("kong.service_id", _entity_field(lambda ctx: _service(ctx, ""), "id"), doc="The matched service entity's id, else null."),
        Property("kong.service_name", _entity_field(lambda ctx: _service(ctx, ""), "name"), doc="The matched service entity's name, else null."),
        # No trusted proxies are configured here (Kong's default), so the
        # forwarded address is the connection's own, never a header's.
        Property("kong.client.forwarded_ip", _client_ip, doc="The client's IP address (no trusted proxies)."),
        Property("kong.client.forwarded_port", _client_port, doc="The client's source port (no trusted proxies)."),
        Property("kong.nginx.subsystem", lambda ctx, _: "http", doc="Always 'http'."),
        Property("kong.client.consumer", _consumer_get, _consumer_set, doc="The consumer (from mitmproxy's proxyauth when not set)."),
        Property("kong.client.credential", _credential_get, None, doc="The credential: mitmproxy's proxyauth user (Kong: get only; the consumer is set with kong.client.consumer)."),
        Property("kong.version", lambda ctx, _: KONG_VERSION, doc="The Kong Datakit version this engine follows."),
        Property("kong.node.id", lambda ctx, _: ctx.services.node_id, doc="A UUID for this mitmproxy process."),
        Property("kong.node.memory_stats", lambda ctx, _: memory_stats(), doc="Kong's shape: cache memory dictionaries (`lua_shared_dicts`), this process (`workers_lua_vms`), in bytes."),
        Property("kong.client.consumer_groups", _consumer_groups_get, doc="The consumer's groups in a decK file's `consumer_groups`, else null."),
        # Identity realms are Konnect's (key-auth `identity_realms`); none
        # authenticates here, so the source is always nil, as in Kong without one.
        Property("kong.client.identity_realm_source", lambda ctx, _: None, doc="Always null (no Konnect identity realm here)."),
        Property("kong.response.source", _response_source_get, get_phase=Phase.RESPONSE, doc="'service' or 'exit' (an exit node of the response phase): read after proxying, as Kong's get_source()."),
    )
}

FAMILIES: dict[str, Property] = {
    "kong.ctx.shared.": Property("kong.ctx.shared.*", _ctx_get(_shared), _ctx_set(_shared), doc="Per-flow values shared by all workflows."),
    "kong.ctx.plugin.": Property("kong.ctx.plugin.*", _ctx_get(_plugin), _ctx_set(_plugin), doc="Per-flow values of this workflow."),
    "kong.configuration.": Property("kong.configuration.*", _configuration, doc="mitmproxy option values."),
}


def lookup(name: str) -> tuple[Property, str] | None:
    """The property for a name, and the key within a family ('' if none)."""
    if name in PROPERTIES:
        return PROPERTIES[name], ""
    for prefix, prop in FAMILIES.items():
        if name.startswith(prefix) and len(name) > len(prefix):
            return prop, name[len(prefix):]
    return None
