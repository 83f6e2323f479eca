"""The layers' import rules, read from the source (AST), imports inside functions included:

- `fmnist` (the core) never imports streamlit, app_support or views;
- app_support never imports views;
- pages (views/) use public names only: no `x._name`, no `from m import _name`;
- no import loop among the modules of fmnist and app_support (a loop broken only by an import
  inside a function is still a loop). Imports under `if TYPE_CHECKING:` are for type hints only
  and do not count.

Each rule has a test that breaks it on purpose in a temporary tree.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("fmnist", "app_support")
FORBIDDEN = {"fmnist": ("streamlit", "app_support", "views"), "app_support": ("views",)}


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(tree: ast.AST, package: str) -> set[str]:
    """Every module name an import in `tree` may load (absolute), skipping TYPE_CHECKING blocks."""
    found: set[str] = set()
    todo = [tree]
    while todo:
        node = todo.pop()
        for child in ast.iter_child_nodes(node):
            if _type_checking_only(child):
                todo.extend(child.orelse)
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = package if child.level else ""
                for _ in range(max(0, child.level - 1)):
                    base = base.rpartition(".")[0]
                mod = ".".join(p for p in (base, child.module or "") if p)
                found.add(mod)
                found.update(f"{mod}.{a.name}" for a in child.names)  # `from pkg import module`
            todo.append(child)
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """module -> the modules it imports (all imports, for the rules), for every module of PACKAGES."""
    files = {}
    for pkg in PACKAGES:
        for f in sorted((root / pkg).glob("*.py")):
            files[pkg if f.stem == "__init__" else f"{pkg}.{f.stem}"] = f
    return {name: _imports(ast.parse(f.read_text(), str(f)), name.split(".")[0]) for name, f in files.items()}


def forbidden_imports(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for mod, imports in graph.items():
        named = {i for i in imports if i.rpartition(".")[0] not in imports}  # `from a.b import c`: a.b, not a.b.c
        for banned in FORBIDDEN.get(mod.split(".")[0], ()):
            bad += [f"{mod} imports {i}" for i in sorted(named) if i == banned or i.startswith(banned + ".")]
    return bad


def import_loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    internal = {m: {i for i in imps if i in graph and i != m} for m, imps in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    loops: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in internal[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                loops.append(sorted(comp))

    for v in sorted(internal):
        if v not in index:
            visit(v)
    return loops


def test_the_tree_keeps_the_layer_rules():
    graph = import_graph()
    assert "fmnist.train" in graph and "app_support.training" in graph  # the scan found the modules
    assert forbidden_imports(graph) == []
    assert import_loops(graph) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    for pkg in PACKAGES:
        (tmp_path / pkg).mkdir(exist_ok=True)
        (tmp_path / pkg / "__init__.py").touch()
    return tmp_path


def test_a_core_module_that_imports_streamlit_inside_a_function_is_caught(tmp_path):
    root = _tree(tmp_path, {"fmnist/a.py": "def f():\n    import streamlit as st\n"})
    assert forbidden_imports(import_graph(root)) == ["fmnist.a imports streamlit"]


def test_the_core_importing_app_support_and_app_support_importing_views_are_caught(tmp_path):
    root = _tree(
        tmp_path,
        {"fmnist/a.py": "from app_support.state import x\n", "app_support/b.py": "from views import home\n"},
    )
    assert sorted(forbidden_imports(import_graph(root))) == [
        "app_support.b imports views",
        "fmnist.a imports app_support.state",
    ]


def test_an_import_loop_broken_by_a_function_level_import_is_still_a_loop(tmp_path):
    root = _tree(
        tmp_path,
        {
            "app_support/a.py": "from app_support.b import x\n",
            "app_support/b.py": "from app_support import c\n",
            "app_support/c.py": "def f():\n    from app_support.a import y\n",
            "app_support/d.py": "from app_support.a import z\n",  # imports into the loop, not part of it
        },
    )
    assert import_loops(import_graph(root)) == [["app_support.a", "app_support.b", "app_support.c"]]


def test_relative_imports_count_and_type_checking_imports_do_not(tmp_path):
    root = _tree(
        tmp_path,
        {
            "fmnist/a.py": "from .b import x\n",
            "fmnist/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import y\n",
            "fmnist/c.py": "from . import d\n",
            "fmnist/d.py": "from .c import z\n",
        },
    )
    assert import_loops(import_graph(root)) == [["fmnist.c", "fmnist.d"]]


def private_reaches(path: Path) -> list[str]:
    """Where a page script reaches past a public API: `x._name`, or `from m import _name`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            found.append(f"{path.name}:{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.ImportFrom):
            found += [f"{path.name}:{node.lineno}: import {a.name}" for a in node.names if a.name.startswith("_")]
    return found


def test_pages_use_public_functions_only():
    pages = sorted((ROOT / "views").glob("*.py"))
    assert len(pages) == 8
    assert [r for p in pages for r in private_reaches(p)] == []


def test_a_page_reaching_into_internals_is_caught(tmp_path):
    page = tmp_path / "page.py"
    page.write_text("from app_support.training import _runs, job_manager\njob_manager()._lock\nrun.lease.stop()\n")
    assert sorted(private_reaches(page)) == ["page.py:1: import _runs", "page.py:2: ._lock"]
