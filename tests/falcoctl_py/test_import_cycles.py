"""No import cycles in the registry side of the core (issue 15): every import counts, those
inside functions too (a function-level import does not make a cycle go away, it hides it)."""

from __future__ import annotations

import ast
from pathlib import Path

import falcoctl_py

ROOT = Path(falcoctl_py.__file__).parent
# the packages and modules whose graph must stay acyclic (others are checked by their owners)
CHECKED = ("falcoctl_py.index", "falcoctl_py.oci", "falcoctl_py.config", "falcoctl_py.http",
           "falcoctl_py.push", "falcoctl_py.bounded", "falcoctl_py.errors", "falcoctl_py.textio")


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, known: set[str]) -> set[str]:
    """The falcoctl_py modules ``path`` imports, outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text())
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
               and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        found |= {n for n in names if n in known}
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module(p): p for p in ROOT.rglob("*.py")}
    known = set(files)
    return {name: _imports(path, known) - {name} for name, path in files.items()}


def _checked(name: str) -> bool:
    return any(name == c or name.startswith(c + ".") for c in CHECKED)


def _cycle_from(graph: dict[str, set[str]], start: str) -> list[str] | None:
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in sorted(graph.get(node, ())):
            if not _checked(nxt):
                continue
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def test_the_registry_side_has_no_import_cycles() -> None:
    graph = _graph()
    assert "falcoctl_py.index.search" in graph and "falcoctl_py.oci.auth" in graph
    cycles = [c for name in sorted(graph) if _checked(name)
              if (c := _cycle_from(graph, name)) is not None]
    assert cycles == [], " ; ".join(" -> ".join(c) for c in cycles)


def test_the_old_hidden_cycles_are_gone() -> None:
    graph = _graph()
    assert "falcoctl_py.oci.login" not in graph["falcoctl_py.oci.auth"]
    assert "falcoctl_py.index.search" not in graph["falcoctl_py.index.cache"]
