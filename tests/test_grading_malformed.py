"""Malformed submissions never crash a batch, never lose a grade, are never modified; re-runs are idempotent."""
from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import pytest

# Its module/session fixtures are built once: the whole file runs on one xdist worker.
pytestmark = pytest.mark.xdist_group("grading_malformed")

_spec = importlib.util.spec_from_file_location("grading_corpus", Path(__file__).parent / "submissions" / "corpus.py")
corpus = sys.modules.get("grading_corpus") or importlib.util.module_from_spec(_spec)
if "grading_corpus" not in sys.modules:
    sys.modules["grading_corpus"] = corpus
    _spec.loader.exec_module(corpus)

CASES = corpus.MALFORMED + ["honest_full"]


def _hashes(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("malformed")
    corpus.make_course(root)
    subs = root / "subs"
    corpus.write_cases(subs, CASES)
    before = _hashes(subs)
    from autograder.secure import grade_batch
    first = grade_batch(corpus.ASSIGNMENT, root=root, submissions=subs, workers=2, limits=corpus.small_limits(),
                        out=root / "out")
    csv1 = (root / "out" / "grades.csv").read_text()
    second = grade_batch(corpus.ASSIGNMENT, root=root, submissions=subs, workers=2, limits=corpus.small_limits(),
                         out=root / "out")
    return root, subs, before, first, second, csv1


@pytest.mark.parametrize("name", CASES)
def test_malformed_gets_a_grade_and_a_message(graded, name):
    _, _, _, first, _, _ = graded
    _, total, fragment = corpus.CASES[name]
    r = first[name]
    assert r["total"] == total, (name, r["messages"])
    assert set(r["scores"]) == {"test_add", "test_relu", "test_scaler", "written"}
    if fragment:
        assert any(fragment in m for m in r["messages"]), r["messages"]


def test_submissions_never_modified(graded):
    _, subs, before, _, _, _ = graded
    assert _hashes(subs) == before


def test_rerun_is_idempotent(graded):
    root, _, _, first, second, csv1 = graded
    strip = lambda res: {s: (r["total"], r["scores"], r["messages"]) for s, r in res.items()}  # noqa: E731
    assert strip(first) == strip(second)
    csv2 = (root / "out" / "grades.csv").read_text()
    assert csv1 == csv2
    rows = list(csv.DictReader(csv2.splitlines()))
    assert sorted(r["student"] for r in rows) == sorted(CASES)  # nothing duplicated
    assert json.loads((root / "out" / "results.json").read_text()).keys() == set(CASES)


def test_missing_notebook_and_unknown_student(tmp_path):
    from autograder.secure import grade_batch
    corpus.make_course(tmp_path)
    (tmp_path / "subs" / "nobody" / corpus.ASSIGNMENT).mkdir(parents=True)
    res = grade_batch(corpus.ASSIGNMENT, root=tmp_path, submissions=tmp_path / "subs", workers=1,
                      out=tmp_path / "out")
    assert res["nobody"]["total"] == 0 and "no notebook found" in res["nobody"]["messages"][0]
    with pytest.raises(ValueError, match="ghost"):
        grade_batch(corpus.ASSIGNMENT, root=tmp_path, submissions=tmp_path / "subs", student="ghost")
