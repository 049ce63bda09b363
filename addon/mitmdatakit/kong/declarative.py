"""A Kong declarative (decK) file as Kong runs it: services, routes and
plugins (nested or top-level, referenced by name or id), each enabled
`datakit` plugin loaded as a workflow that runs on the flows Kong would
give it.

Plugin scoping and precedence (developer.konghq.com
app/_gateway_entities/plugin.md, "Precedence"): a plugin on a route and
service beats one on the route, which beats one on the service, which beats
a global one; one datakit instance runs per flow. Consumer-scoped plugins
need Kong's consumer authentication, which does not run here: they are
logged and left out (docs/kong.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..workflow import RequestFacts, Workflow
from .consumers import ConsumerGroups
from .entities import Route, Service
from .router import Router, request_protocol

if TYPE_CHECKING:
    from mitmproxy import http

logger = logging.getLogger("mitmdatakit")

FORMAT_KEY = "_format_version"
# entity kinds a decK file may hold that do not take part here
_META_KEYS = frozenset({"_format_version", "_transform", "_info", "_workspace", "_konnect", "_comment"})
_USED_KINDS = frozenset({"services", "routes", "plugins", "vaults", "consumers", "consumer_groups", "upstreams", "targets"})
# plugin entity keys that place it; the loaded workflow is placed by the router instead
_SCOPE_KEYS = ("service", "route", "consumer", "consumer_group")


def is_declarative(doc: Any) -> bool:
    return isinstance(doc, Mapping) and FORMAT_KEY in doc


@dataclass
class _Plugin:
    raw: dict[str, Any]
    where: str
    route: Route | None = None
    service: Service | None = None
    consumer: Any = None

    @property
    def scope(self) -> str:
        if self.route and self.service:
            return f"route {self.route.name or self.route.id} and service {self.service.name or self.service.id}"
        if self.route:
            return f"route {self.route.name or self.route.id}"
        if self.service:
            return f"service {self.service.name or self.service.id}"
        return "global"

    @property
    def rank(self) -> int:
        """Kong's precedence without consumers: route+service > route > service > global."""
        return 2 * bool(self.route) + bool(self.service)


@dataclass
class Declarative:
    """A loaded decK file: its router, its datakit workflows, and which
    workflow (if any) runs on each route."""

    source: str
    router: Router
    workflows: list[Workflow]
    plugin_for_route: dict[str, Workflow] = field(default_factory=dict)
    services: list[Service] = field(default_factory=list)
    consumer_groups: ConsumerGroups = field(default_factory=lambda: ConsumerGroups([], []))


class RouterMatch:
    """A workflow's `match` for a decK plugin: the file's router picks the
    route, Kong's precedence picks the one workflow for it."""

    def __init__(self, declarative: Declarative, scope: str) -> None:
        self.declarative = declarative
        self.scope = scope
        self.workflow: Workflow | None = None

    @property
    def router(self) -> Router:
        return self.declarative.router

    def test(self, facts: RequestFacts) -> bool:
        router = self.declarative.router
        if facts.host_named:  # another host the request names: would it pick another route?
            found = router.find(facts.method, facts.host, facts.path, request_protocol(facts.flow), facts.flow)
        else:
            _ = facts.host  # the router reads it too; marked read, so other hosts are tried (Engine.select)
            found = router.route_for(facts.flow)
        return found is not None and self.declarative.plugin_for_route.get(found.route.id) is self.workflow

    def accepts(self, flow: http.HTTPFlow) -> bool:
        return self.test(RequestFacts(flow))

    def matched_route(self, flow: http.HTTPFlow) -> dict[str, Any] | None:
        found = self.declarative.router.route_for(flow)
        return dict(found.route.entity) if found else None

    def matched_service(self, flow: http.HTTPFlow) -> dict[str, Any] | None:
        found = self.declarative.router.route_for(flow)
        return dict(found.route.service.entity) if found and found.route.service else None

    def consumer_groups(self, consumer: Any) -> list[dict[str, Any]] | None:
        return self.declarative.consumer_groups.groups_of(consumer)

    def describe(self) -> dict[str, Any]:
        return {"kong": self.scope}


