"""Kong properties, with their mitmproxy meaning (docs/nodes.md#property).

Each property is a getter and/or a setter taking the running flow
(`FlowRun`) and, for families like `kong.ctx.shared.KEY`, the key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .codecs import json_type
from .errors import NodeError
from .nodes.base import Phase

if TYPE_CHECKING:
    from .runtime import FlowRun

KONG_VERSION = "3.15.0"

Getter = Callable[["FlowRun", str], Any]
Setter = Callable[["FlowRun", str, Any], None]


@dataclass(frozen=True)
class Property:
    name: str
    get: Getter | None = None
    set: Setter | None = None
    get_phase: Phase = Phase.REQUEST  # the earliest phase a get makes sense in
    doc: str = ""
    sets_client_response: bool = False  # a set changes the response the client gets


# -- getters and setters ---------------------------------------------------


def _ctx_get(store: str) -> Getter:
    return lambda run, key: getattr(run, store).get(key)


def _ctx_set(store: str) -> Setter:
    def setter(run: FlowRun, key: str, value: Any) -> None:
        if value is None:
            getattr(run, store).pop(key, None)
        else:
            getattr(run, store)[key] = value

    return setter


def _client_ip(run: FlowRun, _: str) -> Any:
    peer = run.flow.client_conn.peername
    return peer[0] if peer else None


def _client_port(run: FlowRun, _: str) -> Any:
    peer = run.flow.client_conn.peername
    return peer[1] if peer else None


def _client_protocol(run: FlowRun, _: str) -> str:
    return "https" if run.flow.client_conn.tls_established else "http"


_CLIENT_REQUEST = "_datakit_client_request"


def _client_request(run: FlowRun) -> tuple[str, int, str]:
    """(host, port, scheme) of the request as the client sent it.

    `kong.request.*` describes the client's request; retargeting the upstream
    (`kong.service.target`, `.request.scheme`, `.upstream`) changes
    `flow.request` (and its Host header), so the setters remember the
    original first.
    """
    saved = getattr(run, _CLIENT_REQUEST, None)
    if saved is not None:
        return saved
    req = run.flow.request
    return req.pretty_host, req.port, req.scheme


def _remember_client_request(run: FlowRun) -> None:
    if getattr(run, _CLIENT_REQUEST, None) is None:
        setattr(run, _CLIENT_REQUEST, _client_request(run))


def _request_port(run: FlowRun, _: str) -> Any:
    sock = run.flow.client_conn.sockname
    return sock[1] if sock else _client_request(run)[1]


def _forwarded(header: str, fallback: Callable[[FlowRun], Any], convert: Callable[[str], Any] = str) -> Getter:
    def getter(run: FlowRun, _: str) -> Any:
        value = run.flow.request.headers.get(header)
        if value:
            first = value.split(",", 1)[0].strip()
            try:
                return convert(first)
            except ValueError:
                pass
        return fallback(run)

    return getter


def _target_get(run: FlowRun, _: str) -> str:
    req = run.flow.request
    host = f"[{req.host}]" if ":" in req.host else req.host
    return f"{host}:{req.port}"


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
    if port is None:
        return host, None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise NodeError(f"invalid port in target {text!r}")
    return host, int(port)


def _before_proxying(run: FlowRun, what: str) -> None:
    if run.phase is not Phase.REQUEST:
        raise NodeError(f"cannot set {what} after the request was proxied")


def _target_set(run: FlowRun, _: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise NodeError(f"kong.service.target must be a 'host:port' string, got {json_type(value)}")
    _before_proxying(run, "kong.service.target")
    host, port = _split_target(value)
    _remember_client_request(run)
    req = run.flow.request
    req.host = host
    if port is not None:
        req.port = port


def _scheme_set(run: FlowRun, _: str, value: Any) -> None:
    if value not in ("http", "https"):
        raise NodeError(f"kong.service.request.scheme must be 'http' or 'https', got {value!r}")
    _before_proxying(run, "kong.service.request.scheme")
    _remember_client_request(run)
    run.flow.request.scheme = value


def _upstream_set(run: FlowRun, _: str, value: Any) -> None:
    if not isinstance(value, str):
        raise NodeError(f"kong.service.upstream must be an upstream name, got {json_type(value)}")
    _before_proxying(run, "kong.service.upstream")
    upstreams: Mapping[str, Any] = run.workflow.upstreams
    entry = upstreams.get(value)
    if entry is None:
        known = ", ".join(sorted(upstreams)) or "none defined"
        raise NodeError(f"unknown upstream {value!r} (the workflow's upstreams: {known})")
    req = run.flow.request
    if isinstance(entry, str):
        scheme, sep, rest = entry.partition("://")
        if not sep:
            scheme, rest = None, entry
        host, port = _split_target(rest.rstrip("/"))
    else:
        scheme, host, port = entry.get("scheme"), entry["host"], entry.get("port")
    _remember_client_request(run)
    if scheme:
        req.scheme = scheme
    req.host = host
    req.port = port if port is not None else (443 if req.scheme == "https" else 80)


def _response_status_get(run: FlowRun, _: str) -> Any:
    if run.response_status is not None:
        return run.response_status
    if run.exit_response is not None:
        return run.exit_response.status
    resp = run.flow.response
    return resp.status_code if resp is not None else None


def _response_status_set(run: FlowRun, _: str, value: Any) -> None:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 100 <= value <= 599:
        raise NodeError(f"kong.response.status must be a status code (100-599), got {value!r}")
    run.response_status = value


def _service_response_status(run: FlowRun, _: str) -> Any:
    resp = run.flow.response
    return resp.status_code if resp is not None else None


def _route(run: FlowRun, _: str) -> dict[str, Any]:
    wf = run.workflow
    return {"name": wf.name, "source": wf.source, "match": wf.match.describe()}


def _consumer_set(run: FlowRun, _: str, value: Any) -> None:
    if value is None:
        run.consumer = None
        return
    if not isinstance(value, Mapping) or not any(value.get(k) is not None for k in ("id", "username", "custom_id")):
        raise NodeError("kong.client.consumer must be an object with 'id', 'username' or 'custom_id'")
    run.consumer = dict(value)


def _proxy_user(run: FlowRun) -> dict[str, str] | None:
    """The client authenticated by mitmproxy's proxyauth addon, Kong-style."""
    auth = run.flow.metadata.get("proxyauth")
    if auth:
        user = auth[0] if isinstance(auth, (tuple, list)) else str(auth)
        return {"id": user, "username": user}
    return None


