"""assignments/ must be exactly what `python3 run.py grade release` generates from solutions/.

The committed release is regenerated into a temporary copy of the course and compared notebook
by notebook (cell ids, types, sources, metadata including nbgrader checksums, notebook metadata)
and file by file for everything else. If this fails: run `python3 run.py grade release` and
commit assignments/.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from autograder import course, grade

ROOT = Path(__file__).resolve().parents[1]
STATE = ("gradebook.db", "submitted", "autograded", "feedback", "exports", "release", "source",
         "solution", "source_with_tests", "__pycache__", ".nbgrader.log")

pytestmark = pytest.mark.notebook


def copy_course(dest: Path, assignment: str) -> Path:
    """A copy of the course with one assignment's sources (no release, no grading state)."""
    shutil.copytree(ROOT / "solutions" / assignment, dest / "solutions" / assignment,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    (dest / "assignments").mkdir()
    shutil.copytree(ROOT / "autograder", dest / "autograder", ignore=shutil.ignore_patterns(*STATE))
    return dest


def _files(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*"))
            if p.is_file() and ".ipynb_checkpoints" not in p.parts}


def _cell_view(cell) -> dict:
    return {k: cell.get(k) for k in ("id", "cell_type", "source", "metadata", "outputs", "attachments")}


@pytest.mark.parametrize("assignment", course.assignment_ids(ROOT))
def test_release_is_in_sync(assignment, tmp_path, monkeypatch):
    monkeypatch.delenv(course.DB_ENV, raising=False)  # the temporary course has its own gradebook
    root = copy_course(tmp_path, assignment)
    grade.release(assignment, root=root)
    committed = _files(ROOT / "assignments" / assignment)
    fresh = _files(root / "assignments" / assignment)
    assert sorted(committed) == sorted(fresh), (
        f"assignments/{assignment} has files {sorted(committed)}, the release generates {sorted(fresh)}; "
        "run `python3 run.py grade release` and commit assignments/")
    for rel, path in committed.items():
        if path.suffix != ".ipynb":
            assert path.read_bytes() == fresh[rel].read_bytes(), f"assignments/{assignment}/{rel} is out of date"
            continue
        old, new = nbformat.read(path, as_version=4), nbformat.read(fresh[rel], as_version=4)
        assert old.metadata == new.metadata, f"{rel}: notebook metadata differs from a fresh release"
        assert [c.get("id") for c in old.cells] == [c.get("id") for c in new.cells], \
            f"{rel}: cells were added, removed or reordered since the last release"
        for a, b in zip(old.cells, new.cells):
            assert _cell_view(a) == _cell_view(b), (
                f"{rel}: cell {a.get('id')!r} differs from a fresh release; "
                "run `python3 run.py grade release` and commit assignments/")


@pytest.mark.parametrize("assignment", course.assignment_ids(ROOT))
def test_release_hides_solutions_and_hidden_tests(assignment):
    source = {c.id: c for nb in (ROOT / "solutions" / assignment).glob("*.ipynb")
              for c in nbformat.read(nb, as_version=4).cells}
    for path in (ROOT / "assignments" / assignment).glob("*.ipynb"):
        text = path.read_text()
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
            assert marker not in text, f"{path} contains {marker!r}"
        released = nbformat.read(path, as_version=4)
        for cell in released.cells:
            src = source[cell.id].source
            if "BEGIN HIDDEN TESTS" in src:
                hidden = src.split("BEGIN HIDDEN TESTS", 1)[1].split("END HIDDEN TESTS", 1)[0]
                for line in hidden.splitlines()[1:]:
                    if len(line.strip()) > 25 and line.strip() not in src.split("BEGIN HIDDEN TESTS")[0]:
                        assert line.strip() not in cell.source, f"{path}: hidden test line leaked: {line!r}"
            if cell.cell_type == "code":
                assert not cell.outputs, f"{path}: cell {cell.id} has outputs"
