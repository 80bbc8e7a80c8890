"""End to end in a real browser: headless Chromium (Debian's ``chromium`` package, driven by
Playwright for Python through ``executable_path``) against a real JupyterLab on a free loopback
port, started by the test.

1. The student, in the student's lab (``python3 run.py lab``): opens assignment 1, fills in an
   answer, runs the cells and sees ``check(...)`` pass; breaks the answer and sees the failure
   and its hint; saves and clicks *Validate*, and sees nbgrader's verdict.
2. The student's lab has no instructor tool (no *Formgrader*, no *Create Assignment*, no course
   list) and no news prompt, and has the student's (*Validate*, the assignment list).
3. The instructor, in the instructor's lab on a copy of the course with one graded submission:
   opens Formgrader, gives the written answer its points by hand, and exports the grades: the CSV
   holds the automatic and the manual points.

A failing test leaves a screenshot and the page's console log in ``test-artifacts/browser/``
(``CNNLAB_ARTIFACTS`` moves it). Chromium is installed with apt when missing; where apt is not
available the tests skip and say why. Run them alone with ``python3 run.py test -m browser``.
"""
from __future__ import annotations

import contextlib
import csv
import os
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

import run
from autograder import course, grade
from test_jupyterlab import running_lab

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("browser")]

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("CNNLAB_ARTIFACTS", ROOT / "test-artifacts")) / "browser"
A1 = "01_convolution"


def autograded_points(assignment: str) -> float:
    """The autograded points of an assignment, from its source notebook's nbgrader metadata."""
    (path,) = (ROOT / "solutions" / assignment).glob("*.ipynb")
    return sum(float(c.metadata["nbgrader"].get("points", 0)) for c in nbformat.read(path, as_version=4).cells
               if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade"))
TIMEOUT = 90_000   # ms: a cell that trains, or Validate running the notebook on a busy 2-core machine


def chromium() -> str:
    """The path of Debian's chromium; installed with apt when missing."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip("Debian's chromium is not installed and apt-get (as root) is not available to install it")
    subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, capture_output=True,
                   env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    return shutil.which("chromium")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    path = chromium()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@contextlib.contextmanager
def page_of(browser, name: str):
    """A fresh page; when the block fails, its screenshot and console log go to ARTIFACTS."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(TIMEOUT)
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    try:
        yield page
    except BaseException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(Exception):
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)
        (ARTIFACTS / f"{name}.console.log").write_text("\n".join(console) + "\n")
        raise
    finally:
        page.close()


def _cells(nb_path: Path) -> list[str]:
    return [c.get("id") for c in nbformat.read(nb_path, as_version=4).cells]


def _set_source(page, cell, source: str) -> None:
    """Replace a cell's code as a student would: click in its editor, select all, type."""
    cell.locator(".cm-content").click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(source)
    page.keyboard.press("Escape")


def _run(page, times: int = 1) -> None:
    for _ in range(times):
        page.keyboard.press("Shift+Enter")


@pytest.fixture(scope="module")
def student_lab(tmp_path_factory):
    home = tmp_path_factory.mktemp("student")
    cmd, cwd, env = run.lab_invocation(False, dict(os.environ, HOME=str(home)), home / "student_work")
    with running_lab(home, launcher=cmd, cwd=cwd, env=env) as (base, token):
        yield base, token, home / "student_work"


def _open(page, base: str, token: str, path: str) -> None:
    page.goto(f"{base}/lab/tree/{path}?token={token}")
    page.wait_for_selector(".jp-Notebook .jp-Cell")
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")


WRONG_OUTPUT_SIZE = "def compute_output_size(W, F, stride=1, pad=0, dilation=1):\n    return (W - dilation * (F - 1) - 1) // stride + 1\n\n\ndef same_padding(F, dilation=1):\n    return dilation * (F - 1) // 2\n"


