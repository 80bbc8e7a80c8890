"""What a notebook and the course tables say about points is what the grader gives.

For every assignment: the introduction's ``Points: A autograded + W ...`` line, and the row of
``solutions/README.md``'s table (``A autograded + W written``), must equal the sum of the points in
the nbgrader metadata — code test cells for A, manually graded markdown cells for W — the numbers
nbgrader itself records in the gradebook. An exercise added without updating the text fails here.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from autograder import course

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = course.assignment_ids(ROOT)


def metadata_points(nb) -> tuple[float, float]:
    """(autograded, written) points of a source notebook, from its nbgrader cell metadata."""
    auto = written = 0.0
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            if cell.cell_type == "markdown":
                written += float(meta.get("points", 0))
            else:
                auto += float(meta.get("points", 0))
    return auto, written


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_points_a_notebook_states_are_its_points(assignment):
    (path,) = sorted((ROOT / "solutions" / assignment).glob("*.ipynb"))
    nb = nbformat.read(path, as_version=4)
    auto, written = metadata_points(nb)
    stated = [m for c in nb.cells if c.cell_type == "markdown"
              for m in re.findall(r"Points: (\d+) autograded \+ (\d+) for", c.source)]
    assert stated == [(f"{auto:g}", f"{written:g}")], \
        f"{path.name}: the introduction states {stated}, the nbgrader metadata give {auto:g} autograded + {written:g} written"
    row = re.search(rf"^\| `{assignment}` \|.*\| (\d+) autograded \+ (\d+) written \|$",
                    (ROOT / "solutions" / "README.md").read_text(), re.M)
    assert row and row.groups() == (f"{auto:g}", f"{written:g}"), \
        f"solutions/README.md: the row of {assignment} says {row and row.groups()}, the notebook has {auto:g} + {written:g}"


def test_the_check_reads_points_from_metadata():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("pass"), nbformat.v4.new_markdown_cell("x")])
    nb.cells[0].metadata["nbgrader"] = {"grade": True, "solution": False, "points": 3}
    nb.cells[1].metadata["nbgrader"] = {"grade": True, "solution": True, "points": 2}
    assert metadata_points(nb) == (3.0, 2.0)
