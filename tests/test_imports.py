"""kb's modules import each other without a cycle (module-level imports, as Python runs them).

An import inside a function, or under ``if TYPE_CHECKING:``, runs later or never and is left out;
importing ``kb.a.b`` imports the package ``kb.a`` first, so that counts as an edge too, except from a
module inside ``kb.a`` (its package is already in ``sys.modules`` when it runs).
"""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import REPO

PACKAGE = REPO / "kb"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop(0)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            pending += node.body + node.orelse
        elif isinstance(node, ast.Try):
            pending += node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body]
        elif isinstance(node, ast.With):
            pending += node.body
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}

    def add(source: str, target: str) -> None:
        while target:  # kb.a.b: also the packages kb.a and kb (run first)
            # a module's own packages are already being imported when it runs: not an edge
            if target in modules and target != source and not source.startswith(target + "."):
                graph[source].add(target)
            target = target.rpartition(".")[0]

    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in module_level_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    add(name, alias.name)
                continue
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            add(name, base)
            for alias in node.names:
                add(name, f"{base}.{alias.name}")  # from kb import db: the module kb.db
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_walker_sees_a_cycle() -> None:
    graph = {"kb.a": {"kb.b"}, "kb.b": {"kb.c"}, "kb.c": {"kb.a"}, "kb.d": set()}
    assert find_cycle(graph) == ["kb.a", "kb.b", "kb.c", "kb.a"]
    tree = ast.parse("import kb.b\nfrom . import c\nif TYPE_CHECKING:\n    import kb.d\ndef f():\n    import kb.e\n")
    assert [ast.unparse(n) for n in module_level_imports(tree)] == ["import kb.b", "from . import c"]


def test_kb_has_no_import_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 50 and "kb.handle" in graph["kb.cli"] and "kb.cards.model" in graph["kb.cards.textformat"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])
