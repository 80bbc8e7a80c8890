"""The gradebook on a real PostgreSQL server: the whole instructor workflow, graders writing at once.

The module starts its own server (:mod:`pgserver`: Debian's PostgreSQL, ``initdb`` as the
``postgres`` user into a temporary folder, 127.0.0.1 on a free port; installed with apt when
missing, else the module skips) and grades a class of three students of ``01_convolution`` on a
copy of the course, once, through the commands an instructor types (``python -m autograder`` is
what ``python3 run.py grade`` runs):

1. ``grade release`` with ``--db postgresql://grader:PASSWORD@127.0.0.1:PORT/cnnlab``;
2. three graders at the same time, each a process of its own writing into the one gradebook:
   ``grade secure --student ada`` (``--db postgresql://...``), ``grade secure --student bob``
   (``CNNLAB_GRADEBOOK_URL=postgresql+psycopg://...``), both recording their scores, and
   ``grade autograde --student cy`` (the hardened grader, then nbgrader's own autograde writing
   from its own process; this gives cy an autograded notebook for feedback) — while a fourth
   writer, a thread here, grades each written answer by hand through nbgrader's Gradebook API
   (what Formgrader's handlers do) as soon as its submission appears, over and over;
3. ``grade feedback`` and ``grade export``.

The oracle is independent of the code under test: the expected points come from the solution
notebook's metadata and the students' scenarios, and the gradebook's rows are read with psycopg's
own SQL. No SQLite file may appear in the course copy. Then the clear errors: a port nothing
listens on, a database that does not exist, a wrong password, a bogus driver, the driver missing.
"""
from __future__ import annotations

import csv
import html
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

import pgserver
from autograder import course, gradebook

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("postgres")]

ROOT = Path(__file__).resolve().parents[1]
A1, NB = "01_convolution", "convolution"
TIMEOUT = 600            # s: one grading command on a busy 2-core machine stays well under this
#: The hand grader's final points and comment per student's written answer.
MANUAL = {"ada": (2.0, "Complete: the copies and the memory they cost. (graded by hand)"),
          "bob": (0.5, "Nothing written yet; half a point for the drawing. (graded by hand)"),
          "cy": (1.5, "Clear and correct, but say why the filter is not flipped. (graded by hand)")}


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def pg():
    """A PostgreSQL server of the module's own; stopped and removed afterwards, even on failure."""
    server = pgserver.PgServer(pgserver.bindir())
    with server:
        pid = server.postmaster_pid()
        yield server
    assert server.folder is None
    deadline = time.monotonic() + 10
    while pid and _running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not (pid and _running(pid)), f"the test's PostgreSQL server (pid {pid}) is still running"


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != course.DB_ENV}
    env.update(extra)
    return env


