"""The dependency graph: connection labels, port types, validation and plan.

Built once per workflow when it loads. The result (`Plan`) is all the
runtime needs: per node, where each input comes from, what it waits for,
and in which phase it runs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .connections import Conn, Label
from .errors import ConfigError
from .nodes.base import Node, NodeSpec, WorkflowInfo, node_types
from .ports import SELF, Phase, Ports, PortType
from .taint import SecretWrite, secret_ports, secret_writes


@dataclass
class Plan:
    nodes: list[Node]  # declared nodes first, in file order (node.index = i + 1), then implicit ones
    inputs: list[list[Conn]]
    deps: list[frozenset[int]]  # data and control dependencies
    dependents: list[list[int]]
    phase: list[Phase]
    gates: list[dict[str, frozenset[int]]]  # branch outcome -> nodes it enables
    gated_by: list[frozenset[int]]
    order: list[int]  # a topological order
    by_name: dict[str, int]
    needs_response_phase: bool = False
    # the flow bodies ("request", "response") some node reads or writes:
    # mitmproxy must buffer them even when stream_large_bodies applies
    buffered_bodies: frozenset[str] = frozenset()
    # some node works before proxying (anything but an input-less implicit
    # source): such a workflow cannot run on a request mitmproxy streams,
    # whose request hook comes only after the body went upstream
    acts_before_proxying: bool = False
    # a node of the response phase changes the client's response: such a
    # workflow cannot run on a response mitmproxy streams
    changes_response_late: bool = False
    # per node: ports whose values derive from a secret (see taint.py)
    secret_outputs: list[Any] = field(default_factory=list)
    secret_inputs: list[Any] = field(default_factory=list)
    # message writers fed from a secret (see scrub.py)
    secret_request_writes: tuple[SecretWrite, ...] = ()
    secret_response_writes: tuple[SecretWrite, ...] = ()

    def index(self, name: str) -> int | None:
        return self.by_name.get(name)

    @cached_property
    def dependency_counts(self) -> list[int]:
        """Per node, how many nodes it waits for (a run counts them down)."""
        return [len(d) for d in self.deps]

    @cached_property
    def declared(self) -> tuple[tuple[int, str, str], ...]:
        """(index in `nodes`, name, type) of the workflow's own nodes, the
        ones a run summary lists (summary.py: once per plan, not per flow)."""
        return tuple((i, node.name, node.type_name) for i, node in enumerate(self.nodes) if not node.implicit)

    @cached_property
    def phase_order(self) -> dict[Phase, tuple[int, ...]]:
        """Per phase, its nodes in topological order (where a phase starts)."""
        return {p: tuple(i for i in self.order if self.phase[i] is p) for p in Phase}


class _Builder:
    def __init__(self, specs: Sequence[NodeSpec], declared: Sequence[Node], info: WorkflowInfo) -> None:
        self.specs = list(specs)
        self.nodes: list[Node] = list(declared)
        self.info = info
        self.by_name = {n.name: i for i, n in enumerate(self.nodes)}
        self.inputs: list[list[Conn]] = [[] for _ in self.nodes]
        # per target node: port -> list of (source node name, key or None)
        self.taken: list[dict[str | None, list[tuple[str, str | None]]]] = [{} for _ in self.nodes]
        self.used: list[set[str]] = [set() for _ in self.nodes]
        self.control: list[set[int]] = [set() for _ in self.nodes]

    # -- nodes -------------------------------------------------------------

    def node(self, name: str, spec: NodeSpec, fieldname: str, label: str) -> int:
        if name in self.by_name:
            return self.by_name[name]
        cls = node_types().get(name)
        if cls is not None and cls.implicit:  # an implicit node is named as its type
            implicit = cls(NodeSpec(name=name, type=name, index=None, attrs={}, source=self.info.source), self.info)
            self.nodes.append(implicit)
            self.inputs.append([])
            self.taken.append({})
            self.used.append(set())
            self.control.append(set())
            self.by_name[name] = len(self.nodes) - 1
            return self.by_name[name]
        raise _err(spec, fieldname, f"invalid connection {label!r}: unknown node {name!r}")

    # -- connections -------------------------------------------------------

    def connect(self, spec: NodeSpec, fieldname: str, src: Label, dst: Label, text: str) -> None:
        si = self.node(src.node, spec, fieldname, text)
        di = self.node(dst.node, spec, fieldname, text)
        snode, dnode = self.nodes[si], self.nodes[di]
        # Kong names the target input in its messages: ("get-bar" -> "response.body")
        target = f"{dnode.name}.{dst.port}" if dst.port else dnode.name
        where = f'("{snode.name}" -> "{target}")'
        if si == di:
            raise _err(spec, fieldname, f"invalid dependency {where}: circular dependency")
        sports, dports = snode.output_ports(), dnode.input_ports()
        literal = snode.static_outputs()
        if src.port is None and sports.self_type is None and not sports.named and not sports.dynamic and literal is None:
            raise _err(spec, fieldname, f"invalid connection {where}: node {snode.name!r} ({snode.type_name}) has no outputs")
        if dst.port is None and dports.self_type is None and not dports.named and not dports.dynamic:
            raise _err(spec, fieldname, f"invalid connection {where}: node {dnode.name!r} ({dnode.type_name}) takes no inputs")

        # source end: its type (None = object of sports.named)
        stype: PortType | None
        if src.port is None:
            stype = sports.self_type if sports.self_type is not None else PortType.OBJECT
            svalue = literal
        else:
            stype = sports.type_of(src.port)
            if stype is None:
                raise _err(spec, fieldname, f"invalid connection {where}: node {snode.name!r} has no output port {src.port!r} "
                           f"({_valid_ports('output', sports, literal)})")
            svalue = literal.get(src.port) if literal is not None else None
            if src.key is not None:
                if stype not in (PortType.MAP, PortType.ANY):
                    raise _err(spec, fieldname, f"invalid connection {where}: output {snode.name}.{src.port} is a {stype}, it has no keys")
                stype = PortType.ANY
                svalue = svalue.get(src.key) if isinstance(svalue, Mapping) else None
        src_port = SELF if (src.port is None and sports.self_type is not None) else src.port
        if src.port is None and literal is not None:
            src_port = None  # a static's node-wise value is its whole mapping
        is_literal = literal is not None and (src.port is None or src.port in literal)

        # target end
        if dst.port is None and dports.self_type is not None:
            dst = Label(dst.node, SELF)
        if dst.port is None:
            # node-wise into a node with fixed ports
            named = dict(dports.named)
            if stype is PortType.OBJECT and src.port is None:
                shared = [p for p in (literal.keys() if literal is not None else sports.named) if p in named]
                if not shared:
                    raise _err(spec, fieldname, f"invalid connection {where}: no ports in common")
                self._claim(spec, fieldname, di, None, None, snode.name, where, target)
                for port in shared:
                    value = literal[port] if literal is not None else None
                    self._check_type(spec, fieldname, where, sports.type_of(port) or PortType.ANY, named[port], value, literal is not None, port)
                    self._add(di, Conn(si, port, None, port, None, named[port]), si, port)
                return
            if stype is PortType.ANY:
                self._claim(spec, fieldname, di, None, None, snode.name, where, target)
                self._add(di, Conn(si, src_port, src.key, None, None, PortType.OBJECT), si, src_port)
                return
            raise _err(spec, fieldname, f"invalid connection {where}: type mismatch: {stype} -> object")

        dtype = dports.type_of(dst.port)
        if dtype is None:
            raise _err(spec, fieldname, f"invalid connection {where}: node {dnode.name!r} has no input port {dst.port!r} "
                       f"({_valid_ports('input', dports, None)})")
        if dst.key is not None:
            if dtype not in (PortType.MAP, PortType.ANY):
                raise _err(spec, fieldname, f"invalid connection {where}: input {dnode.name}.{dst.port} is a {dtype}, it has no keys")
            dtype = PortType.ANY
        if stype is PortType.OBJECT and dtype is PortType.MAP and literal is None:
            raise _err(spec, fieldname, f"invalid connection {where}: type mismatch: object -> map")
        self._check_type(spec, fieldname, where, stype, dtype, svalue, is_literal, dst.port)
        self._claim(spec, fieldname, di, dst.port, dst.key, snode.name, where, target)
        self._add(di, Conn(si, src_port, src.key, dst.port, dst.key, dtype), si, src_port)

    def _check_type(self, spec: NodeSpec, fieldname: str | None, where: str, stype: PortType, dtype: PortType, value: Any, is_literal: bool, port: str | None) -> None:
        if is_literal:
            try:
                dtype.coerce(value)
            except ValueError:
                raise _err(spec, fieldname, f"invalid connection {where}: static value for {port!r} is not a {dtype}") from None
            return
        if dtype is PortType.ANY or stype is PortType.ANY or stype == dtype or dtype.converts_from(stype):
            return  # equal, dynamic, or convertible (checked when it runs)
        if stype is PortType.OBJECT and dtype is PortType.MAP:
            raise _err(spec, fieldname, f"invalid connection {where}: type mismatch: object -> map")
        raise _err(spec, fieldname, f"invalid connection {where}: type mismatch: {stype} -> {dtype}")

    def _claim(self, spec: NodeSpec, fieldname: str | None, di: int, port: str | None, key: str | None, src_name: str, where: str, target: str) -> None:
        """Record that `port` (None: the whole node) of node `di` is fed, and
        refuse a second feed of the same input. Both sides of the refusal name
        the new connection's target, as Kong's do."""
        taken = self.taken[di]
        if key is not None and port == "headers":
            key = key.lower()  # header names are case-insensitive
        clash = None
        if port is None:
            for entries in taken.values():
                if entries:
                    clash = entries[0]
                    break
        else:
            for other_key_src in taken.get(None, ()):
                clash = other_key_src
            for entry in taken.get(port, ()):
                if key is None or entry[1] is None or entry[1] == key:
                    clash = entry
                    break
        if clash is not None:
            raise _err(spec, fieldname, f'invalid connection {where}: conflicts with existing connection ("{clash[0]}" -> "{target}")')
        taken.setdefault(port, []).append((src_name, key))

    def _add(self, di: int, conn: Conn, si: int, src_port: str | None) -> None:
        self.inputs[di].append(conn)
        if src_port is None:
            self.used[si].update(self.nodes[si].output_ports().named or ())
            self.used[si].add(SELF)
        else:
            self.used[si].add(src_port)

    # -- declarations --------------------------------------------------------

    def declare_all(self, raw_nodes: Sequence[Mapping[str, Any]]) -> None:
        declared = self.nodes[: len(self.specs)]  # implicit nodes are appended while declaring
        for spec, raw, node in zip(self.specs, raw_nodes, declared, strict=True):
            this = Label(node.name)
            for whole, by_port, inbound in (("input", "inputs", True), ("output", "outputs", False)):
                if raw.get(whole) is not None:
                    self._declare(spec, whole, raw[whole], this, inbound)
                for port, label in (raw.get(by_port) or {}).items():
                    if label is not None:
                        port = str(port)
                        self._declare(spec, f"{by_port}.{port}", label, Label(node.name, *port.split(".", 1)), inbound)

    def _declare(self, spec: NodeSpec, fieldname: str, text: str, this: Label, inbound: bool) -> None:
        other = Label.parse(text)
        if not other.node:
            raise _err(spec, fieldname, f"invalid connection label {text!r} (expected NODE, NODE.PORT or NODE.PORT.KEY)")
        if inbound:
            self.connect(spec, fieldname, other, this, text)
        else:
            self.connect(spec, fieldname, this, other, text)

    def gates(self) -> list[dict[str, frozenset[int]]]:
        out: list[dict[str, frozenset[int]]] = []
        for i, node in enumerate(self.nodes):
            gates = {}
            for outcome, names in node.gated_nodes().items():
                targets = set()
                for name in names:
                    j = self.by_name.get(name)
                    if j is None or j >= len(self.specs):
                        raise _err(node.spec, outcome, f"unknown node {name!r} in {outcome!r}")
                    if j == i:
                        raise _err(node.spec, outcome, f'invalid dependency ("{node.name}" -> "{name}"): circular dependency')
                    targets.add(j)
                    self.control[j].add(i)
                gates[outcome] = frozenset(targets)
            out.append(gates)
        return out



def _valid_ports(kind: str, ports: Any, literal: Mapping[str, Any] | None) -> str:
    """What a wrong port label could have said."""
    names = sorted(literal) if literal is not None else sorted(ports.named)
    return f"its {kind} ports: {', '.join(names)}" if names else f"it has no named {kind} ports"

def _err(spec: NodeSpec, fieldname: str | None, message: str) -> ConfigError:
    return ConfigError(message, file=spec.source, node=spec.name, index=spec.index, node_type=spec.type, field=fieldname)


def build_plan(specs: Sequence[NodeSpec], raw_nodes: Sequence[Mapping[str, Any]], declared: Sequence[Node], info: WorkflowInfo) -> Plan:
    b = _Builder(specs, declared, info)
    b.declare_all(raw_nodes)
    gates = b.gates()
    nodes = b.nodes
    n = len(nodes)

    # a node that both takes `$self` and named ports (jq with both) is ambiguous
    for i, node in enumerate(nodes):
        ports = {c.dst_port for c in b.inputs[i]}
        if SELF in ports and len(ports) > 1:
            raise _err(node.spec, "inputs", "node-wise input ('input') cannot be combined with named inputs")

    for i, node in enumerate(nodes):
        fed = frozenset(c.dst_port if c.dst_port is not None else "*" for c in b.inputs[i])
        try:
            node.connected(fed)
        except ConfigError as e:
            raise e.located(info.source) from None

    deps = [frozenset({c.src for c in b.inputs[i]} | b.control[i]) for i in range(n)]
    dependents: list[list[int]] = [[] for _ in range(n)]
    for i in range(n):
        for d in deps[i]:
            dependents[d].append(i)

    order = _toposort(nodes, deps, dependents)

    phase = [Phase.REQUEST] * n
    for i in order:
        p = nodes[i].min_phase()
        for d in deps[i]:
            p = max(p, phase[d])
        phase[i] = p
    for i in order:
        node = nodes[i]
        if phase[i] > node.max_phase():
            culprit = next((nodes[d].name for d in deps[i] if phase[d] > node.max_phase()), node.name)
            raise _err(node.spec if node.declared else _first_spec_feeding(b, i), None,
                       f'invalid dependency ("{culprit}" -> "{node.name}"): {node.too_late}')

    for i, node in enumerate(nodes):
        node.bind(frozenset(b.used[i]))

    secret_out, secret_in = secret_ports(nodes, b.inputs, order)
    writes = secret_writes(nodes, b.inputs, secret_out)
    return Plan(
        secret_outputs=secret_out,
        secret_inputs=secret_in,
        secret_request_writes=tuple(w for w in writes if w.writes == "request"),
        secret_response_writes=tuple(w for w in writes if w.writes == "response"),
        nodes=nodes,
        inputs=b.inputs,
        deps=deps,
        dependents=dependents,
        phase=phase,
        gates=gates,
        gated_by=[frozenset(b.control[i]) for i in range(n)],
        order=order,
        by_name=dict(b.by_name),
        needs_response_phase=any(p is Phase.RESPONSE for p in phase),
        buffered_bodies=frozenset().union(*(node.buffered_bodies() for node in nodes)),
        changes_response_late=any(
            phase[i] is Phase.RESPONSE and node.changes_client_response() for i, node in enumerate(nodes)
        ),
        acts_before_proxying=any(
            phase[i] is Phase.REQUEST and (node.declared or deps[i]) for i, node in enumerate(nodes)
        ),
    )


def _first_spec_feeding(b: _Builder, target: int) -> NodeSpec:
    for c in b.inputs[target]:
        if b.nodes[c.src].declared:
            return b.nodes[c.src].spec
    return b.specs[0]


def _toposort(nodes: Sequence[Node], deps: Sequence[frozenset[int]], dependents: Sequence[list[int]]) -> list[int]:
    remaining = [len(d) for d in deps]
    queue = deque(i for i, r in enumerate(remaining) if r == 0)
    order = []
    while queue:
        i = queue.popleft()
        order.append(i)
        for j in dependents[i]:
            remaining[j] -= 1
            if remaining[j] == 0:
                queue.append(j)
    if len(order) == len(nodes):
        return order
    # find one cycle to name it
    left = {i for i, r in enumerate(remaining) if r > 0}
    start = min(left)  # the first in file order: declared nodes come first
    seen: dict[int, int] = {}
    path = [start]
    cur = start
    while cur not in seen:
        seen[cur] = len(path) - 1
        cur = next(d for d in deps[cur] if d in left)
        path.append(cur)
    cycle = path[seen[cur]:]
    a, b = nodes[cycle[1]], nodes[cycle[0]]  # cycle[1] feeds cycle[0]
    names = " -> ".join(f'"{nodes[i].name}"' for i in reversed(cycle))
    spec = b.spec if b.declared else a.spec
    raise ConfigError(
        f'invalid dependency ("{a.name}" -> "{b.name}"): circular dependency ({names})',
        file=spec.source, node=spec.name, index=spec.index, node_type=spec.type,
    )


__all__ = ["Conn", "Label", "Plan", "Ports", "build_plan"]