def _solution(gid: str) -> str:
    nb = nbformat.read(next((ROOT / "solutions" / A1).glob("*.ipynb")), as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)
    return "\n".join(l for l in cell.source.splitlines() if l.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION")) + "\n"


def test_student_fills_an_answer_checks_it_breaks_it_and_validates(browser, student_lab):
    base, token, work = student_lab
    ids = _cells(work / A1 / "convolution.ipynb")
    check_cell = ids.index("check-output-size")
    answer = check_cell - 1                                  # the check cell sits under its answer
    with page_of(browser, "student_check") as page:
        _open(page, base, token, f"{A1}/convolution.ipynb")
        cells = page.locator(".jp-Notebook .jp-Cell")
        _set_source(page, cells.nth(answer), _solution("output_size"))
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel").get_by_text("Run All Above Selected Cell", exact=True).click()
        _run(page, 2)                                        # the answer, then check("output_size")
        out = cells.nth(check_cell).locator(".jp-OutputArea")
        out.get_by_text("passed its visible tests").wait_for()
        assert 'check("output_size"): test_output_size passed its visible tests (2 / 2 points)' in out.inner_text()
        assert "Hidden tests run when you are graded" in out.inner_text()

        _set_source(page, cells.nth(answer), WRONG_OUTPUT_SIZE)   # forgets the padding
        cells.nth(answer).locator(".jp-InputPrompt").click()
        _run(page, 2)
        out.get_by_text("FAILED").wait_for()
        text = out.inner_text()
        assert 'check("output_size"): test_output_size FAILED (0 / 2 points)' in text
        assert "compute_output_size(32, 5, stride=1, pad=2) = 28, expected 32" in text and "hint:" in text

        page.keyboard.press("Control+S")
        # Validate saves too: wait until this save is done, or the two race ("File Changed" dialog)
        page.wait_for_function("() => !document.querySelector('.lm-TabBar-tab.jp-mod-dirty')")
        page.wait_for_timeout(1000)
        page.get_by_role("button", name="Validate").click()
        dialog = page.locator(".jp-Dialog")
        dialog.wait_for()
        dialog.get_by_text(re.compile("failed|Success", re.I)).first.wait_for(timeout=180_000)
        verdict = dialog.inner_text()
        assert "Validation Results" in verdict and "The following cell failed" in verdict, verdict[:500]
        assert "compute_output_size(W_, F_, stride=S_, pad=P_)" in verdict and "AssertionError" in verdict
        assert "Success" not in verdict
    saved = nbformat.read(work / A1 / "convolution.ipynb", as_version=4)
    assert saved.cells[answer].source.strip() == WRONG_OUTPUT_SIZE.strip(), "Validate must save what the student typed"


def test_student_lab_has_no_instructor_tool(browser, student_lab):
    base, token, _ = student_lab
    with page_of(browser, "student_tools") as page:
        _open(page, base, token, f"{A1}/convolution.ipynb")
        page.get_by_role("button", name="Validate").wait_for()           # the student's tool is there
        page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").click()
        items = page.locator(".lm-Menu-itemLabel").all_inner_texts()
        page.keyboard.press("Escape")
        assert "Assignment List" in items and not any("Formgrader" in i or "Course List" in i for i in items), items
        tabs = page.locator(".lm-TabBar-tab").evaluate_all("els => els.map(e => e.title || e.innerText)")
        assert not any("Create Assignment" in t for t in tabs), tabs
        assert page.get_by_text("Create Assignment").count() == 0
        assert page.get_by_text(re.compile("Jupyter news", re.I)).count() == 0
        page.goto(f"{base}/formgrader?token={token}")
        assert page.get_by_text("Manage Assignments").count() == 0          # the server has no formgrader either


@pytest.fixture(scope="module")
def graded_course(tmp_path_factory):
    """A copy of the course with assignment 1 released and one student's submission (the
    instructor's answers) graded by the hardened grader; the written answer awaits its grade."""
    from test_course_pipeline import STATE, make_submission
    base = tmp_path_factory.mktemp("course")
    root = base / "course"
    for name in ("solutions", "assignments"):
        shutil.copytree(ROOT / name / A1, root / name / A1)
    shutil.copytree(ROOT / "autograder", root / "autograder", ignore=shutil.ignore_patterns(*STATE))
    source = nbformat.read(root / "solutions" / A1 / "convolution.ipynb", as_version=4)
    release = nbformat.read(root / "assignments" / A1 / "convolution.ipynb", as_version=4)
    (base / "inbox" / "ada" / A1).mkdir(parents=True)
    nbformat.write(make_submission(release, source), base / "inbox" / "ada" / A1 / "convolution.ipynb")
    grade.collect(base / "inbox", root)
    grade.autograde(A1, root=root, workers=1)
    return root


def test_instructor_grades_a_written_answer_in_formgrader_and_exports_both(browser, graded_course, tmp_path,
                                                                           monkeypatch):
    monkeypatch.delenv(course.DB_ENV, raising=False)
    root = graded_course
    auto = sum(v for k, v in grade.scores(A1, root)["ada"].items() if k.startswith("test_"))
    cmd, cwd, env = run.lab_invocation(True, dict(os.environ, HOME=str(tmp_path)), root=root)
    with running_lab(tmp_path, launcher=cmd, cwd=cwd, env=env) as (base, token), \
            page_of(browser, "instructor_formgrader") as page:
        page.goto(f"{base}/lab?token={token}")
        page.wait_for_selector(".jp-LabShell")
        page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").click()
        page.locator(".lm-Menu-itemLabel").get_by_text("Formgrader", exact=True).click()   # the instructor's tool
        frame = page.frame_locator("iframe").first
        frame.get_by_text("Manage Assignments").first.wait_for()
        frame.get_by_role("link", name="Manual Grading").first.click()
        frame.get_by_role("link", name=A1).click()
        frame.get_by_role("link", name="convolution").click()
        frame.get_by_role("link", name="Submission #1").click()
        score = frame.locator("input#written_answer")
        score.wait_for()
        # The score field is in the HTML before formgrade.js has fetched the grades and bound its
        # save-on-change view; a value typed before that is lost (seen on a busy CI machine).
        score.element_handle().owner_frame().wait_for_function(
            "() => window.formgrader && formgrader.grades && formgrader.grades.loaded === true")
        with page.expect_response(lambda r: "/formgrader/api/grade/" in r.url and r.request.method == "PUT"
                                  and r.ok):
            score.fill("1.5")
            score.press("Tab")                                   # formgrader saves when the field loses focus
    out = grade.export(root=root)
    with open(out, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["student_id"] == "ada" and r["assignment"] == A1]
    assert len(rows) == 1 and auto == autograded_points(A1) > 0   # the full answers: every autograded point
    assert float(rows[0]["score"]) == pytest.approx(auto + 1.5), rows[0]
