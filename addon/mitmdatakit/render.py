"""Drawing a workflow's graph: Mermaid, Graphviz dot and text (`datakit
graph`, the `datakit.graph` command).

Every format shows the same model (`GraphModel`): declared nodes with their
type and summary, the implicit nodes something connects to, the data
connections (SOURCE.PORT -> TARGET.PORT), control edges of nodes that gate
others (then/else), and which nodes run before proxying and which after
the upstream answered.
"""

from __future__ import annotations

from collections.abc import Iterator

from .graph import Conn, Plan
from .ports import SELF, Phase
from .workflow import Workflow

__all__ = ["PHASE_TITLES", "RENDERERS", "GraphModel", "render_dot", "render_mermaid", "render_text"]

PHASE_TITLES = {
    Phase.REQUEST: "Before proxying (request phase)",
    Phase.RESPONSE: "After the upstream answered (response phase)",
}


def port_label(plan: Plan, node: int, port: str | None, key: str | None) -> str:
    """`NODE`, `NODE.PORT` or `NODE.PORT.KEY` for one end of a connection."""
    parts = [plan.nodes[node].name]
    if port is not None and port != SELF:
        parts.append(port)
    if key is not None:
        parts.append(key)
    return ".".join(parts)


def connection_label(plan: Plan, dst: int, conn: Conn) -> str:
    return f"{port_label(plan, conn.src, conn.src_port, conn.src_key)} -> {port_label(plan, dst, conn.dst_port, conn.dst_key)}"


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class GraphModel:
    """What every graph format shows, computed once from a plan."""

    def __init__(self, wf: Workflow) -> None:
        plan = wf.plan
        self.wf = wf
        self.plan = plan
        nodes = plan.nodes
        connected = set()
        for i, conns in enumerate(plan.inputs):
            if conns:
                connected.add(i)
                connected.update(c.src for c in conns)
        # declared nodes always (in file order), implicit ones when something
        # connects to them: sources (request, vault, service_response) first,
        # sinks (service_request, response) last
        shown = [i for i, n in enumerate(nodes) if n.declared or i in connected]
        sources = [i for i in shown if not nodes[i].declared and not plan.inputs[i]]
        sinks = [i for i in shown if not nodes[i].declared and plan.inputs[i]]
        self.shown = sources + [i for i in shown if nodes[i].declared] + sinks
        self.phase = {i: plan.phase[i] for i in self.shown}
        # data edges grouped per (source, target), labels in declaration order
        self.edges: dict[tuple[int, int], list[str]] = {}
        for dst, conns in enumerate(plan.inputs):
            for c in conns:
                self.edges.setdefault((c.src, dst), []).append(connection_label(plan, dst, c))
        # branch control edges: (branch, target, "then" | "else")
        self.control: list[tuple[int, int, str]] = []
        for i, gates in enumerate(plan.gates):
            for outcome in ("then", "else"):
                for j in sorted(gates.get(outcome, ())):  # gated nodes are declared: file order
                    self.control.append((i, j, outcome))

    def implicit(self, i: int) -> bool:
        return not self.plan.nodes[i].declared

    def title(self, i: int) -> tuple[str, str]:
        node = self.plan.nodes[i]
        if self.implicit(i):
            return node.name, "implicit"
        detail = node.summary()
        return node.name, node.type_name + (f": {_short(detail)}" if detail else "")

    def by_phase(self, phase: Phase) -> list[int]:
        return [i for i in self.shown if self.phase[i] is phase]

    def phases(self) -> Iterator[tuple[Phase, list[int]]]:
        """Each phase with nodes, in running order, with its nodes."""
        for phase in (Phase.REQUEST, Phase.RESPONSE):
            members = self.by_phase(phase)
            if members:
                yield phase, members

    def implicit_used(self) -> list[str]:
        return [self.plan.nodes[i].name for i in self.shown if self.implicit(i)]


def _mermaid_text(text: str) -> str:
    """Text for inside a quoted Mermaid label: characters with a meaning in
    Mermaid syntax or HTML become entity codes (`#35;` is `#`)."""
    out = []
    for ch in text:
        if ch.isalnum() or ch in " _-.,:;/()+=*?!@%$'~^>":
            out.append(ch)
        elif ch in "\r\n\t":
            out.append(" ")
        else:
            out.append(f"#{ord(ch)};")
    return "".join(out)


def _mermaid_ids(model: GraphModel) -> dict[int, str]:
    """Safe, unique Mermaid node ids (node names may hold '-', and words like
    `end` are keywords)."""
    ids: dict[int, str] = {}
    used: set[str] = set()
    for i in model.shown:
        node = model.plan.nodes[i]
        base = ("i_" if model.implicit(i) else "n_") + "".join(c if c.isalnum() or c == "_" else "_" for c in node.name)
        candidate, k = base, 2
        while candidate in used:
            candidate, k = f"{base}_{k}", k + 1
        used.add(candidate)
        ids[i] = candidate
    return ids