def _ref(value: Any) -> str | None:
    """A reference to another entity: its name or id, or {name|id: ...}."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        value = value.get("id") or value.get("name")
    return str(value) if value is not None else None


def _list(doc: Mapping[str, Any], key: str, source: str, where: str) -> list[Mapping[str, Any]]:
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(x, Mapping) for x in value):
        raise ConfigError(f"'{key}' must be a list of {key[:-1]} entities", file=source, field=f"{where}{key}")
    return value


def upstream_targets(doc: Mapping[str, Any], source: str) -> dict[str, str]:
    """Kong Upstream entities as a workflow's `upstreams:` map: each name
    (and id) to the `host:port` of its first target with a weight. Kong
    balances over all targets; here the first one takes every request
    (docs/kong.md, "Limits")."""
    targets: dict[str, list[Mapping[str, Any]]] = {}
    names: dict[str, str] = {}
    for i, raw in enumerate(_list(doc, "upstreams", source, "")):
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError("an upstream needs a name", file=source, field=f"upstreams.{i}.name")
        names[name] = name
        if isinstance(raw.get("id"), str):
            names[raw["id"]] = name
        targets[name] = list(_list(raw, "targets", source, f"upstreams.{i}."))
    for i, raw in enumerate(_list(doc, "targets", source, "")):
        ref = _ref(raw.get("upstream"))
        if ref not in names:
            raise ConfigError(f"no upstream {ref!r} in this file", file=source, field=f"targets.{i}.upstream")
        targets[names[ref]].append(raw)
    found: dict[str, str] = {}
    for ref, name in names.items():
        usable = [t for t in targets[name] if t.get("weight", 100) and isinstance(t.get("target"), str)]
        if usable:
            target = str(usable[0]["target"])
            # Kong's target port defaults to 8000
            found[ref] = target if target.rpartition(":")[2].isdigit() and not target.endswith("]") else f"{target}:8000"
    return found


# (plugin entity without its scope keys, default workflow name) -> the workflow
PluginLoader = Callable[[dict[str, Any], str], Workflow]


def load_declarative(doc: Mapping[str, Any], source: str, load_plugin: PluginLoader) -> Declarative:
    """Build the router and workflows of a decK document. `load_plugin(doc,
    name)` loads one datakit plugin entity as a workflow (config.py's loader)."""
    version = str(doc.get(FORMAT_KEY))
    if not version.startswith(("3.", "2.", "1.")):
        raise ConfigError(f"unsupported {FORMAT_KEY} {version!r} (decK writes \"3.0\")", file=source, field=FORMAT_KEY)
    ignored = sorted(k for k in doc if k not in _META_KEYS and k not in _USED_KINDS and doc[k])
    if ignored:
        logger.info("Datakit: %s: entities not used here: %s", source, ", ".join(ignored))

    services: dict[str, Service] = {}
    routes: list[Route] = []
    routes_by_ref: dict[str, Route] = {}
    plugins: list[_Plugin] = []

    def add_route(raw: Mapping[str, Any], service: Service | None, where: str) -> Route:
        route = Route.build(raw, service, len(routes), source, where)
        routes.append(route)
        for ref in (route.id, route.name):
            if ref:
                if ref in routes_by_ref:
                    raise ConfigError(f"duplicate route {ref!r}", file=source, field=where)
                routes_by_ref[ref] = route
        for j, p in enumerate(_list(raw, "plugins", source, f"{where}.")):
            plugins.append(_Plugin(dict(p), f"{where}.plugins.{j}", route=route, consumer=p.get("consumer")))
        return route

    balanced = upstream_targets(doc, source)
    service_list = _list(doc, "services", source, "")
    for i, raw in enumerate(service_list):
        service = Service.build(raw, source, f"services.{i}", balanced)
        for ref in {ref for ref in (service.id, service.name) if ref is not None}:
            if ref in services:
                raise ConfigError(f"duplicate service {ref!r}", file=source, field=f"services.{i}")
            services[ref] = service
    for i, raw in enumerate(service_list):
        service = services[Service.build(raw, source, f"services.{i}", balanced).id]
        for j, r in enumerate(_list(raw, "routes", source, f"services.{i}.")):
            add_route(r, service, f"services.{i}.routes.{j}")
        for j, p in enumerate(_list(raw, "plugins", source, f"services.{i}.")):
            plugins.append(_Plugin(dict(p), f"services.{i}.plugins.{j}", service=service, consumer=p.get("consumer")))

    def service_of(ref: Any, where: str) -> Service | None:
        name = _ref(ref)
        if name is None:
            return None
        if name not in services:
            raise ConfigError(f"no service {name!r} in this file", file=source, field=where)
        return services[name]

    for i, raw in enumerate(_list(doc, "routes", source, "")):
        add_route(raw, service_of(raw.get("service"), f"routes.{i}.service"), f"routes.{i}")

    for i, raw in enumerate(_list(doc, "plugins", source, "")):
        where = f"plugins.{i}"
        route_ref = _ref(raw.get("route"))
        if route_ref is not None and route_ref not in routes_by_ref:
            raise ConfigError(f"no route {route_ref!r} in this file", file=source, field=f"{where}.route")
        plugins.append(_Plugin(
            dict(raw), where, route=routes_by_ref.get(route_ref) if route_ref else None,
            service=service_of(raw.get("service"), f"{where}.service"), consumer=raw.get("consumer"),
        ))
    for i, raw in enumerate(_list(doc, "consumers", source, "")):
        for j, p in enumerate(_list(raw, "plugins", source, f"consumers.{i}.")):
            plugins.append(_Plugin(dict(p), f"consumers.{i}.plugins.{j}", consumer=raw.get("username") or raw.get("id") or i))

    router = Router(routes, source)
    groups = ConsumerGroups(_list(doc, "consumers", source, ""), _list(doc, "consumer_groups", source, ""))
    declarative = Declarative(source, router, [], services=list({s.id: s for s in services.values()}.values()),
                              consumer_groups=groups)
    not_run: list[str] = []
    ranked: list[tuple[_Plugin, Workflow]] = []
    taken: dict[tuple[str | None, str | None], str] = {}
    for plugin in plugins:
        name = plugin.raw.get("name")
        if name != "datakit":
            not_run.append(f"{name} ({plugin.scope})")
            continue
        if plugin.consumer is not None or plugin.raw.get("consumer_group") is not None:
            logger.warning(
                "Datakit: %s: the datakit plugin at %s is scoped to a consumer; Kong's consumer "
                "authentication does not run here, so it never runs", source, plugin.where,
            )
            continue
        scope_key = (plugin.route.id if plugin.route else None, plugin.service.id if plugin.service else None)
        if scope_key in taken:  # Kong's unique constraint on (name, route, service, consumer)
            raise ConfigError(f"a second datakit plugin on the {plugin.scope} (the first is at {taken[scope_key]})",
                              file=source, field=plugin.where)
        taken[scope_key] = plugin.where
        body = {k: v for k, v in plugin.raw.items() if k not in _SCOPE_KEYS}
        if doc.get("vaults") is not None:
            body["vaults"] = doc["vaults"]
        if balanced:  # kong.service.upstream names the file's Upstream entities
            body["upstreams"] = balanced
        try:
            wf = load_plugin(body, f"kong:{plugin.scope}".replace(" ", "-"))
        except ConfigError as e:  # name the plugin's place in the file
            e.file = f"{source} ({plugin.where})"
            raise
        wf.match = matcher = RouterMatch(declarative, plugin.scope)
        matcher.workflow = wf
        declarative.workflows.append(wf)
        if wf.enabled:
            ranked.append((plugin, wf))
    if not_run:
        logger.warning("Datakit: %s: plugins not run here (only datakit runs): %s", source, ", ".join(not_run))

    for route in routes:
        best: tuple[int, Workflow] | None = None
        for plugin, wf in ranked:
            applies = (plugin.route is None or plugin.route is route) and (
                plugin.service is None or plugin.service is route.service
            )
            if applies and (best is None or plugin.rank > best[0]):
                best = (plugin.rank, wf)
        if best is not None:
            declarative.plugin_for_route[route.id] = best[1]
    return declarative