def cli(root: Path, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """``python3 run.py grade ARGS`` on the course copy at ``root`` (what run.py runs: ``python -m autograder``)."""
    proc = subprocess.run([sys.executable, "-m", "autograder", *args, "--root", str(root)], cwd=ROOT,
                          env=env or _env(), capture_output=True, text=True, timeout=TIMEOUT)
    if check:
        assert proc.returncode == 0, f"grade {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def _course_copy(base: Path) -> Path:
    import shutil

    from test_course_pipeline import STATE

    root = base / "course"
    for name in ("solutions", "assignments"):
        shutil.copytree(ROOT / name / A1, root / name / A1)
    shutil.copytree(ROOT / "autograder", root / "autograder", ignore=shutil.ignore_patterns(*STATE))
    return root


def _expected(source) -> tuple[dict, dict]:
    """``({student: {test cell: points}}, {grade id: max points})`` from the solution's metadata."""
    from test_course_pipeline import SCENARIOS

    meta = [c.metadata.get("nbgrader", {}) for c in source.cells]
    points = {m["grade_id"]: float(m["points"]) for m in meta if m.get("grade")}
    tests = [m["grade_id"] for m in meta if m.get("grade") and not m.get("solution")]
    partial = SCENARIOS[A1]["partial2"]
    return {"ada": {t: points[t] for t in tests},
            "bob": {t: 0.0 for t in tests},
            "cy": {t: points[t] if t in partial["passing"] else 0.0 for t in tests}}, points


def _rows(url: str) -> dict:
    """``{(student, grade cell): (auto_score, manual_score)}`` for A1, read with psycopg's own SQL."""
    import psycopg

    with psycopg.connect(url, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT st.id, bc.name, g.auto_score, g.manual_score FROM grade g "
            "JOIN submitted_notebook sn ON g.notebook_id = sn.id "
            "JOIN submitted_assignment sa ON sn.assignment_id = sa.id "
            "JOIN assignment a ON sa.assignment_id = a.id "
            "JOIN student st ON sa.student_id = st.id "
            "JOIN base_cell bc ON g.cell_id = bc.id "
            "WHERE a.name = %s", (A1,)).fetchall()
    return {(s, name): (auto, manual) for s, name, auto, manual in rows}


class ManualGrader(threading.Thread):
    """Grades each student's written answer by hand through nbgrader's Gradebook API (what
    Formgrader's grade and comment handlers do) as soon as the submission is in the gradebook, and
    again and again until stopped; the last write is :data:`MANUAL`. Records, at each write, how many
    submissions the gradebook held (read with psycopg), to show that it wrote while graders recorded."""

    def __init__(self, url: str, students):
        super().__init__(daemon=True)
        self.url, self.students = url, list(students)
        self.stop, self.commits, self.seen, self.error = threading.Event(), 0, [], None

    def _write(self, gb, student: str, score: float, text: str) -> bool:
        from nbgrader.api import MissingEntry

        try:
            g = gb.find_grade("written_answer", NB, A1, student)
            c = gb.find_comment("written_answer", NB, A1, student)
        except MissingEntry:        # not graded yet
            gb.db.rollback()        # a fresh snapshot next time
            return False
        g.manual_score, g.needs_manual_grade = score, False
        c.manual_comment = text
        gb.db.commit()
        self.commits += 1
        return True

    def run(self) -> None:
        import psycopg
        from nbgrader.api import Gradebook

        try:
            with Gradebook(self.url, course_id=course.COURSE_ID) as gb, \
                    psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
                i = 0
                while not self.stop.is_set():
                    wrote = [self._write(gb, s, 0.5 * (i % 4), f"draft {i}") for s in self.students]
                    if any(wrote):
                        self.seen.append(conn.execute("SELECT count(*) FROM submitted_assignment").fetchone()[0])
                    i += 1
                    time.sleep(0.05)
                for s in self.students:
                    assert self._write(gb, s, *MANUAL[s]), f"{s}'s written answer is not in the gradebook"
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


@pytest.fixture(scope="module")
def graded(pg, tmp_path_factory):
    """The class graded once against ``pg``: see the module's docstring. Returns what the tests check."""
    from test_course_pipeline import SCENARIOS, make_submission

    from autograder import grade

    base = tmp_path_factory.mktemp("pg")
    root = _course_copy(base)
    seconds, t0 = {}, time.monotonic()
    cli(root, "release", A1, "--db", pg.url)
    seconds["release"] = time.monotonic() - t0
    source = nbformat.read(root / "solutions" / A1 / f"{NB}.ipynb", as_version=4)
    release = nbformat.read(root / "assignments" / A1 / f"{NB}.ipynb", as_version=4)
    students = {"ada": make_submission(release, source), "bob": release,
                "cy": make_submission(release, source, fill=SCENARIOS[A1]["partial2"]["fill"])}
    for s, nb in students.items():
        (base / "inbox" / s / A1).mkdir(parents=True)
        nbformat.write(nb, base / "inbox" / s / A1 / f"{NB}.ipynb")
    grade.collect(base / "inbox", root)
    before = _rows(pg.url)

    # Three graders at once, the two `grade secure` with reports folders of their own (the shared
    # state is the gradebook), and a hand grader writing meanwhile.
    t1 = time.monotonic()
    psycopg_url = pg.url.replace("postgresql://", "postgresql+psycopg://")
    runs = {"ada": (["secure", "--out", str(base / "reports_ada"), "--db", pg.url], _env()),
            "bob": (["secure", "--out", str(base / "reports_bob")], _env(**{course.DB_ENV: psycopg_url})),
            "cy": (["autograde", "--db", pg.url], _env())}
    writer = ManualGrader(pg.url, students)
    writer.start()
    graders = {s: subprocess.Popen([sys.executable, "-m", "autograder", cmd[0], A1, "--student", s, "--workers", "1",
                                    "--root", str(root), *cmd[1:]], cwd=ROOT, env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for s, (cmd, env) in runs.items()}
    outputs = {}
    try:
        for s, p in graders.items():
            out, err = p.communicate(timeout=TIMEOUT)
            outputs[s] = (p.returncode, out, err)
    finally:
        for p in graders.values():
            if p.poll() is None:
                p.kill()
                p.communicate()
        writer.stop.set()
        writer.join(timeout=60)
    seconds["graders"] = time.monotonic() - t1
    t2 = time.monotonic()
    grade.feedback(A1, root=root, db=pg.url)
    export = grade.export(root=root, db=psycopg_url)
    seconds["feedback+export"] = time.monotonic() - t2
    with open(export, newline="") as fh:
        csv_rows = {r["student_id"]: r for r in csv.DictReader(fh) if r["assignment"] == A1}
    expected, points = _expected(source)
    print(f"postgres workflow: {', '.join(f'{k} {v:.0f} s' for k, v in seconds.items())}")
    return dict(root=root, base=base, rows=_rows(pg.url), before=before, outputs=outputs, writer=writer,
                csv=csv_rows, expected=expected, points=points, seconds=seconds)


def test_every_score_is_in_postgresql(graded):
    for s, (rc, out, err) in graded["outputs"].items():
        assert rc == 0, f"the grader of {s} failed (exit {rc}):\n{out}\n{err}"
        assert (f"{s}: " in out) if s != "cy" else ("autograded ->" in out), out
    w = graded["writer"]
    assert w.error is None, f"the hand grader failed: {w.error!r}"
    # It wrote while graders were still recording (fewer than three submissions in), and after.
    assert w.seen and min(w.seen) < 3 and max(w.seen) == 3, w.seen
    assert graded["before"] == {}, "the release put no submission in the gradebook"
    rows = graded["rows"]
    assert {s for s, _ in rows} == {"ada", "bob", "cy"}
    for student, tests in graded["expected"].items():
        got = {t: rows[(student, t)][0] for t in tests}
        assert got == tests, f"{student}: auto scores in PostgreSQL {got} != expected {tests}"
        assert rows[(student, "written_answer")][1] == MANUAL[student][0], student


def test_nothing_fell_back_to_sqlite(graded):
    root = graded["root"]
    assert not (root / "autograder" / "gradebook.db").exists()
    stray = [p for p in graded["base"].rglob("*") if p.suffix in (".db", ".sqlite", ".sqlite3")
             or (p.is_file() and p.read_bytes()[:16] == b"SQLite format 3\x00")]
    assert not stray, f"SQLite files appeared: {stray}"


def test_export_holds_auto_and_manual_points(graded):
    rows, expected, points = graded["csv"], graded["expected"], graded["points"]
    assert set(rows) == {"ada", "bob", "cy"}
    for student, tests in expected.items():
        assert float(rows[student]["score"]) == pytest.approx(sum(tests.values()) + MANUAL[student][0]), student
        assert float(rows[student]["max_score"]) == pytest.approx(sum(points.values())), student
    assert 0 < sum(expected["cy"].values()) < sum(expected["ada"].values()), "cy must be a partial score"


def test_feedback_shows_the_manual_grade_from_postgresql(graded):
    path = graded["root"] / "autograder" / "feedback" / "cy" / A1 / f"{NB}.html"
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", path.read_text())).split())
    assert MANUAL["cy"][1] in text, "the feedback lacks the comment written into PostgreSQL"
    total = sum(graded["expected"]["cy"].values()) + MANUAL["cy"][0]
    assert f"{NB} (Score: {total:.1f} / {sum(graded['points'].values()):.1f})" in text
    assert f"Written response (Score: {MANUAL['cy'][0]:.1f} / {graded['points']['written_answer']:.1f})" in text


# -- clear errors, before any grading starts ----------------------------------------------------

def _closed_port() -> int:
    return pgserver.free_port()   # nothing listens there: free_port() closed its socket


def test_unreachable_server_stops_autograde_before_grading(graded, pg):
    root, port = graded["root"], _closed_port()
    url = f"postgresql://grader:{pg.password}@127.0.0.1:{port}/cnnlab"
    t0 = time.monotonic()
    proc = cli(root, "autograde", A1, "--student", "ada", "--db", url, check=False)
    seconds = time.monotonic() - t0
    assert proc.returncode == 1, proc
    err = proc.stderr
    assert err.startswith(f"error: cannot connect to the gradebook postgresql+psycopg://grader:***@127.0.0.1:{port}/cnnlab:"), err
    assert "Connection refused" in err and "start the database server, or fix the host and port" in err, err
    assert pg.password not in err + proc.stdout
    assert "Traceback" not in err
    # Nothing was graded: the hardened grader's reports of ada were not rewritten, no SQLite file appeared.
    assert not (root / "autograder" / "secure_graded" / A1 / "ada").exists()
    assert not (root / "autograder" / "gradebook.db").exists()
    print(f"unreachable gradebook reported in {seconds:.1f} s")
    # The hardened grader alone stops the same way, before it grades anything or writes a report.
    out = root / "autograder" / "secure_unreachable"
    proc = cli(root, "secure", A1, "--student", "ada", "--db", url, "--out", str(out), check=False)
    assert proc.returncode == 1, proc
    assert proc.stderr.startswith(f"error: cannot connect to the gradebook postgresql+psycopg://grader:***@127.0.0.1:{port}/cnnlab:"), proc.stderr
    assert not out.exists(), sorted(out.rglob("*"))


def test_missing_database_and_bogus_driver_are_clear_errors(graded, pg):
    root = graded["root"]
    url = pg.url.rsplit("/", 1)[0] + "/nosuchdb"
    proc = cli(root, "export", "--db", url, check=False)
    assert proc.returncode == 1
    assert f"cannot connect to the gradebook postgresql+psycopg://grader:***@127.0.0.1:{pg.port}/nosuchdb" in proc.stderr
    assert 'database "nosuchdb" does not exist' in proc.stderr and "createdb -O grader nosuchdb" in proc.stderr
    assert pg.password not in proc.stderr

    bogus = pg.url.replace("postgresql://", "postgresql+nosuchdriver://")
    proc = cli(root, "release", A1, "--db", bogus, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"error: gradebook URL postgresql+nosuchdriver://grader:***@127.0.0.1:{pg.port}/cnnlab: SQLAlchemy has no "
        "database driver 'postgresql+nosuchdriver'; use postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE "
        "(psycopg 3: pip install -e '.[postgres]') or sqlite:///ABSOLUTE/PATH.db"), proc.stderr
    assert not (root / "autograder" / "gradebook.db").exists()


def test_missing_driver_names_the_extra(pg, monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)      # `import psycopg` now fails as if not installed
    monkeypatch.setattr(gradebook, "_CHECKED", set())
    with pytest.raises(gradebook.GradebookError) as info:
        gradebook.check_url(pg.url)
    msg = str(info.value)
    assert msg.startswith(f"gradebook URL postgresql+psycopg://grader:***@127.0.0.1:{pg.port}/cnnlab needs the "
                          "database driver 'psycopg', which is not installed"), msg
    assert "pip install -e '.[postgres]'" in msg and pg.password not in msg


def test_check_url_connects_and_normalizes(pg, monkeypatch):
    monkeypatch.setattr(gradebook, "_CHECKED", set())
    expected = pg.url.replace("postgresql://", "postgresql+psycopg://")
    assert gradebook.check_url(pg.url) == expected
    assert gradebook.check_url(pg.url.replace("postgresql://", "postgres://")) == expected
    assert gradebook.masked_url(expected) == expected.replace(pg.password, "***")
    monkeypatch.setenv(course.DB_ENV, f"  {pg.url} ")
    assert course.db_url() == expected
    with pytest.raises(gradebook.GradebookError, match="password authentication failed") as info:
        gradebook.check_url(pg.url.replace(pg.password, "wrong-pw"))
    assert "wrong-pw" not in str(info.value) and "check the user name and password" in str(info.value)
    with pytest.raises(gradebook.GradebookError, match="is not a database URL"):
        gradebook.check_url("/srv/grades/gradebook.db")
