"""Kong's Service and Route entities, with Kong's defaults filled in.

Defaults and the `url` shorthand follow Kong's entity pages
(developer.konghq.com app/_gateway_entities/service.md and route.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError

# decK files may leave ids out; Kong generates them. Ours are stable across
# reloads so that `kong.router.route.id` does not change under a workflow.
_ID_NAMESPACE = uuid.UUID("6f1d4a52-8a43-4c4e-9a53-3b3f6c1f5e00")
DEFAULT_PORTS = {"http": 80, "https": 443}


def entity_id(kind: str, raw: Mapping[str, Any], fallback: str) -> str:
    given = raw.get("id")
    if isinstance(given, str) and given:
        return given
    return str(uuid.uuid5(_ID_NAMESPACE, f"{kind}:{raw.get('name') or fallback}"))


@dataclass
class Service:
    id: str
    name: str | None
    protocol: str
    host: str
    port: int
    path: str | None
    entity: dict[str, Any] = field(repr=False)
    # `host:port` of the Upstream entity the service's host names, if any
    balanced_target: str | None = None

    @classmethod
    def build(cls, raw: Mapping[str, Any], source: str, where: str,
              upstreams: Mapping[str, str] | None = None) -> Service:
        raw = {k: v for k, v in raw.items() if v is not None}
        protocol, host, port, path = raw.get("protocol"), raw.get("host"), raw.get("port"), raw.get("path")
        if "url" in raw:  # Kong: `url` is shorthand for protocol, host, port and path at once
            parts = urlsplit(str(raw["url"]))
            protocol, host, path = parts.scheme or protocol, parts.hostname or host, parts.path or None
            port = parts.port or port
        protocol = protocol or "http"
        if protocol not in DEFAULT_PORTS:
            raise ConfigError(f"service protocol {protocol!r} is not proxied here (http and https only)", file=source, field=f"{where}.protocol")
        if not isinstance(host, str) or not host:
            raise ConfigError("a service needs a host (or a url)", file=source, field=f"{where}.host")
        port = int(port) if port is not None else DEFAULT_PORTS[protocol]
        sid = entity_id("service", raw, where)
        entity = {
            "id": sid, "name": raw.get("name"), "protocol": protocol, "host": host, "port": port, "path": path,
            "retries": raw.get("retries", 5), "connect_timeout": raw.get("connect_timeout", 60000),
            "write_timeout": raw.get("write_timeout", 60000), "read_timeout": raw.get("read_timeout", 60000),
            "enabled": raw.get("enabled", True), "tags": raw.get("tags"),
        }
        return cls(sid, raw.get("name"), protocol, host, port, path, entity, (upstreams or {}).get(host))


@dataclass
class Route:
    id: str
    name: str | None
    service: Service | None
    order: int  # position in the file: the last tie-breaker
    hosts: list[str]
    paths: list[str]
    methods: list[str]
    headers: dict[str, list[str]]
    protocols: list[str]
    snis: list[str]
    regex_priority: int
    strip_path: bool
    preserve_host: bool
    path_handling: str
    entity: dict[str, Any] = field(repr=False)

    @classmethod
    def build(cls, raw: Mapping[str, Any], service: Service | None, order: int, source: str, where: str) -> Route:
        raw = {k: v for k, v in raw.items() if v is not None}
        if "expression" in raw:
            raise ConfigError("expressions routes need router_flavor=expressions; only traditional_compatible routes are run here",
                              file=source, field=f"{where}.expression")
        for unsupported in ("sources", "destinations"):
            if raw.get(unsupported):
                raise ConfigError(f"'{unsupported}' routes stream (TCP/TLS) traffic, which is not proxied here", file=source, field=f"{where}.{unsupported}")
        headers = {}
        for name, values in (raw.get("headers") or {}).items():
            headers[str(name).lower()] = [values] if isinstance(values, str) else [str(v) for v in values]
        if "host" in headers:
            raise ConfigError("use 'hosts' to route on the Host header (as Kong requires)", file=source, field=f"{where}.headers.host")
        protocols = list(raw.get("protocols") or ["http", "https"])
        path_handling = raw.get("path_handling", "v0")
        if path_handling not in ("v0", "v1"):
            raise ConfigError(f"path_handling must be 'v0' or 'v1', got {path_handling!r}", file=source, field=f"{where}.path_handling")
        hosts, paths, methods = list(raw.get("hosts") or []), list(raw.get("paths") or []), [m.upper() for m in raw.get("methods") or []]
        if not (hosts or paths or methods or headers or raw.get("snis")):
            raise ConfigError("a route needs at least one of hosts, paths, methods, headers or snis (as Kong requires)", file=source, field=where)
        rid = entity_id("route", raw, where)
        entity = {
            "id": rid, "name": raw.get("name"), "hosts": hosts or None, "paths": paths or None, "methods": methods or None,
            "headers": headers or None, "protocols": protocols, "snis": raw.get("snis"),
            "regex_priority": int(raw.get("regex_priority", 0)), "strip_path": bool(raw.get("strip_path", True)),
            "preserve_host": bool(raw.get("preserve_host", False)), "path_handling": path_handling,
            "https_redirect_status_code": raw.get("https_redirect_status_code", 426),
            "request_buffering": raw.get("request_buffering", True), "response_buffering": raw.get("response_buffering", True),
            "tags": raw.get("tags"), "service": {"id": service.id} if service else None,
        }
        return cls(
            rid, raw.get("name"), service, order, hosts, paths, methods, headers, protocols, list(raw.get("snis") or []),
            entity["regex_priority"], entity["strip_path"], entity["preserve_host"], path_handling, entity,
        )
