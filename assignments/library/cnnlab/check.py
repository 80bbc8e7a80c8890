"""Check an exercise from the notebook: ``check("conv_forward")`` under an answer, ``check_all()``.

Like Otter-Grader's ``grader.check``: in a course notebook, ::

    from cnnlab.check import check, check_all
    ...
    check("conv_forward")      # runs the visible tests of the answer conv_forward, now
    ...
    check_all()                # every test cell of the notebook as it ran, in order, and the points

``check(answer)`` runs, in the student's kernel (on a copy of its variables: nothing the student
defined is changed), the *visible* part of each test cell the answer's points come from (the
assignment's ``rules.toml`` names them; by default ``test_<answer>``), and applies the
assignment's rules to the answer's source as it last ran — the same static check ``grade
secure`` applies (:func:`cnnlab.rules.check_answers`). It prints one line per test cell, the
test's own message when it fails (which case, expected vs got for shapes and dtypes, the error
against the tolerance, a hint), and once per session that hidden tests run when the notebook is
graded.

``check_all()`` reports every test cell of the notebook with the verdict it got *when it ran* in
this kernel (recorded as cells run, so each test saw the notebook's state at its own place, as
the grader's does), the answers still to write, the rules broken, the visible points and the
points graded by hand.

What the grader counts as a visible failure is decided by one function used by both
(:func:`failed_visibly`): a test cell fails visibly when it raises before the line
nbgrader's hidden-tests marker (:data:`HIDDEN_MARK`); a failure after it is a hidden test's, which neither the check nor the
release can see. ``grade secure`` records that verdict for every test cell (``visible`` and
``visible_error`` in its report), and ``tests/test_course_pipeline.py`` checks that ``check_all``
and the grader agree, cell by cell, on every assignment's solution, blank and partial
submissions.

Outside a Jupyter kernel (the grader's sandbox, a plain ``python``) ``check`` and ``check_all``
print one line and do nothing.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import rules

__all__ = ["check", "check_all", "failed_visibly", "visible_part", "error_text", "HIDDEN_MARK"]

# nbgrader's line that starts a cell's hidden tests (written in two parts so that this file, which
# ships in the student bundle, never holds the marker itself: the bundle refuses files that do)
HIDDEN_MARK = "### BEGIN " + "HIDDEN TESTS"
HIDDEN_NOTE = "Hidden tests run when you are graded: passing the visible tests is not yet full marks."
_STUB = "raise NotImplementedError"


def visible_part(source: str) -> str:
    """The part of a test cell's source (str) the student sees: everything before the line
    nbgrader's hidden-tests marker (:data:`HIDDEN_MARK`) (the whole source when there is none)."""
    lines = source.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.strip() == HIDDEN_MARK:
            return "".join(lines[:i])
    return source


def _hidden_line(source: str) -> int | None:
    for i, line in enumerate(source.splitlines(), start=1):
        if line.strip() == HIDDEN_MARK:
            return i
    return None


def failed_visibly(source: str, exc: BaseException) -> bool:
    """Whether the exception ``exc`` that the test cell ``source`` (str) raised came from its
    visible part: raised at a line of the cell before nbgrader's hidden-tests marker (:data:`HIDDEN_MARK`) (or the cell has
    no hidden tests, or it did not compile). The cell's line is the one its top-level code
    (``<module>`` frame) was executing."""
    marker = _hidden_line(source)
    if marker is None:
        return True
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "<module>":
            return tb.tb_lineno < marker
        tb = tb.tb_next
    return True


def error_text(exc: BaseException) -> str:
    """``'TypeName: message'`` (at most 500 characters of message) of an exception."""
    return f"{type(exc).__name__}: {str(exc)[:500]}"


def _meta(cell) -> dict:
    return (cell.get("metadata") or {}).get("nbgrader") or {}


@dataclass
class _Cell:
    grade_id: str
    kind: str           # "answer", "test" or "manual"
    source: str
    cell_id: str | None
    points: float


@dataclass
class _Notebook:
    path: Path
    cells: list[_Cell]
    rules: dict = field(default_factory=dict)
    mtime: float = 0.0
    code: list[str] = field(default_factory=list)   # every code cell's source (the imports of the notebook)

    @property
    def answers(self) -> dict[str, _Cell]:
        return {c.grade_id: c for c in self.cells if c.kind == "answer"}

    @property
    def tests(self) -> dict[str, _Cell]:
        return {c.grade_id: c for c in self.cells if c.kind == "test"}

    def tests_of(self, answer: str) -> list[str]:
        names = self.rules[answer].tests if answer in self.rules else (f"test_{answer}",)
        return [t for t in names if t in self.tests]

    @classmethod
    def read(cls, path: Path) -> "_Notebook":
        import nbformat
        nb = nbformat.read(path, as_version=4)
        cells = []
        for c in nb.cells:
            m = _meta(c)
            gid = m.get("grade_id")
            if not gid:
                continue
            if c.cell_type == "code" and m.get("solution"):
                kind = "answer"
            elif c.cell_type == "code" and m.get("grade"):
                kind = "test"
            elif m.get("grade") and m.get("solution"):
                kind = "manual"
            else:
                continue
            cells.append(_Cell(gid, kind, c.source, c.get("id"), float(m.get("points", 0) or 0)))
        folder = path.resolve().parent
        rule_set = rules.load(folder) if (folder / rules.RULES_FILE).is_file() else {}
        code = [c.source for c in nb.cells if c.cell_type == "code"]
        return cls(path, cells, rule_set, path.stat().st_mtime, code)


