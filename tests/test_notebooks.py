"""Every notebook of the course, automatically for future assignments too:

- on every assignment, the solution's answers pass all tests (hidden ones included) and the
  release passes none: checked by tests/test_course_pipeline.py with plain nbgrader (student
  "full": every point, student "blank": none), which executes those notebooks anyway; here the
  `grade validate` command itself is checked both ways on the first assignment;
- each solution notebook runs under nbval in lax mode (`pytest --nbval-lax`): every cell must
  run without error, and cells marked `# NBVAL_CHECK_OUTPUT` must reproduce their committed output;
- solution notebooks are committed executed, without errors (their outputs are what lax mode
  compares and what instructors read).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder import grade

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*/*.ipynb"))
RELEASED = sorted((ROOT / "assignments").glob("*/*.ipynb"))

pytestmark = pytest.mark.notebook


def _ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


def test_every_solution_is_released():
    released = {p.relative_to(ROOT / "assignments") for p in RELEASED}
    missing = [str(p) for p in SOLUTIONS if p.relative_to(ROOT / "solutions") not in released]
    assert SOLUTIONS and not missing, f"not released: {missing}; run `python3 run.py grade release`"


@pytest.mark.parametrize("path", SOLUTIONS, ids=_ids(SOLUTIONS))
def test_solution_committed_executed(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), \
        f"{path.name}: commit solution notebooks executed top to bottom (Restart & Run All)"
    errors = [c.id for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{path.name}: cells {errors} have error outputs"


def test_validate_command_both_ways():
    solution, release = SOLUTIONS[0], ROOT / "assignments" / SOLUTIONS[0].relative_to(ROOT / "solutions")
    assert grade.validate(solution) == {}, f"{solution.name} fails nbgrader validate"
    assert grade.validate(release, invert=True) == {}, f"{release.name}: test cells pass before any work"
    assert grade.validate(release) != {}, "validate must report the release's failing tests"
    assert grade.validate(solution, invert=True) != {}, "--invert must report the solution's passing tests"


@pytest.mark.parametrize("path", SOLUTIONS, ids=_ids(SOLUTIONS))
def test_solution_runs_under_nbval(path, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-cell-timeout=120", "-q", "-p", "no:cacheprovider",
         "-p", "no:randomly", "--rootdir", str(tmp_path), "-c", os.devnull, str(path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"nbval failed on {path.name}:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
