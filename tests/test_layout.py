"""The shape of the package itself: short files, imports at the top, no import circles, inference apart from training.

These read the source with ``ast`` (nothing is imported), except the last, which imports each generation path
in a fresh interpreter and looks at ``sys.modules``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from worldsmith.lazy_imports import is_lazy

PACKAGE = Path(__file__).resolve().parents[1] / "worldsmith"
FILES = sorted(PACKAGE.rglob("*.py"))
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in FILES}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(node: ast.Import | ast.ImportFrom, here: str, is_package: bool) -> list[str]:
    """Dotted names a statement imports; ``from pkg import sub`` names ``pkg.sub`` when that is a module."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parent = here.split(".") if is_package else here.split(".")[:-1]
        parent = parent[: len(parent) - (node.level - 1)]
        base = ".".join(parent + ([base] if base else []))
    names = []
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        names.append(sub if sub in MODULES else base)
    return names


def imports(path: Path) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(module-level imports, imports inside functions) of a file as (line, dotted name); TYPE_CHECKING skipped."""
    tree = ast.parse(path.read_text(), str(path))
    here, is_package = module_name(path), path.name == "__init__.py"
    top: list[tuple[int, str]] = []
    inner: list[tuple[int, str]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub, in_function)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                target = inner if in_function else top
                target += [(child.lineno, name) for name in _imported(child, here, is_package)]
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, False)
    return top, inner


def relative(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


@pytest.mark.parametrize("path", FILES, ids=relative)
def test_files_stay_short(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{relative(path)} has {lines} lines; split it along its seams (<= {MAX_LINES})."


@pytest.mark.parametrize("path", FILES, ids=relative)
def test_imports_inside_functions_are_only_the_heavy_ones(path: Path) -> None:
    _, inner = imports(path)
    bad = [f"line {line}: {name}" for line, name in inner if not is_lazy(name)]
    assert not bad, (f"{relative(path)} imports inside functions what belongs at the top of the file "
                     f"(only worldsmith.lazy_imports.LAZY_IMPORTS may be imported late): {bad}")  # fmt: skip


def _internal_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        top, _ = imports(path)
        graph[name] = {m for _, m in top if m in MODULES and m != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in graph:
        if v not in index:
            connect(v)
    return out


def test_no_import_circles_between_modules() -> None:
    cycles = _cycles(_internal_graph())
    assert not cycles, f"modules that import each other (directly or through others): {cycles}"
