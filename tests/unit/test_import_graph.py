"""The package's modules import each other without a circle.

Module-level imports count, those under `if TYPE_CHECKING:` included (a
circle there still makes each module need the other to be understood).
Imports inside functions are deferred on purpose and do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import mitmdatakit

PACKAGE = Path(mitmdatakit.__file__).parent
NAME = "mitmdatakit"


def _module_name(path: Path) -> str:
    parts = [NAME, *path.relative_to(PACKAGE).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _module_level(tree: ast.Module) -> list[ast.stmt]:
    """Statements outside functions and classes: the body, and the bodies
    of module-level `if`/`try` blocks (TYPE_CHECKING, optional imports)."""
    out: list[ast.stmt] = []
    todo = list(tree.body)
    while todo:
        stmt = todo.pop(0)
        out.append(stmt)
        if isinstance(stmt, ast.If):
            todo.extend(stmt.body + stmt.orelse)
        elif isinstance(stmt, ast.Try):
            todo.extend(stmt.body + stmt.orelse + stmt.finalbody + [s for h in stmt.handlers for s in h.body])
    return out


def import_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for stmt in _module_level(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(stmt, ast.Import):
                targets = [a.name for a in stmt.names]
            elif isinstance(stmt, ast.ImportFrom):
                if stmt.level:
                    base = name.split(".")
                    base = base[: len(base) - stmt.level + (1 if is_package else 0)]
                    origin = ".".join(base + ([stmt.module] if stmt.module else []))
                else:
                    origin = stmt.module or ""
                targets = [origin]
                # `from . import x`: x may be a submodule
                targets += [f"{origin}.{a.name}" for a in stmt.names if f"{origin}.{a.name}" in modules]
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle (as a path that ends where it starts), or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = dict.fromkeys(graph, WHITE)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        color[node] = GREY
        stack.append(node)
        for nxt in sorted(graph[node]):
            if color[nxt] == GREY:
                return [*stack[stack.index(nxt):], nxt]
            if color[nxt] == WHITE:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        color[node] = BLACK
        return None

    for node in sorted(graph):
        if color[node] == WHITE:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a"}}) is None


def test_the_graph_sees_relative_and_type_checking_imports():
    graph = import_graph()
    assert "mitmdatakit.ports" in graph["mitmdatakit.nodes.base"]  # from ..ports import
    assert "mitmdatakit.context" in graph["mitmdatakit.nodes.base"]  # under TYPE_CHECKING
    assert "mitmdatakit.jwtkit" in graph["mitmdatakit.nodes.jwt_sign"]  # from .. import jwtkit


def test_no_import_circle_in_the_package():
    assert find_cycle(import_graph()) is None


def test_ports_and_context_import_nothing_from_the_package():
    graph = import_graph()
    assert graph["mitmdatakit.ports"] == set()
    # the context names its collaborators' types only under TYPE_CHECKING
    assert graph["mitmdatakit.context"] <= {"mitmdatakit.ports", "mitmdatakit.client_response"}
