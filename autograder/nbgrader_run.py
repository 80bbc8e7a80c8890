"""Plain nbgrader with the course configuration, and the release built on it.

:func:`nbgrader` runs ``python -m nbgrader ...`` in ``autograder/`` of the course root, where
:mod:`autograder.nbgrader_config` is picked up, so a wrapper and a hand-typed ``nbgrader``
command behave the same; :func:`release` regenerates the student version of an assignment and
the student edition of the library. It sits below both the instructor commands
(:mod:`autograder.grade`, which re-exports ``nbgrader`` and ``release``) and the hardened batch
(:mod:`autograder.secure.batch`, which releases an assignment the gradebook does not know yet).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from . import edition
from .course import DB_ENV, assignment_ids, db_url, default_root
from .gradebook import check_url

__all__ = ["course_root", "nbgrader", "check_assignment", "release"]


def course_root(root=None) -> Path:
    """``root`` resolved, or the repository's course root when it is None."""
    return Path(root).resolve() if root is not None else default_root()


def nbgrader(args: list[str], root=None, db: str | None = None,
             check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``nbgrader ARGS`` with the course configuration; raise ``RuntimeError`` on failure.

    ``env``: extra environment variables. Returns the CompletedProcess (stdout and stderr
    captured as text).
    """
    root = course_root(root)
    env = dict(os.environ, **(env or {}))
    if db:
        env[DB_ENV] = db
    # A gradebook that cannot be used stops here with a clear message (never a fallback to SQLite).
    check_url(env.get(DB_ENV, "").strip() or db_url(root))
    env.setdefault("MPLBACKEND", "Agg")
    # nbgrader runs the `alembic` script of this environment to set up the gradebook.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root / "autograder",
                          env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed (exit {proc.returncode}):\n"
                           f"{proc.stdout}\n{proc.stderr}")
    return proc


def check_assignment(root: Path, assignment: str) -> str:
    """``assignment`` if ``root/solutions`` has it, else ValueError naming the known ones."""
    known = assignment_ids(root)
    if assignment not in known:
        raise ValueError(f"assignment {assignment!r} not found in {root / 'solutions'}; "
                         f"known assignments: {known}")
    return assignment


def release(assignment: str | None = None, root=None, db: str | None = None) -> list[str]:
    """Regenerate ``assignments/<a>/`` from ``solutions/<a>/`` (all assignments if None).

    Runs ``nbgrader generate_assignment <a> --force``: solutions become stubs, hidden tests and
    outputs are removed, checksums are added, and the cells are recorded in the gradebook. Then
    the student edition of the library is rebuilt (:func:`autograder.edition.build`:
    ``assignments/library/``, every unpublished answer withheld) when the course has ``lib/cnnlab``.
    Returns the assignment names released.
    """
    root = course_root(root)
    names = [check_assignment(root, assignment)] if assignment else assignment_ids(root)
    for name in names:
        nbgrader(["generate_assignment", name, "--force"], root, db)
    if (root / "lib" / "cnnlab").is_dir():
        edition.build(root)
    return names
