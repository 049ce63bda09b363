"""What a node sees of the run it is part of (Kong: `fn run(&self, ctx, input)`).

`NodeContext` is the narrow, typed view nodes and properties get as `ctx`:
the flow, the phase, the shared services, the workflow's facts, the
client response they may change, and the per-flow property stores. The
scheduler (`runtime.FlowRun`) implements it; nodes never see the scheduler.

Imports nothing from the package at run time, so the node interface does
not depend on the runtime (no import circle).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import aiohttp
    from mitmproxy import http

    from .client_response import ClientResponse
    from .ports import Phase

__all__ = ["MatchFacts", "NodeContext", "NodeServices", "WorkflowFacts"]


class NodeServices(Protocol):
    """What all flows share (`runtime.Services`), as far as nodes use it."""

    node_id: str
    body_size_limit: int  # bytes, after decompression, of any body a node reads
    option: Callable[[str], Any]  # a mitmproxy option's value; KeyError if there is none

    def option_or(self, name: str, default: Any) -> Any: ...

    def shared(self, key: str, factory: Callable[[], Any]) -> Any: ...

    def http(self) -> aiohttp.ClientSession: ...


class MatchFacts(Protocol):
    """A workflow's `match`, as the `kong.router.*` properties read it."""

    def describe(self) -> dict[str, Any]: ...

    def matched_route(self, flow: http.HTTPFlow) -> dict[str, Any] | None:
        """The Kong route entity the flow matched; None without a Kong router."""
        ...

    def matched_service(self, flow: http.HTTPFlow) -> dict[str, Any] | None:
        """The route's Kong service entity; None without one."""
        ...

    def consumer_groups(self, consumer: Any) -> list[dict[str, Any]] | None:
        """The decK file's groups of `consumer`; None without any."""
        ...


class WorkflowFacts(Protocol):
    """What a running node may know of its workflow (`workflow.Workflow`)."""

    @property
    def name(self) -> str: ...

    @property
    def source(self) -> str: ...

    @property
    def upstreams(self) -> Mapping[str, Any]: ...

    @property
    def match(self) -> MatchFacts: ...


class NodeContext(Protocol):
    """The run one node executes in: one workflow for one flow."""

    flow: http.HTTPFlow
    phase: Phase

    @property
    def services(self) -> NodeServices: ...  # read-only, so the scheduler's own `Services` fits

    client_response: ClientResponse  # the effects on the response the client gets
    # property stores: kong.ctx.shared.*, kong.ctx.plugin.*, kong.client.*
    ctx_shared: dict[str, Any]
    ctx_plugin: dict[str, Any]
    consumer: Any
    credential: Any
    # (host, port, scheme) as the client sent them, saved before a property
    # retargets the upstream; None while it was not retargeted
    client_request: tuple[str, int, str] | None

    @property
    def workflow(self) -> WorkflowFacts: ...

    def respond(self, status: int, headers: Mapping[str, Any] | None, body: Any, node: str) -> None:
        """An exit node answers the client (the first exit wins)."""
        ...
