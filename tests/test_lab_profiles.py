"""The two labs of `python3 run.py lab`: the student's and the instructor's (`--instructor`).

Each is started exactly as run.py starts it (run.lab_invocation), as a real JupyterLab server on a
free loopback port, and asked over its REST API and page configuration what a person would see:
the student's has no Create Assignment, Formgrader, course list or news prompt, works in a copy
of the release with the student edition of the library; the instructor's has nbgrader's tools
configured for this course (Formgrader lists the course's assignments).
What the pages look like in a browser is issue 12's browser tests (not yet written).
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from pathlib import Path

import pytest

from autograder import course

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = course.assignment_ids(ROOT)
sys.path.insert(0, str(Path(__file__).parent))
from test_jupyterlab import _get, running_lab  # noqa: E402

_spec = importlib.util.spec_from_file_location("cnnlab_run_py", ROOT / "run.py")
run_py = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_py)

INSTRUCTOR_TOOLS = ("@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:formgrader",
                    "@jupyter/nbgrader:course-list")
NEWS = "@jupyterlab/apputils-extension:announcements"


def _page_config(base, token) -> dict:
    page = _get(f"{base}/lab", token)[1]
    match = re.search(r'<script id="jupyter-config-data"[^>]*>(.*?)</script>', page, re.S)
    assert match, "no page config in /lab"
    return json.loads(match.group(1))


def _disabled(config) -> set[str]:
    return set(config.get("disabledExtensions", []))


def _status(base, token, path) -> int:
    import urllib.error
    try:
        return _get(f"{base}{path}", token, timeout=30)[0]
    except urllib.error.HTTPError as exc:
        return exc.code


def test_student_copy_never_overwrites_the_students_files(tmp_path):
    work = run_py.student_copy(tmp_path / "work")
    assert sorted(p.name for p in work.iterdir()) == ASSIGNMENTS
    nb = next((work / ASSIGNMENTS[0]).glob("*.ipynb"))
    nb.write_text("the student's own work")
    (work / ASSIGNMENTS[1] / "rules.toml").unlink()
    run_py.student_copy(work)
    assert nb.read_text() == "the student's own work"
    assert (work / ASSIGNMENTS[1] / "rules.toml").read_bytes() == (ROOT / "assignments" / ASSIGNMENTS[1] / "rules.toml").read_bytes()


def test_student_lab_has_the_student_tools_only(tmp_path):
    command, cwd, env = run_py.lab_invocation(False, dict(os.environ), work=tmp_path / "work")
    with running_lab(tmp_path, launcher=command, cwd=cwd, env=env) as (base, token):
        listing = json.loads(_get(f"{base}/api/contents", token)[1])
        assert {i["name"] for i in listing["content"]} == set(ASSIGNMENTS)   # the copy, no library/
        disabled = _disabled(_page_config(base, token))
        assert set(INSTRUCTOR_TOOLS) | {NEWS} <= disabled, disabled
        assert not disabled & {"@jupyter/nbgrader:assignment-list", "@jupyter/nbgrader:validate-assignment"}
        assert _status(base, token, "/formgrader") == 404
        assert _status(base, token, "/nbgrader_version?version=0") == 200     # Validate's server side is there
        specs = json.loads(_get(f"{base}/api/kernelspecs", token)[1])
        assert specs["default"] == "python3"
        assert specs["kernelspecs"]["python3"]["spec"]["display_name"] == "Python 3 (cnnlab)"
    assert str(ROOT / "assignments" / "library") in env["PYTHONPATH"].split(os.pathsep)[0]


def test_instructor_lab_has_nbgrader_for_this_course(tmp_path):
    command, cwd, env = run_py.lab_invocation(True, dict(os.environ))
    assert cwd == ROOT / "autograder" and "PYTHONPATH" not in env or "assignments" not in env.get("PYTHONPATH", "")
    with running_lab(tmp_path, launcher=command, cwd=cwd, env=env) as (base, token):
        disabled = _disabled(_page_config(base, token))
        assert NEWS in disabled and not disabled & set(INSTRUCTOR_TOOLS), disabled
        assert _status(base, token, "/formgrader") == 200
        body = _get(f"{base}/formgrader/api/assignments", token, timeout=60)[1]
        names = {a["name"] for a in json.loads(body)}
        assert set(ASSIGNMENTS) <= names, names
