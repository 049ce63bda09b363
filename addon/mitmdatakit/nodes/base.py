"""The one interface every node type implements, and the registry of types.

A node module defines one `Node` subclass and decorates it with `@register`.
The graph, the runtime and the loader only ever talk to this interface, so a
new node type is one new module under `mitmdatakit/nodes/`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import ConfigError
from ..ports import Phase, Ports

if TYPE_CHECKING:
    from ..context import NodeContext

__all__ = [
    "Node",
    "NodeSpec",
    "Outputs",
    "Skip",
    "WorkflowInfo",
    "implicit_names",
    "node_types",
    "register",
]


@dataclass(frozen=True)
class NodeSpec:
    """One entry of a workflow's `nodes` list, as validated by the schema."""

    name: str
    type: str
    index: int | None  # position in `nodes` counted from 1, as Kong shows it; None for an implicit node
    attrs: Mapping[str, Any]  # everything but name/type/input(s)/output(s)
    source: str = "<memory>"  # the workflow file, for error messages
    connections: Mapping[str, Any] = field(default_factory=dict)  # input(s)/output(s) as written


@dataclass
class Skip:
    """A node result that also skips other nodes (what `branch` returns)."""

    outputs: dict[str, Any]
    skip: frozenset[str]
    routing: Any = None  # the value that decided (traced on each skipped node's `skip`)


Outputs = Mapping[str, Any] | Skip


class Node:
    """Base of all node types.

    Subclasses set `type_name` and `schema` (JSON-Schema `properties` of the
    node's own attributes, plus `required`), validate their attributes in
    `__init__` (raising `self.config_error(...)`), declare their ports and
    implement `run`.

    `run(inputs, ctx)` receives the values of the connected input ports (a
    node-wise input arrives as `inputs["$self"]`) and the run's
    `NodeContext`, and returns a mapping of output port to value
    (`{"$self": v}` for single-value nodes). It may be a plain function
    (fast path, no task is created) or a coroutine function. Raising
    `NodeError` fails the workflow with that message.
    """

    type_name: ClassVar[str]
    schema: ClassVar[Mapping[str, Any]] = {"properties": {}}
    """JSON-Schema fragment for the node's attributes: `properties`, `required`."""

    implicit: ClassVar[bool] = False
    """Implicit node types (request, response, vault, ...) cannot be declared:
    the one node of such a type exists, named as its type, once a connection
    names it. This is the only record of it (see `declared`)."""

    partial_inputs: ClassVar[bool] = False
    """Run even when some inputs come from skipped nodes (the implicit sinks)."""

    writes: ClassVar[str | None] = None
    """"request" or "response": the node writes its `headers`, `body` (and
    `query`) inputs into that message (scrub.py keeps secrets out of records)."""

    traces_dispatch: ClassVar[bool] = False
    """Kong traces the node as async (call nodes): a second `run` event when
    its work is dispatched, `resume` with the wait's duration when it is back."""

    gates_control: ClassVar[bool] = False
    """The node decides which other nodes run (`gated_nodes`); graphs draw
    it as a decision."""

    def __init__(self, spec: NodeSpec, workflow: WorkflowInfo) -> None:
        self.spec = spec
        self.name = spec.name
        self.index = spec.index
        self.workflow = workflow

    # -- ports -------------------------------------------------------------

    def input_ports(self) -> Ports:
        return Ports()

    def output_ports(self) -> Ports:
        return Ports()

    # -- planning hooks ----------------------------------------------------

    @property
    def declared(self) -> bool:
        """Whether the node is one of the workflow's `nodes` (it has a
        position there) rather than an implicit one."""
        return not self.implicit

    def min_phase(self) -> Phase:
        """The earliest phase the node can run in, beyond its data dependencies
        (a property read of the upstream's response status must wait for it)."""
        return Phase.REQUEST

    def max_phase(self) -> Phase:
        """The latest phase the node can run in: a dependency that runs
        later is a load error, `too_late` saying why."""
        return Phase.RESPONSE

    too_late: ClassVar[str] = "the node cannot run after the request was proxied"

    def gated_nodes(self) -> Mapping[str, frozenset[str]]:
        """Nodes whose running this node decides (branch: its then/else lists)."""
        return {}

    def static_outputs(self) -> Mapping[str, Any] | None:
        """Outputs known when loading (static), checked against typed inputs."""
        return None

    def sealed_inputs(self) -> frozenset[str]:
        """Input ports whose value cannot be read back from any output (a
        key that signs or verifies): a secret there does not make the
        outputs secret (taint.py). The input itself stays redacted."""
        return frozenset()

    def secret_outputs(self) -> frozenset[str]:
        """Output ports whose values are secrets: redacted in traces and logs."""
        return frozenset()

    def connected(self, inputs: frozenset[str]) -> None:
        """Told which input ports are fed (from either end of a connection),
        before phases are planned. May raise `self.config_error(...)`."""

    def bind(self, used_outputs: frozenset[str]) -> None:
        """Told once after planning which output ports are connected."""

    def changes_client_response(self) -> bool:
        """Whether running this node changes the response the client gets
        (exit, the `response` node, setting its status). Asked once, after
        `connected` and `bind`."""
        return False

    def buffered_bodies(self) -> frozenset[str]:
        """Which flow bodies this node reads or writes ("request",
        "response"): mitmproxy must buffer them, not stream them. Asked
        once, after `connected` and `bind`."""
        return frozenset()

    # -- execution ---------------------------------------------------------

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> Outputs | Awaitable[Outputs]:
        raise NotImplementedError

    # -- helpers -----------------------------------------------------------

    def summary(self) -> str:
        """A short hint of what this node does, for graph labels ("" for none).
        Never a secret: labels end up in files and pictures."""
        return ""

    def attr(self, key: str, default: Any = None) -> Any:
        value = self.spec.attrs.get(key)
        return default if value is None else value

    def config_error(self, message: str, field: str | None = None) -> ConfigError:
        return ConfigError(
            message,
            file=self.spec.source,
            node=self.name,
            index=self.index,
            node_type=self.type_name,
            field=field,
        )

    def __repr__(self) -> str:
        return f"<{self.type_name} node {self.name!r}>"


@dataclass
class WorkflowInfo:
    """What a node may know about its workflow while it is built."""

    name: str
    source: str
    resources: Mapping[str, Any]  # built resource objects by resource name
    raw_resources: Mapping[str, Any]  # the `resources` block as written
    upstreams: Mapping[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, type[Node]] = {}


def register(cls: type[Node]) -> type[Node]:
    """Class decorator: make a node type known by its `type_name`."""
    name = cls.type_name
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise RuntimeError(f"node type {name!r} registered twice")
    _REGISTRY[name] = cls
    return cls


def implicit_names() -> frozenset[str]:
    """The names of the implicit nodes (each is named as its type)."""
    return frozenset(name for name, cls in node_types().items() if cls.implicit)


def node_types() -> Mapping[str, type[Node]]:
    """All registered node types (importing the node modules first)."""
    from . import load_all

    load_all()
    return _REGISTRY
