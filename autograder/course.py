"""Where the course lives: the course root, its directories and the gradebook URL.

The course root is the repository root. nbgrader's directories are renamed so that the source
notebooks are ``solutions/``, the release is ``assignments/`` and all grading state
(gradebook, submissions, autograded copies, feedback, exports) stays under ``autograder/``,
which git ignores. Both :mod:`autograder.nbgrader_config` (read by plain ``nbgrader``
commands) and the ``python3 run.py grade`` wrapper take their settings from here.
"""
from __future__ import annotations

import os
from pathlib import Path

from .gradebook import COURSE_ID, normalize_url   # the gradebook module sits below this one

__all__ = ["COURSE_ID", "DB_ENV", "DIRECTORIES", "default_root", "db_url", "assignment_ids"]


#: Environment variable that overrides the gradebook (any SQLAlchemy URL, e.g.
#: ``postgresql://grader@dbhost/cnnlab`` when several graders share one gradebook; see
#: :mod:`autograder.gradebook` for the URL forms and their checks).
DB_ENV = "CNNLAB_GRADEBOOK_URL"

#: nbgrader step -> directory relative to the course root.
DIRECTORIES = {
    "source_directory": "solutions",
    "release_directory": "assignments",
    "submitted_directory": "autograder/submitted",
    "autograded_directory": "autograder/autograded",
    "feedback_directory": "autograder/feedback",
    "solution_directory": "autograder/solution",
    "source_with_tests_directory": "autograder/source_with_tests",
}


def default_root() -> Path:
    """The course root: the directory that contains ``autograder/`` (the repository root)."""
    return Path(__file__).resolve().parent.parent


def db_url(root: str | os.PathLike | None = None) -> str:
    """The gradebook URL: ``$CNNLAB_GRADEBOOK_URL`` if set, else ``sqlite:///<root>/autograder/gradebook.db``.

    A plain ``postgresql://`` (or ``postgres://``) URL comes back as ``postgresql+psycopg://``, the
    driver the ``postgres`` extra installs (:func:`autograder.gradebook.normalize_url`); the URL is
    not checked here (:func:`autograder.gradebook.check_url` does that).
    """
    url = os.environ.get(DB_ENV, "").strip()
    if url:
        return normalize_url(url)
    root = Path(root) if root is not None else default_root()
    return "sqlite:///" + str((root / "autograder" / "gradebook.db").resolve())


def assignment_ids(root: str | os.PathLike | None = None) -> list[str]:
    """Names of the assignments: the folders of ``solutions/`` that contain a notebook, sorted."""
    root = Path(root) if root is not None else default_root()
    src = root / DIRECTORIES["source_directory"]
    return sorted(p.name for p in src.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and any(p.glob("*.ipynb")))
