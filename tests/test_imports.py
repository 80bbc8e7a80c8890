"""Imports flow one way: no package of ``cnnlab`` imports a package that imports it back, and no
module of ``autograder`` is part of an import cycle — counting the imports hidden inside
functions, which is how such cycles usually hide (they work until someone reorders a file).

Units: ``cnnlab.<subpackage or module>`` (``cnnlab.models``, ``cnnlab.analysis``, ...), and every
module of ``autograder`` (``autograder.grade``, ``autograder.secure.batch``, ...). The oracle is
the source itself (``ast``), so an import added anywhere is seen without running anything.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (ROOT / "lib" / "cnnlab", ROOT / "autograder")


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for base in PACKAGES:
        for path in base.rglob("*.py"):
            parts = list(path.relative_to(base.parent).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            if is_pkg:
                parts = parts[:-1]
            out[".".join(parts)] = (path, is_pkg)
    return out


def _imported(path: Path, module: str, is_pkg: bool, known) -> set[str]:
    """The known modules ``path`` imports, anywhere in it (functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".") if is_pkg else module.split(".")[:-1]
                package = package[:len(package) - (node.level - 1)]
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module
            for a in node.names:   # `from pkg import submodule` depends on the submodule only
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
    out = set()
    for name in found:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name:
            out.add(name)
    return out


def _unit(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "cnnlab" else module


def import_graph() -> dict[str, set[str]]:
    """``{unit: the units it imports}`` over lib/cnnlab and autograder (the root ``cnnlab``
    package, which re-exports, is left out: importing ``cnnlab`` is not importing a sibling)."""
    known = _modules()
    graph: dict[str, set[str]] = {}
    for module, (path, is_pkg) in known.items():
        unit = _unit(module)
        if unit == "cnnlab":
            continue
        for target in _imported(path, module, is_pkg, known):
            other = _unit(target)
            if other != unit and other != "cnnlab":
                graph.setdefault(unit, set()).add(other)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one unit (Tarjan), each sorted."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"d"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_imports_inside_functions(tmp_path, monkeypatch):
    pkg = tmp_path / "autograder"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "one.py").write_text("def f():\n    from . import two\n")
    (pkg / "two.py").write_text("from .one import f\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGES", (pkg,))
    assert cycles(import_graph()) == [["autograder.one", "autograder.two"]]


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles (each a group of units importing each other): " + "; ".join(
        " <-> ".join(c) for c in found)


@pytest.mark.parametrize("low, high", [("cnnlab.shapes", "cnnlab.layers"), ("cnnlab.im2col", "cnnlab.layers"),
                                       ("cnnlab.layers", "cnnlab.models"), ("cnnlab.models", "cnnlab.analysis"),
                                       ("cnnlab.analysis", "cnnlab.plots")])
def test_layers_of_the_library_import_downwards(low, high):
    graph = import_graph()

    def reaches(a, b, seen=()):
        return a == b or any(reaches(n, b, seen + (a,)) for n in graph.get(a, ()) if n not in seen)

    assert not reaches(low, high), f"{low} imports (through other units) {high}, which sits above it"


def test_no_private_name_is_imported_across_modules():
    # A helper two modules share is public in a module of its own (models/_utils.py,
    # classifiers/_utils.py, shapes.py for argument checks), never another module's private name.
    known = _modules()
    found = []
    for module, (path, _) in sorted(known.items()):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if private:
                    found.append(f"{module} imports {', '.join(private)} from {'.' * node.level}{node.module or ''}")
    assert not found, found
