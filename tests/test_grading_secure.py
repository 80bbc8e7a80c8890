"""Hardened grading: student code cannot influence the points (autograder.secure).

Each submission of the corpus (tests/submissions/corpus.py: a tiny assignment worth 10 points)
has a hand-computed expected total; honest ones must score as plain nbgrader scores them
(test cells executed in one kernel, checked against nbclient here).
"""
from __future__ import annotations

import importlib.util
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from autograder.secure import wire

# Its module/session fixtures are built once: the whole file runs on one xdist worker.
pytestmark = pytest.mark.xdist_group("grading_secure")

_spec = importlib.util.spec_from_file_location("grading_corpus", Path(__file__).parent / "submissions" / "corpus.py")
corpus = sys.modules.get("grading_corpus") or importlib.util.module_from_spec(_spec)
if "grading_corpus" not in sys.modules:
    sys.modules["grading_corpus"] = corpus
    _spec.loader.exec_module(corpus)

CASES = corpus.HONEST + corpus.ADVERSARIAL + corpus.TAMPERING


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    res, subs, out = corpus.grade_cases(tmp_path_factory.mktemp("secure"), CASES, workers=2)
    return res, out


@pytest.mark.parametrize("name", CASES)
def test_expected_score_and_message(graded, name):
    res, _ = graded
    _, total, fragment = corpus.CASES[name]
    r = res[name]
    assert r["total"] == total, (name, r["scores"], r["messages"])
    assert r["max_total"] == corpus.MAX + 1  # + the manually graded answer
    assert r["scores"]["written"] is None  # manual grading is left to the instructor
    if fragment:
        assert any(fragment in m for m in r["messages"]), r["messages"]


def test_monkeypatch_cannot_pass_a_wrong_answer(graded):
    res, _ = graded
    for name in ("patch_allclose", "patch_builtins", "patch_sys_modules", "redefine_assert", "print_fake_output"):
        assert res[name]["scores"]["test_relu"] == 0, name
        assert res[name]["scores"]["test_add"] == 2 and res[name]["scores"]["test_scaler"] == 5, name


def test_reports_written(graded):
    res, out = graded
    rep = json.loads((out / "edit_test" / "report.json").read_text())
    assert rep["total"] == 7 and any("edited" in m for m in rep["messages"])
    md = (out / "edit_test" / "report.md").read_text()
    assert "Total: 7 / 11" in md and "edited" in md
    rows = (out / "grades.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + len(CASES)
    # Every submission ran behind the layers this machine supports (sandbox.probe), each named.
    from autograder.secure import sandbox
    caps = sandbox.probe()
    expected = {"process", "fresh-dir", "python -I", "rlimits"}
    if caps["namespaces"]:
        expected |= {"no-network", "pid-namespace", "read-only-fs", "hidden-course-dirs"}
    if caps["cgroup"]:
        expected.add("pids-cgroup")
    elif not caps["root"]:
        expected.add("RLIMIT_NPROC")
    for name, r in res.items():
        assert expected <= set(r["isolation"]), (name, r["isolation"])


def _nbclient_total(nb) -> float:
    """What plain nbgrader gives: points of grade cells that executed without an error output."""
    from nbclient import NotebookClient
    NotebookClient(nb, timeout=60, kernel_name="python3", allow_errors=True).execute()
    total = 0.0
    for c in nb.cells:
        m = c.metadata.get("nbgrader", {})
        if c.cell_type == "code" and m.get("grade"):
            if not any(o.get("output_type") == "error" for o in c.outputs):
                total += m["points"]
    return total


def test_honest_scores_match_unhardened_execution(graded):
    res, _ = graded
    answers = {"honest_full": {}, "honest_partial": {"relu": corpus.WRONG_RELU},
               "honest_hidden_fail": {"norm": corpus.WRONG_SCALER_HIDDEN}}
    for name, ans in answers.items():
        nb = corpus.student_notebook(ans, hidden=True)  # what nbgrader runs: hidden tests restored
        assert _nbclient_total(nb) == res[name]["total"], name


# --- the wire: nothing from the student's side is trusted ---------------------------------

def _npy(arr, **kw):
    buf = io.BytesIO()
    np.save(buf, arr, **kw)
    return buf.getvalue()


def test_decode_refuses_pickled_and_object_arrays():
    obj = np.array([{"a": 1}], dtype=object)
    with pytest.raises(wire.ProtocolError):
        wire.decode({"t": "nd", "i": 0}, [_npy(obj, allow_pickle=True)], None)
    with pytest.raises(wire.ProtocolError):
        wire.decode({"t": "weird"}, [], None)
    with pytest.raises(wire.ProtocolError):
        wire.decode({"t": "nd", "i": 5}, [], None)
    out = wire.decode({"t": "tuple", "v": [1, {"t": "nd", "i": 0}]}, [_npy(np.arange(3.0))], None)
    assert type(out) is tuple and np.array_equal(out[1], [0.0, 1.0, 2.0])


def test_remote_object_lends_no_truth_or_equality():
    h = wire.RemoteObject(None, 1, "x", "T", False)
    assert (h == 3) is False and h == h
    with pytest.raises(TypeError):
        bool(h)


def test_remote_exception_maps_only_to_builtin_exceptions():
    assert wire._exc_class("ValueError") is ValueError
    assert wire._exc_class("SystemExit") is wire.StudentError
    assert wire._exc_class("KeyboardInterrupt") is wire.StudentError
    assert wire._exc_class("__import__") is wire.StudentError
