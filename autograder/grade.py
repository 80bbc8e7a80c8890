"""The instructor workflow as functions: release, collect, autograde, feedback, export, validate.

Each function runs the plain nbgrader command (``python -m nbgrader ...``) in ``autograder/``
of the course root, where :mod:`autograder.nbgrader_config` is picked up, so the wrapper and a
hand-typed ``nbgrader`` command behave the same. ``root`` defaults to the repository root
(tests pass a temporary copy); ``db`` overrides the gradebook URL (see :mod:`autograder.course`).
"""
from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from pathlib import Path

from .course import DIRECTORIES, assignment_ids, db_url
from .gradebook import check_url, knows_assignment, open_gradebook
from .nbgrader_run import check_assignment, course_root, nbgrader, release

_root = course_root
_check_assignment = check_assignment

__all__ = ["nbgrader", "release", "collect", "autograde", "autograde_secure", "feedback", "export",
           "validate", "scores"]

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]*$")


def collect(source, root=None) -> list[tuple[str, str]]:
    """Copy submissions into ``autograder/submitted/<student>/<assignment>/``.

    ``source`` is a folder or a ``.zip`` laid out ``<student>/<assignment>/*.ipynb`` (a zip may
    wrap that in one top-level folder). An existing submission of the same student and
    assignment is replaced. Returns the (student, assignment) pairs collected.
    """
    root = _root(root)
    source = Path(source)
    if not source.exists():
        raise ValueError(f"collect: {source} does not exist")
    with tempfile.TemporaryDirectory() as tmp:
        if source.is_file():
            if not zipfile.is_zipfile(source):
                raise ValueError(f"collect: {source} is neither a folder nor a zip file")
            with zipfile.ZipFile(source) as zf:
                zf.extractall(tmp)
            base = Path(tmp)
            entries = [p for p in base.iterdir() if p.name not in ("__MACOSX",)]
            if len(entries) == 1 and entries[0].is_dir() and not _looks_like_student(entries[0]):
                base = entries[0]
        else:
            base = source
        known = set(assignment_ids(root))
        collected = []
        for student_dir in sorted(p for p in base.iterdir() if p.is_dir()):
            if student_dir.name.startswith((".", "__")):
                continue
            for adir in sorted(p for p in student_dir.iterdir() if p.is_dir()):
                if not any(adir.glob("*.ipynb")):
                    continue
                if adir.name not in known:
                    raise ValueError(f"collect: {adir} is not a known assignment {sorted(known)}; "
                                     "expected the layout <student>/<assignment>/*.ipynb")
                if not _SAFE_ID.match(student_dir.name):
                    raise ValueError(f"collect: student id {student_dir.name!r} must match "
                                     f"{_SAFE_ID.pattern}")
                dest = root / DIRECTORIES["submitted_directory"] / student_dir.name / adir.name
                if dest.exists():
                    shutil.rmtree(dest)
                shutil.copytree(adir, dest, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
                collected.append((student_dir.name, adir.name))
    if not collected:
        raise ValueError(f"collect: no notebooks found in {source}; expected the layout "
                         "<student>/<assignment>/*.ipynb")
    return collected


def _looks_like_student(path: Path) -> bool:
    return any(p.is_dir() and any(p.glob("*.ipynb")) for p in path.iterdir())


def _gradebook(url: str):
    """nbgrader's Gradebook on ``url``, checked first (:func:`autograder.gradebook.open_gradebook`)."""
    return open_gradebook(url)


def _in_gradebook(assignment: str, root: Path, db: str | None) -> bool:
    """Whether the gradebook (``db``, else the course's) knows ``assignment``; checks the URL first."""
    return knows_assignment(db or db_url(root), assignment)


def autograde(assignment: str, student: str | None = None, root=None, db: str | None = None, *,
              unsafe: bool = False, workers: int | None = None, **limits) -> Path:
    """Autograde submitted notebooks of ``assignment`` (one ``student`` or all); returns
    ``autograder/autograded/``.

    By default grading is hardened (:func:`autograde_secure`: student code sandboxed, the tests
    in a separate trusted process, ``workers`` in parallel); then nbgrader's own ``autograde``
    runs with those results injected in place of execution
    (:class:`~autograder.preprocessors.InjectSecureResults`), so the gradebook, late penalties,
    the autograded notebooks and ``feedback`` work as with plain nbgrader. Submissions nbgrader
    cannot read (invalid JSON...) get the hardened grader's score in the gradebook all the same.
    ``limits``: ``cell_timeout``, ``notebook_timeout``, ``memory_mb`` (see :func:`autograde_secure`).

    ``unsafe=True`` runs plain ``nbgrader autograde``: student code and tests in ONE kernel, so a
    submission can make itself pass (``np.allclose = lambda *a, **k: True``). Only for
    comparisons and for notebooks of your own.

    If the gradebook does not know the assignment yet (a fresh database), it is released first
    so that the locked test cells, hidden tests included, are known.
    """
    root = _root(root)
    _check_assignment(root, assignment)
    if not _in_gradebook(assignment, root, db):
        release(assignment, root, db)
    args = ["autograde", assignment, "--force"]
    if student:
        args.append(f"--student={student}")
    if unsafe:
        nbgrader(args, root, db)
        return root / DIRECTORIES["autograded_directory"]
    out = root / "autograder" / "secure_graded" / assignment
    results = autograde_secure(assignment, student, root, db, workers=workers, out=out, gradebook=False, **limits)
    from .preprocessors import SECURE_RESULTS_ENV
    from .secure.batch import record_in_gradebook

    # nbgrader fails (exit 1) when one notebook cannot be read; the others are graded regardless.
    nbgrader(args, root, db, check=False, env={SECURE_RESULTS_ENV: str(out / "results.json")})
    record_in_gradebook(assignment, results, root, db)
    return root / DIRECTORIES["autograded_directory"]


def autograde_secure(assignment: str, student: str | None = None, root=None, db: str | None = None, *,
                     workers: int | None = None, submissions=None, out=None, gradebook: bool = True,
                     cell_timeout: float = 60.0, notebook_timeout: float = 600.0,
                     memory_mb: int = 4096, scheduler: str | None = None, tls_ca_file=None,
                     tls_cert=None, tls_key=None, retries: int = 2) -> dict:
    """Hardened autograde (:mod:`autograder.secure`): student code runs sandboxed, the instructor's
    tests run in a separate trusted process, so a submission cannot make itself pass.

    Grades ``submissions/<student>/<assignment>/`` (default ``autograder/submitted``) with
    ``workers`` processes (default: number of cores), or, with ``scheduler``
    (``tcp://HOST:PORT``, ``tls://HOST:PORT`` or a scheduler file), on that Dask cluster's
    workers (:mod:`autograder.secure.cluster`; TLS with ``tls_ca_file``/``tls_cert``/``tls_key``
    or dask's configuration; ``retries`` per failed task), writes ``report.json``/``report.md``
    per student, ``grades.csv`` and ``results.json`` to ``out`` (default
    ``autograder/secure_graded/<assignment>``) and, with ``gradebook``, the auto scores to the
    nbgrader gradebook (``export`` then shows them). Returns ``{student: result}``.
    """
    from .secure import Limits, grade_batch

    root = _root(root)
    _check_assignment(root, assignment)
    limits = Limits(cell_timeout=cell_timeout, notebook_timeout=notebook_timeout,
                    cpu_seconds=int(notebook_timeout), memory_mb=memory_mb)
    if gradebook:   # a gradebook that cannot be used stops the batch before anything is graded
        check_url(db or db_url(root))
    security = None
    if tls_ca_file or tls_cert or tls_key:
        if not scheduler:
            raise ValueError("--tls-ca-file/--tls-cert/--tls-key secure the connection to --scheduler: "
                             "give the scheduler's tls://HOST:PORT address too")
        from .secure import cluster
        security = cluster.security(tls_ca_file, tls_cert, tls_key)
    return grade_batch(assignment, root=root, submissions=submissions, workers=workers, student=student,
                       limits=limits, out=out, gradebook=gradebook, db=db, scheduler=scheduler,
                       security=security, retries=retries)


def feedback(assignment: str, student: str | None = None, root=None, db: str | None = None) -> Path:
    """Write HTML feedback to ``autograder/feedback/<student>/<assignment>/``; returns that root."""
    root = _root(root)
    _check_assignment(root, assignment)
    args = ["generate_feedback", assignment, "--force"]
    if student:
        args.append(f"--student={student}")
    nbgrader(args, root, db)
    return root / DIRECTORIES["feedback_directory"]


def export(to=None, root=None, db: str | None = None) -> Path:
    """Export all grades as CSV (default ``autograder/exports/grades.csv``); returns the path."""
    root = _root(root)
    to = Path(to) if to else root / "autograder" / "exports" / "grades.csv"
    to = to.resolve()
    to.parent.mkdir(parents=True, exist_ok=True)
    nbgrader(["export", f"--to={to}"], root, db)
    return to


def validate(path, invert: bool = False) -> dict:
    """Execute a notebook and check its test cells, like ``nbgrader validate`` (in-process).

    Returns nbgrader's result dict: empty when valid; otherwise keys among ``failed``,
    ``changed``, ``type_changed`` and, with ``invert=True`` (every test is expected to fail,
    e.g. on a released notebook), ``passed``. Unlike the plain command, stderr warnings in a
    passing test cell do not count as failures (:class:`~autograder.preprocessors.StderrToStdout`).
    """
    from nbgrader.preprocessors import CheckCellMetadata, ClearOutput, Execute
    from nbgrader.validator import Validator

    from .preprocessors import StderrToStdout

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"validate: {path} is not a notebook file")
    validator = Validator(invert=invert)
    validator.preprocessors = [CheckCellMetadata, ClearOutput, Execute, StderrToStdout]
    return validator.validate(str(path.resolve()))


def scores(assignment: str, root=None, db: str | None = None) -> dict:
    """Autograded scores from the gradebook: ``{student: {grade_id: auto_score}}``."""
    root = _root(root)
    out: dict = {}
    with _gradebook(db or db_url(root)) as gb:
        for sub in gb.assignment_submissions(assignment):
            per = out.setdefault(sub.student.id, {})
            for nb in sub.notebooks:
                for g in nb.grades:
                    per[g.name] = g.auto_score
    return out