def render_mermaid(wf: Workflow) -> str:
    model = GraphModel(wf)
    ids = _mermaid_ids(model)
    lines = [
        f"%% Datakit workflow {wf.name} ({wf.source})",
        "%% solid arrows: data connections (SOURCE -> TARGET ports); dotted: branch then/else control",
        "flowchart LR",
    ]
    for phase, members in model.phases():
        sub = {Phase.REQUEST: "before_proxying", Phase.RESPONSE: "after_upstream"}[phase]
        lines.append(f'  subgraph {sub}["{_mermaid_text(PHASE_TITLES[phase])}"]')
        for i in members:
            name, kind = model.title(i)
            label = f"{_mermaid_text(name)}<br/><small>{_mermaid_text(kind)}</small>"
            if model.implicit(i):
                lines.append(f'    {ids[i]}(["{label}"])')
            else:
                lines.append(f'    {ids[i]}["{label}"]')
        lines.append("  end")
    if model.by_phase(Phase.REQUEST) and model.by_phase(Phase.RESPONSE):
        lines.append("  before_proxying ~~~ after_upstream")  # invisible: keeps the phases in reading order
    for (src, dst), labels in model.edges.items():
        text = "<br/>".join(_mermaid_text(label) for label in labels)
        lines.append(f'  {ids[src]} -->|"{text}"| {ids[dst]}')
    for src, dst, outcome in model.control:
        lines.append(f'  {ids[src]} -.->|"{outcome}"| {ids[dst]}')
    implicit = [ids[i] for i in model.shown if model.implicit(i)]
    lines.append("  classDef implicit fill:#eef3ff,stroke:#5b7bd5,stroke-dasharray:4 3")
    branches = [ids[i] for i in model.shown if model.plan.nodes[i].gates_control]
    lines.append("  classDef branch fill:#fff4e0,stroke:#d08b00")
    if implicit:
        lines.append(f"  class {','.join(implicit)} implicit")
    if branches:
        lines.append(f"  class {','.join(branches)} branch")
    return "\n".join(lines) + "\n"


def _dot_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def render_dot(wf: Workflow) -> str:
    model = GraphModel(wf)
    names = {i: _dot_string(model.plan.nodes[i].name) for i in model.shown}
    lines = [
        f"// Datakit workflow {wf.name} ({wf.source})",
        f"digraph {_dot_string(wf.name)} {{",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded", fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    for phase, members in model.phases():
        sub = {Phase.REQUEST: "cluster_before_proxying", Phase.RESPONSE: "cluster_after_upstream"}[phase]
        lines.append(f"  subgraph {sub} {{")
        lines.append(f"    label={_dot_string(PHASE_TITLES[phase])};")
        lines.append('    style="dashed";')
        for i in members:
            name, kind = model.title(i)
            label = _dot_string(f"{name}\n{kind}")
            if model.implicit(i):
                lines.append(f'    {names[i]} [label={label}, shape=ellipse, style="dashed"];')
            elif model.plan.nodes[i].gates_control:
                lines.append(f"    {names[i]} [label={label}, shape=diamond];")
            else:
                lines.append(f"    {names[i]} [label={label}];")
        lines.append("  }")
    for (src, dst), labels in model.edges.items():
        lines.append(f"  {names[src]} -> {names[dst]} [label={_dot_string(chr(10).join(labels))}];")
    for src, dst, outcome in model.control:
        lines.append(f'  {names[src]} -> {names[dst]} [label={_dot_string(outcome)}, style="dashed", color="darkorange", fontcolor="darkorange"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_text(wf: Workflow) -> str:
    model = GraphModel(wf)
    lines = [f"workflow {wf.name} ({wf.source})"]
    match = wf.match.describe()
    lines.append("match: " + (", ".join(f"{k}={v}" for k, v in match.items()) if match else "every flow"))
    implicit = model.implicit_used()
    lines.append("implicit nodes used: " + (", ".join(implicit) if implicit else "none"))
    for phase in (Phase.REQUEST, Phase.RESPONSE):
        members = model.by_phase(phase)
        lines.append(f"{PHASE_TITLES[phase]}:" + ("" if members else " (none)"))
        for i in members:
            name, kind = model.title(i)
            lines.append(f"  {name:<24} {kind}")
    lines.append("connections:" + ("" if model.edges else " (none)"))
    for labels in model.edges.values():
        lines.extend(f"  {label}" for label in labels)
    if model.control:
        lines.append("branch control:")
        for src, dst, outcome in model.control:
            lines.append(f"  {model.plan.nodes[src].name} --{outcome}--> {model.plan.nodes[dst].name}")
    return "\n".join(lines) + "\n"


RENDERERS = {"mermaid": render_mermaid, "dot": render_dot, "text": render_text}
