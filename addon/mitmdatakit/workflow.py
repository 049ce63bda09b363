"""A loaded workflow: its plan, resources and the flows it applies to."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from . import config_regex
from .codecs import normalize_path, normalize_path_regex
from .config_regex import ConfigRegex
from .context import MatchFacts
from .errors import ConfigError
from .graph import Plan
from .hosts import normalize_host, request_host, wildcard_host_test
from .nodes.base import WorkflowInfo
from .trace import Redactor

if TYPE_CHECKING:
    from mitmproxy import http


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


class RequestFacts:
    """What `match` blocks test, read from a flow's request at most once:
    the method, the host (`hosts.request_host`: lowercase, no port, no
    trailing dot; the client's Host in reverse mode) and the path as Kong's
    router normalizes it (`codecs.normalize_path`, the `request` node's
    `path` output too).

    Selecting a workflow tests the workflows in order; with many loaded,
    decoding the method, host and path again for each one was most of the
    cost. Each fact is computed on first use and kept.

    `with_host` gives the same facts for another host the request names
    (`hosts.other_hosts`), to see whether that host would pick another
    workflow.
    """

    __slots__ = ("_host", "_method", "_path", "flow", "host_named")

    def __init__(self, flow: http.HTTPFlow) -> None:
        self.flow = flow
        self._method: str | None = None
        self._host: str | None = None
        self._path: str | None = None
        self.host_named = False  # True: `host` is not `request_host` but another host the request names

    @property
    def host_read(self) -> bool:
        return self._host is not None

    def with_host(self, host: str) -> RequestFacts:
        other = RequestFacts(self.flow)
        other._method, other._path, other._host = self._method, self._path, host
        other.host_named = True
        return other

    @property
    def method(self) -> str:
        if self._method is None:
            self._method = self.flow.request.method.upper()
        return self._method

    @property
    def host(self) -> str:
        if self._host is None:
            self._host = request_host(self.flow)
        return self._host

    @property
    def path(self) -> str:
        if self._path is None:
            self._path = normalize_path(self.flow.request.path.partition("?")[0] or "/")
        return self._path


class Matcher(MatchFacts, Protocol):
    """What picks a workflow's flows: a `match` block (`Match`) or, for a
    Kong declarative file, the file's router (`kong.declarative.RouterMatch`)."""

    def test(self, facts: RequestFacts) -> bool: ...

    def accepts(self, flow: http.HTTPFlow) -> bool: ...


@dataclass
class Match:
    """The `match` block: hosts, paths, methods and a mitmproxy filter."""

    hosts: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    filter: str | None = None
    # the same, prepared for testing: sets and tuples so that most tests are
    # one C-level call (`in`, `str.startswith(tuple)`)
    _methods: frozenset[str] = field(default_factory=frozenset, repr=False)
    _exact_hosts: frozenset[str] = field(default_factory=frozenset, repr=False)
    _wildcard_hosts: list[Callable[[str], bool]] = field(default_factory=list, repr=False)
    _prefixes: tuple[str, ...] = field(default=(), repr=False)
    _regexes: list[ConfigRegex] = field(default_factory=list, repr=False)
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
        m._methods = frozenset(m.methods)
        exact = set()
        for host in m.hosts:
            pattern = normalize_host(host)  # as the request host is: a port in a rule is ignored
            wildcard = wildcard_host_test(pattern)
            if wildcard is None:
                exact.add(pattern)
            else:
                m._wildcard_hosts.append(wildcard)
        m._exact_hosts = frozenset(exact)
        prefixes = []
        for path in m.paths:
            if path.startswith("~"):
                try:
                    m._regexes.append(ConfigRegex(normalize_path_regex(path[1:])))
                except config_regex.error as e:
                    raise ConfigError(f"invalid path regex {path!r}: {e}", file=source, field="match.paths") from None
            else:  # Kong normalizes plain paths as it does requests' paths
                prefixes.append(normalize_path(path))
        m._prefixes = tuple(prefixes)
        if m.filter:
            from mitmproxy import flowfilter

            try:
                m._filter = flowfilter.parse(m.filter)
            except ValueError as e:
                raise ConfigError(f"invalid mitmproxy filter {m.filter!r}: {e}", file=source, field="match.filter") from None
        return m

    def accepts(self, flow: http.HTTPFlow) -> bool:
        return self.test(RequestFacts(flow))

    def test(self, facts: RequestFacts) -> bool:
        """`accepts`, with the request's facts shared across workflows."""
        if self._methods and facts.method not in self._methods:
            return False
        if self.hosts:
            host = facts.host
            if host not in self._exact_hosts and not (
                self._wildcard_hosts and any(test(host) for test in self._wildcard_hosts)
            ):
                return False
        if self.paths:
            path = facts.path
            if not path.startswith(self._prefixes) and not (
                self._regexes and any(rx.match(path) is not None for rx in self._regexes)
            ):
                return False
        return self._filter is None or self._filter(facts.flow)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("hosts", "paths", "methods"):
            if getattr(self, key):
                out[key] = list(getattr(self, key))
        if self.filter:
            out["filter"] = self.filter
        return out

    def matched_route(self, flow: http.HTTPFlow) -> None:
        return None  # a `match` block has no Kong route

    def matched_service(self, flow: http.HTTPFlow) -> None:
        return None

    def consumer_groups(self, consumer: Any) -> None:
        return None  # consumer groups come from a decK file


@dataclass
class Workflow:
    name: str
    source: str
    debug: bool
    enabled: bool
    match: Matcher
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

    def applies_to(self, flow: http.HTTPFlow, facts: RequestFacts | None = None) -> bool:
        return self.enabled and self.match.test(facts or RequestFacts(flow))

    async def aclose(self) -> None:
        for resource in self.info.resources.values():
            close = getattr(resource, "aclose", None)
            if close is not None:
                await close()
