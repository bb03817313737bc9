"""No import cycle hides behind an import inside a function.

An import inside a function that names a module which, through the imports at
the top of the modules, imports the importing module again, is a cycle the
layering only appears to keep. The graph is read from the source (ast).
"""

from __future__ import annotations

import ast
from pathlib import Path

KIEL = Path(__file__).resolve().parent.parent / "kiel"
# No import inside a function may close a cycle: fetch and ftp share the
# attempt's values through kiel/attempt.py.
ALLOWED: set[tuple[str, str]] = set()


def _modules() -> dict[str, Path]:
    out = {}
    for p in KIEL.rglob("*.py"):
        parts = ("kiel", *p.relative_to(KIEL).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _named(module: str, names: list[str]) -> set[str]:
    """The modules an import of ``module`` (and of ``names`` from it) loads."""
    out = set()
    for full in [module] + [f"{module}.{n}" for n in names]:
        parts = full.split(".")
        out |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return out & MODULES.keys()


def _imports(node: ast.AST) -> set[str]:
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kiel"):
        return _named(node.module, [a.name for a in node.names])
    if isinstance(node, ast.Import):
        return set().union(*(_named(a.name, []) for a in node.names))
    return set()


def _top(name: str) -> set[str]:
    """What loading ``name`` loads: its package, and its imports outside
    functions and outside ``if TYPE_CHECKING``."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    out = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        out |= _imports(node)
        todo.extend(ast.iter_child_nodes(node))
    return (out & MODULES.keys()) - {name}


GRAPH = {m: _top(m) for m in MODULES}


def _reaches(start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m == goal:
            return True
        if m not in seen:
            seen.add(m)
            todo.extend(GRAPH[m])
    return False


def _deferred(name: str) -> list[tuple[int, set[str]]]:
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    out = []
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out += [(n.lineno, _imports(n)) for n in ast.walk(fn)
                    if isinstance(n, (ast.Import, ast.ImportFrom)) and _imports(n)]
    return out


def test_no_import_inside_a_function_closes_a_cycle():
    cycles = []
    for name, path in sorted(MODULES.items()):
        rel = path.relative_to(KIEL).as_posix()
        for line, targets in _deferred(name):
            # A module's own packages are loaded before it: no edge.
            for t in sorted(targets - {p for p in GRAPH if name.startswith(p + ".")}):
                if t != name and _reaches(t, name) and (rel, t) not in ALLOWED:
                    cycles.append(f"kiel/{rel}:{line} imports {t}, which imports {name}")
    assert cycles == [], "\n".join(cycles)


def test_the_graph_is_read_whole():
    # The check would pass on an empty graph: these edges are known.
    assert "kiel.oai.changes" in GRAPH["kiel.oai.index"]
    assert _reaches("kiel.report", "kiel.notes")
    assert not _reaches("kiel.notes", "kiel.report")
