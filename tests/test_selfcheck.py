"""The student's check (cnnlab.selfcheck) without a kernel: arguments, the rules report, the text.

Running notebooks through it, from a fresh install of the student bundle, is
tests/test_student_bundle.py."""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

from autograder import course
from cnnlab import rules, selfcheck

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = course.assignment_ids(ROOT)
sys.path.insert(0, str(Path(__file__).parent))
from test_course_pipeline import make_submission  # noqa: E402


def _pair(a):
    src = nbformat.read(next((ROOT / "solutions" / a).glob("*.ipynb")), as_version=4)
    rel = nbformat.read(next((ROOT / "assignments" / a).glob("*.ipynb")), as_version=4)
    return rel, src


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_instructor_answers_break_no_rule_and_keys_do(assignment):
    release, source = _pair(assignment)
    folder = ROOT / "assignments" / assignment
    assert selfcheck.static_report(make_submission(release, source), folder) == {}
    rule_set = rules.load(folder)
    gid, rule = next(iter(rule_set.items()))
    keyed = make_submission(release, source, answers={gid: f"import {rule.forbid[0]}\n"})
    report = selfcheck.static_report(keyed, folder)
    assert list(report) == [gid]
    assert report[gid] == (f"answer {gid!r} uses import {rule.forbid[0]}, which this exercise forbids "
                           f"({rule.forbid[0]}): it earns nothing in {', '.join(rule.tests)}")


@pytest.mark.parametrize("arg, message", [("no-such.ipynb", "NOTEBOOK 'no-such.ipynb': expected a notebook"),
                                          ("tests/data", "NOTEBOOK 'tests/data': the folder holds no notebook")])
def test_a_bad_argument_is_named(arg, message, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert selfcheck.main([arg]) == 2
    assert message in capsys.readouterr().err


def test_report_text():
    r = {"notebook": "a/n.ipynb", "rules": {"f": "answer 'f' uses torch: it earns nothing in test_f"},
         "tests": [{"id": "test_f", "points": 3.0, "passed": False, "error": "RuleBroken: ..."},
                   {"id": "test_g", "points": 2.0, "passed": True, "error": None}],
         "not_written": ["h"], "errors": [{"cell": 4, "id": None, "error": "ValueError: x"}],
         "visible_points": 2.0, "max_points": 5.0, "manual_points": 2.0}
    text = selfcheck.format_report(r)
    assert "FAIL test_f" in text and "0 / 3   RuleBroken" in text and "ok   test_g" in text
    assert "rule: answer 'f' uses torch" in text and "still to write: h" in text
    assert "cell 4 raised ValueError: x" in text
    assert text.endswith("visible tests: 2 / 5 points; 2 points of written answers are graded by hand")
