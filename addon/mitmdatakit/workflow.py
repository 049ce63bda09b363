"""A loaded workflow: its plan, resources and the flows it applies to."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .graph import Plan
from .nodes.base import WorkflowInfo
from .trace import Redactor

if TYPE_CHECKING:
    from mitmproxy import http


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


@dataclass
class Match:
    """The `match` block: hosts, paths, methods and a mitmproxy filter."""

    hosts: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    filter: str | None = None
    _host_tests: list[Callable[[str], bool]] = field(default_factory=list, repr=False)
    _path_tests: list[Callable[[str], bool]] = field(default_factory=list, repr=False)
    _filter: Callable[[Any], bool] | None = field(default=None, repr=False)

    @classmethod
    def build(cls, raw: Mapping[str, Any] | None, source: str) -> Match:
        raw = raw or {}
        m = cls(
            hosts=_as_list(raw.get("hosts")),
            paths=_as_list(raw.get("paths")),
            methods=[x.upper() for x in _as_list(raw.get("methods"))],
            filter=raw.get("filter"),
        )
        for host in m.hosts:
            m._host_tests.append(_host_test(host.lower()))
        for path in m.paths:
            if path.startswith("~"):
                try:
                    rx = re.compile(path[1:])
                except re.error as e:
                    raise ConfigError(f"invalid path regex {path!r}: {e}", file=source, field="match.paths") from None
                m._path_tests.append(lambda p, rx=rx: rx.match(p) is not None)
            else:
                m._path_tests.append(lambda p, prefix=path: p.startswith(prefix))
        if m.filter:
            from mitmproxy import flowfilter

            try:
                m._filter = flowfilter.parse(m.filter)
            except ValueError as e:
                raise ConfigError(f"invalid mitmproxy filter {m.filter!r}: {e}", file=source, field="match.filter") from None
        return m

    def accepts(self, flow: http.HTTPFlow) -> bool:
        req = flow.request
        if self.methods and req.method.upper() not in self.methods:
            return False
        if self._host_tests:
            host = req.pretty_host.lower()
            if not any(test(host) for test in self._host_tests):
                return False
        if self._path_tests:
            path = req.path.split("?", 1)[0]
            if not any(test(path) for test in self._path_tests):
                return False
        if self._filter is not None and not self._filter(flow):
            return False
        return True

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("hosts", "paths", "methods"):
            if getattr(self, key):
                out[key] = list(getattr(self, key))
        if self.filter:
            out["filter"] = self.filter
        return out


def _host_test(pattern: str) -> Callable[[str], bool]:
    if pattern.startswith("*."):
        suffix = pattern[1:]
        return lambda host: host.endswith(suffix) and len(host) > len(suffix)
    if pattern.endswith(".*"):
        prefix = pattern[:-1]
        return lambda host: host.startswith(prefix) and len(host) > len(prefix)
    return lambda host: host == pattern


@dataclass
class Workflow:
    name: str
    source: str
    debug: bool
    enabled: bool
    match: Match
    plan: Plan
    info: WorkflowInfo
    secrets: Sequence[str] = ()
    redactor: Redactor = field(default_factory=Redactor)

    @property
    def upstreams(self) -> Mapping[str, Any]:
        return self.info.upstreams

    @property
    def resources(self) -> Mapping[str, Any]:
        return self.info.resources

    def applies_to(self, flow: http.HTTPFlow) -> bool:
        return self.enabled and self.match.accepts(flow)

    async def aclose(self) -> None:
        for resource in self.info.resources.values():
            close = getattr(resource, "aclose", None)
            if close is not None:
                await close()
