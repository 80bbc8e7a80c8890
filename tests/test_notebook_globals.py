"""Test cells leave nothing that later cells use.

A test cell that assigns a global which a later answer or demo cell reads makes the notebook depend
on the test: a student whose answer cell fails (so it never reassigns the name) then gets the
test's object instead — assignment 5's test cell once left a tiny model in ``model``, and the
filters cell failed with ``'Sequential' object has no attribute 'conv1'``. For every assignment,
every name a test cell assigns (imports aside: a module is the same object wherever it is
imported) must not be read from the notebook's globals by any later non-test cell, whether or not
a cell in between assigns it again. Reads are found with :mod:`symtable` (module-level loads the
cell does not assign itself, and global names read inside its functions, classes and
comprehensions), so a function's own parameters and locals do not count.
"""
from __future__ import annotations

import builtins
import symtable
from pathlib import Path

import nbformat
import pytest

from autograder import course

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for a in course.assignment_ids(ROOT) for p in (ROOT / "solutions" / a).glob("*.ipynb"))
IMPLICIT = set(dir(builtins)) | {"get_ipython", "display", "In", "Out"}


def _table(src: str) -> symtable.SymbolTable:
    # IPython magics and shell escapes are not Python: read them as `pass`.
    return symtable.symtable("\n".join("pass" if l.lstrip().startswith(("%", "!")) else l for l in src.splitlines()),
                             "<cell>", "exec")


def cell_names(src: str) -> tuple[set[str], set[str], set[str]]:
    """``(reads, assigned, imported)``: the globals a cell reads that it does not assign itself,
    the names it assigns at module level, and those of them that are imports."""
    top = _table(src)
    mine = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    imported = {s.get_name() for s in top.get_symbols() if s.is_imported()}
    reads = {s.get_name() for s in top.get_symbols() if s.is_referenced() and s.get_name() not in mine}

    def nested(t):
        for child in t.get_children():
            reads.update(s.get_name() for s in child.get_symbols()
                         if s.is_referenced() and s.is_global() and s.get_name() not in mine)
            nested(child)
    nested(top)
    return reads - IMPLICIT, mine, imported


def leaks(nb) -> list[str]:
    """Every (later cell, name, test cell) where a non-test cell reads a name a test cell assigned."""
    left, found = {}, []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        reads, assigned, imported = cell_names(cell.source)
        if meta.get("grade") and not meta.get("solution"):
            for name in assigned - imported:
                left.setdefault(name, meta.get("grade_id"))
        else:
            found += [f"{cell.get('id')} reads {name!r}, which test cell {left[name]} assigns"
                      for name in sorted(reads & set(left))]
    return found


def test_the_check_finds_a_leak_and_ignores_locals():
    def cell(src, test=False, gid="c"):
        c = nbformat.v4.new_code_cell(src)
        c.id = gid
        c.metadata["nbgrader"] = {"grade": test, "solution": not test, "grade_id": gid}
        return c
    nb = nbformat.v4.new_notebook(cells=[
        cell("model = 1\nimport numpy as np\n", test=True, gid="test_a"),
        cell("def f(model):\n    return model + np.pi\n", gid="f"),  # a parameter, an import: fine
        cell("model = 2\n", gid="again"),                             # reassigned in between ...
        cell("print([model for _ in range(2)])", gid="uses"),          # ... still a leak (inside a comprehension)
    ])
    assert leaks(nb) == ["uses reads 'model', which test cell test_a assigns"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_later_cell_reads_what_a_test_cell_assigned(path):
    found = leaks(nbformat.read(path, as_version=4))
    assert not found, f"{path.name}: test cells leave globals that later cells read:\n" + "\n".join(found)