def _consumer_get(run: FlowRun, _: str) -> Any:
    return run.consumer if run.consumer is not None else _proxy_user(run)


def _credential_get(run: FlowRun, _: str) -> Any:
    return run.credential if run.credential is not None else _proxy_user(run)


def _credential_set(run: FlowRun, _: str, value: Any) -> None:
    if value is not None and not isinstance(value, Mapping):
        raise NodeError(f"kong.client.credential must be an object, got {json_type(value)}")
    run.credential = dict(value) if value is not None else None


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


def _configuration(run: FlowRun, key: str) -> Any:
    if refused_option(key):
        raise NodeError(f"kong.configuration.{key}: the option may hold credentials and is not readable")
    try:
        return run.services.option(key)
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
        Property("kong.service.target", _target_get, _target_set, doc="host:port the request is proxied to."),
        Property("kong.service.request.scheme", lambda run, _: run.flow.request.scheme, _scheme_set, doc="http or https towards the upstream."),
        Property("kong.service.upstream", None, _upstream_set, doc="Proxy to a named entry of the workflow's `upstreams`."),
        Property("kong.service.response.status", _service_response_status, get_phase=Phase.RESPONSE, doc="The upstream's status code."),
        Property("kong.response.status", _response_status_get, _response_status_set, get_phase=Phase.RESPONSE, doc="The status the client gets.", sets_client_response=True),
        Property("kong.router.route", _route, doc="The matched workflow: name, file and match block."),
        Property("kong.route_name", lambda run, _: run.workflow.name, doc="The matched workflow's name."),
        Property("kong.client.consumer", _consumer_get, _consumer_set, doc="The consumer (from mitmproxy's proxyauth when not set)."),
        Property("kong.client.credential", _credential_get, _credential_set, doc="The credential (from mitmproxy's proxyauth when not set)."),
        Property("kong.version", lambda run, _: KONG_VERSION, doc="The Kong Datakit version this engine follows."),
        Property("kong.node.id", lambda run, _: run.services.node_id, doc="A UUID for this mitmproxy process."),
    )
}

FAMILIES: dict[str, Property] = {
    "kong.ctx.shared.": Property("kong.ctx.shared.*", _ctx_get("ctx_shared"), _ctx_set("ctx_shared"), doc="Per-flow values shared by all workflows."),
    "kong.ctx.plugin.": Property("kong.ctx.plugin.*", _ctx_get("ctx_plugin"), _ctx_set("ctx_plugin"), doc="Per-flow values of this workflow."),
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