class _Recorder:
    """Remembers, as cells run in the kernel, each cell's latest source (by cell id) and each
    test cell's visible verdict (by grade id)."""

    def __init__(self):
        self.sources: dict[str, str] = {}           # cell id -> source last run
        self.verdicts: dict[str, str | None] = {}   # test grade id -> None (passed) or error text
        self.notebook: _Notebook | None = None
        self.said_hidden = False

    def post_run_cell(self, result) -> None:
        try:
            self._record(result)
        except Exception:  # noqa: BLE001  (a recording problem must never show up in the student's cell)
            pass

    def _record(self, result) -> None:
        info = getattr(result, "info", None)
        raw = getattr(info, "raw_cell", None) or ""
        cell_id = getattr(info, "cell_id", None)
        if cell_id:
            self.sources[cell_id] = raw
        try:
            nb = notebook()
        except LookupError:
            return
        gid = None
        for t in nb.tests.values():
            if (cell_id and t.cell_id == cell_id) or visible_part(raw).strip() == visible_part(t.source).strip():
                gid = t.grade_id
                break
        if gid is None:
            return
        exc = getattr(result, "error_in_exec", None) or getattr(result, "error_before_exec", None)
        self.verdicts[gid] = error_text(exc) if exc is not None and failed_visibly(raw, exc) else None


_RECORDER = _Recorder()


def _shell():
    ipython = sys.modules.get("IPython")   # a kernel has imported it; nothing else needs to
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell if shell is not None and hasattr(shell, "user_ns") and hasattr(shell, "events") else None


def _register() -> None:
    shell = _shell()
    if shell is None or getattr(shell, "_cnnlab_check", None) is _RECORDER:
        return
    shell.events.register("post_run_cell", _RECORDER.post_run_cell)
    shell._cnnlab_check = _RECORDER


def _notebook_path() -> Path:
    shell = _shell()
    session = (shell.user_ns.get("__session__") if shell is not None else None) or os.environ.get("JPY_SESSION_NAME")
    if session:
        p = Path(session)
        for candidate in (p, Path.cwd() / p.name):
            if candidate.suffix == ".ipynb" and candidate.is_file():
                return candidate
    found = sorted(Path.cwd().glob("*.ipynb"))
    if len(found) == 1:
        return found[0]
    raise LookupError(f"check: cannot tell which notebook this is: the folder {str(Path.cwd())!r} holds "
                      f"{len(found)} notebooks and the kernel was not started by Jupyter for one")


def notebook() -> _Notebook:
    """The course notebook this kernel runs (read from disk, again when the file changes)."""
    path = _notebook_path()
    nb = _RECORDER.notebook
    if nb is None or nb.path != path or nb.mtime != path.stat().st_mtime:
        nb = _RECORDER.notebook = _Notebook.read(path)
    return nb


def _answer_source(nb: _Notebook, answer: str) -> str:
    cell = nb.answers[answer]
    return _RECORDER.sources.get(cell.cell_id, cell.source) if cell.cell_id else cell.source


def _broken_rules(nb: _Notebook, answers: list[str]) -> dict[str, str]:
    """``{answer: the grader's message}`` for the answers that break the assignment's rules."""
    ruled = [a for a in answers if a in nb.rules]
    if not ruled:
        return {}
    sources = {a: _answer_source(nb, a) for a in nb.answers}
    broke = rules.check_answers({a: sources[a] for a in ruled}, {a: nb.rules[a].forbid for a in ruled},
                                list(sources.values()) + nb.code, {a: nb.rules[a].names for a in ruled})
    return {a: rules.broken_message(a, msg, nb.tests_of(a)) for a, msg in broke.items()}


def _run_visible(test: _Cell, ns: dict) -> str | None:
    """Run the visible part of a test cell in ``ns``; None when it passes, else the error text."""
    src = visible_part(test.source)
    quiet = io.StringIO()
    try:
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            exec(compile(src, f"<visible tests of {test.grade_id}>", "exec"), ns)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001  (SystemExit too: a test must not end the kernel)
        return error_text(exc)
    return None


def _defined_by_answer(nb: _Notebook, error: str) -> tuple[str, str] | None:
    """``(name, answer)`` when ``error`` is a NameError for a name that an answer cell of ``nb``
    defines (a test that also counts a later answer, run before that answer was written)."""
    import ast
    import re

    m = re.match(r"NameError: name '([^']+)' is not defined", error)
    if not m:
        return None
    for gid, cell in nb.answers.items():
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        names = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        names |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
        if m.group(1) in names:
            return m.group(1), gid
    return None


