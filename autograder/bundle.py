"""The student bundle: what the instructor hands out, as a folder and a zip.

``python3 run.py grade bundle [--out DIR]`` writes ``DIR/cnnlab-student/`` and
``DIR/cnnlab-student.zip`` (default DIR: ``autograder/bundle/``)::

    cnnlab-student/
      README.md            two commands: open the course, check your work
      course.py            the launcher (needs only python3: creates .venv on first use)
      jupyter/             the student's lab profile (no instructor tools, no news prompt)
      requirements.txt     the course's packages (from pyproject.toml: dependencies + [course])
      assignments/<id>/    the released notebooks and rules.toml (from assignments/, as released)
      library/cnnlab/      the student edition of the library (autograder/edition.py), WITHHELD.json

Nothing else: no solution notebook, no hidden test, no withheld answer (the build refuses to write
a file holding an nbgrader solution/hidden-test marker or an answer region, and
tests/test_student_bundle.py searches the bundle for every withheld line).
"""
from __future__ import annotations

import re
import shutil
import tomllib
import zipfile
from pathlib import Path

from . import edition
from .course import DIRECTORIES, assignment_ids, default_root

NAME = "cnnlab-student"
TEMPLATES = Path(__file__).resolve().parent / "student"
_MARKERS = re.compile(r"BEGIN SOLUTION|END SOLUTION|BEGIN HIDDEN TESTS|END HIDDEN TESTS|^# BEGIN ANSWER |^# END ANSWER",
                      re.M)
_SKIP = {".ipynb_checkpoints", "__pycache__"}
_EPOCH = (2020, 1, 1, 0, 0, 0)   # fixed zip timestamps: the same course gives the same zip


class BundleError(RuntimeError):
    """The bundle cannot be built (the message says what is missing or what leaked)."""


def requirements(root: Path) -> list[str]:
    """The packages a student needs: pyproject's dependencies and its ``course`` extra (list of str)."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    return list(dict.fromkeys(project["dependencies"] + project["optional-dependencies"]["course"]))


def _copy_release(root: Path, dest: Path) -> list[str]:
    release = root / DIRECTORIES["release_directory"]
    names = []
    for a in assignment_ids(root):
        src = release / a
        if not any(src.glob("*.ipynb")):
            raise BundleError(f"assignment {a!r} is not released ({src} has no notebook): run "
                              f"`python3 run.py grade release` first")
        for f in sorted(src.rglob("*")):
            if f.is_file() and not (_SKIP & set(f.relative_to(src).parts)):
                target = dest / "assignments" / a / f.relative_to(src)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, target)
        names.append(a)
    return names


def _scan(folder: Path) -> None:
    for f in folder.rglob("*"):
        if f.is_file() and f.suffix in (".py", ".ipynb", ".toml", ".md", ".txt", ".json"):
            m = _MARKERS.search(f.read_text(errors="replace"))
            if m:
                raise BundleError(f"{f.relative_to(folder)} holds {m.group(0)!r}: solutions or hidden tests "
                                  "would reach the students; the release is broken, nothing was written")


def _zip(folder: Path, target: Path) -> None:
    tmp = target.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(f"{folder.name}/{f.relative_to(folder).as_posix()}", _EPOCH)
            info.external_attr = (0o755 if f.name == "course.py" else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, f.read_bytes())
    tmp.replace(target)


def build(root=None, out=None) -> tuple[Path, Path]:
    """Build the bundle; returns ``(folder, zip)``.

    Args:
        root: the course root (default: this repository).
        out: where to write ``cnnlab-student/`` and ``cnnlab-student.zip`` (default ``autograder/bundle``).
    """
    root = Path(root) if root is not None else default_root()
    out = Path(out) if out is not None else root / "autograder" / "bundle"
    out.mkdir(parents=True, exist_ok=True)
    staging = out / f".{NAME}.part"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        _copy_release(root, staging)
        edition.build(root, out=staging / "library")
        for name in ("README.md", "course.py"):
            shutil.copyfile(TEMPLATES / name, staging / name)
        shutil.copytree(TEMPLATES / "jupyter", staging / "jupyter")   # the student's lab profile
        (staging / "course.py").chmod(0o755)
        (staging / "requirements.txt").write_text(
            "# the course's packages (pyproject.toml: dependencies and the [course] extra)\n"
            + "\n".join(requirements(root)) + "\n")
        _scan(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    folder = out / NAME
    if folder.exists():
        shutil.rmtree(folder)
    staging.rename(folder)
    _zip(folder, out / f"{NAME}.zip")
    return folder, out / f"{NAME}.zip"
