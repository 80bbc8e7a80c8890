"""Visible tests say what went wrong: no bare ``assert`` in the visible part of any test cell.

A failing visible test is what a student reads under ``check("...")`` and in the feedback; an
``assert`` without a message shows only ``AssertionError`` and the line. Every assignment's test
cells are read (``solutions/*``); the visible part is the code before the hidden-tests marker.
The test is shown to fail on a cell with a bare assert.
"""
from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

from autograder import course
from cnnlab.check import visible_part

ROOT = Path(__file__).resolve().parents[1]


def bare_asserts(code: str) -> list[str]:
    """'line N: <assert>' for every assert without a message in ``code`` (magics ignored)."""
    src = "\n".join("pass" if l.lstrip().startswith(("%", "!")) else l for l in code.splitlines())
    return [f"line {n.lineno}: {ast.unparse(n)[:80]}" for n in ast.walk(ast.parse(src))
            if isinstance(n, ast.Assert) and n.msg is None]


def test_the_rule_finds_a_bare_assert():
    cell = "x = 1\nassert x == 1, 'x is one'\nassert x == 2\n### BEGIN HIDDEN TESTS\nassert x\n"
    assert bare_asserts(visible_part(cell)) == ["line 3: assert x == 2"]


@pytest.mark.parametrize("path", [pytest.param(p, id=f"{a}/{p.name}") for a in course.assignment_ids(ROOT)
                                  for p in sorted((ROOT / "solutions" / a).glob("*.ipynb"))])
def test_every_visible_assert_has_a_message(path):
    found, cells = [], 0
    for cell in nbformat.read(path, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
            continue
        cells += 1
        found += [f"{meta['grade_id']} {x}" for x in bare_asserts(visible_part(cell.source))]
    assert cells > 0, f"{path}: no test cell found"
    assert not found, "visible asserts without a message:\n" + "\n".join(found)