def _explain(error: str) -> str:
    if error.startswith("NotImplementedError"):
        return "not written yet: the answer still raises NotImplementedError"
    return error


def _say_hidden(lines: list[str]) -> None:
    if not _RECORDER.said_hidden:
        lines.append(HIDDEN_NOTE)
        _RECORDER.said_hidden = True


def _outside(what: str) -> bool:
    if _shell() is None:
        print(f"{what}: runs in a Jupyter notebook of the course; nothing to check here")
        return True
    return False


def check(answer: str) -> None:
    """Run the visible tests of one answer now and print the verdict.

    Args:
        answer: the answer cell's grade id (str), e.g. ``"conv_forward"``; the notebook's
            ``check`` cells name it.

    Raises:
        ValueError: ``answer`` is not an answer cell of this notebook (the message lists them).
    """
    if _outside(f"check({answer!r})"):
        return
    _register()
    nb = notebook()
    if answer not in nb.answers:
        raise ValueError(f"check: answer {answer!r} is not an exercise of {nb.path.name}; its answers are "
                         f"{', '.join(repr(a) for a in nb.answers)}")
    broken = _broken_rules(nb, [answer])
    tests = nb.tests_of(answer)
    lines = []
    if not tests:
        lines.append(f'check("{answer}"): no test cell is tied to this answer; check_all() reports the notebook')
    ns = dict(_shell().user_ns)
    for gid in tests:
        t = nb.tests[gid]
        error = f"RuleBroken: {broken[answer]}" if answer in broken else _run_visible(t, ns)
        later = _defined_by_answer(nb, error) if error and answer not in broken else None
        if error is None:
            lines.append(f'check("{answer}"): {gid} passed its visible tests ({t.points:g} / {t.points:g} points)')
        elif later and later[1] != answer:
            lines.append(f'check("{answer}"): {gid} also needs {later[0]} (the answer "{later[1]}" further on): '
                         f'check("{later[1]}") runs it once that answer is written')
        else:
            lines.append(f'check("{answer}"): {gid} FAILED (0 / {t.points:g} points)')
            lines += ["    " + line for line in _explain(error).splitlines()]
    _say_hidden(lines)
    print("\n".join(lines))


def report() -> dict:
    """What :func:`check_all` prints, as a dict: ``tests`` [{id, points, status ("ok", "FAIL" or
    "not run"), error}], ``rules`` {answer: message}, ``not_written`` [answer ids],
    ``visible_points``, ``max_points``, ``manual_points`` (floats)."""
    nb = notebook()
    broken = _broken_rules(nb, list(nb.answers))
    spoiled = {t: msg for a, msg in broken.items() for t in nb.tests_of(a)}
    tests = []
    for gid, t in nb.tests.items():
        if gid not in _RECORDER.verdicts:
            status, error = "not run", None
        else:
            error = _RECORDER.verdicts[gid]
            if error is None and gid in spoiled:
                error = f"RuleBroken: {spoiled[gid]}"
            status = "ok" if error is None else "FAIL"
        tests.append({"id": gid, "points": t.points, "status": status, "error": error})
    return {"tests": tests, "rules": broken,
            "not_written": [a for a in nb.answers if _STUB in _answer_source(nb, a)],
            "visible_points": sum(t["points"] for t in tests if t["status"] == "ok"),
            "max_points": sum(t["points"] for t in tests),
            "manual_points": sum(c.points for c in nb.cells if c.kind == "manual")}


def check_all() -> None:
    """Print every test cell's visible verdict as it ran in this kernel, the rules broken, the
    answers still to write and the points (see :func:`report`)."""
    if _outside("check_all()"):
        return
    _register()
    r = report()
    lines = [f"check_all(): {notebook().path.name}"]
    for t in r["tests"]:
        earned = t["points"] if t["status"] == "ok" else 0
        line = f"  {t['status']:<7} {t['id']:<28} {earned:g} / {t['points']:g}"
        if t["status"] == "FAIL":
            line += "   " + _explain(t["error"]).splitlines()[0]
        lines.append(line)
    for msg in r["rules"].values():
        lines.append(f"  rule: {msg}")
    if r["not_written"]:
        lines.append(f"  still to write: {', '.join(r['not_written'])}")
    if any(t["status"] == "not run" for t in r["tests"]):
        lines.append("  'not run': run the notebook from the top (Run > Run All Cells), then check_all() again")
    lines.append(f"  visible tests: {r['visible_points']:g} / {r['max_points']:g} points"
                 + (f"; {r['manual_points']:g} points of written answers are graded by hand" if r["manual_points"] else ""))
    _RECORDER.said_hidden = False
    _say_hidden(lines)
    print("\n".join(lines))


_register()   # importing the module in a notebook starts recording the cells as they run
