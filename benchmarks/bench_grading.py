"""Throughput of the hardened autograder: submissions per minute with 1 and 2 workers.

    python3 run.py bench grading --vs-nbgrader [--n 6] [--assignment 01_convolution]
    python3 run.py bench grading [--n 8] [--assignment tiny|01_convolution]

``--vs-nbgrader``: six honest submissions (the release with every answer cell filled in from the
solution) graded by plain nbgrader's serial autograde, by the hardened grader with 1 and with 2
workers, and by the default ``grade autograde`` (hardened + nbgrader's gradebook pass), in one
run; prints the ratios to plain nbgrader and checks all give the same scores. Target: hardened
with 2 workers >= 1.8x plain nbgrader.

Without it:
Grades ``n`` honest submissions (the full solution, solution markers stripped) in a temporary
copy of the course, once with 1 worker and once with 2, checks both give the same scores, and
prints submissions/minute. ``tiny`` is the test corpus's assignment (tests/submissions/corpus.py).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograder.secure import Limits, grade_batch, probe  # noqa: E402


_STATE = ("gradebook.db", "submitted", "autograded", "feedback", "exports", "release", "source",
          "solution", "source_with_tests", "secure_graded", "__pycache__", ".nbgrader.log")


def _strip(source: str) -> str:
    return "\n".join(l for l in source.split("\n") if "BEGIN SOLUTION" not in l and "END SOLUTION" not in l)


def _course(tmp: Path, assignment: str) -> str:
    if assignment == "tiny":
        spec = importlib.util.spec_from_file_location("grading_corpus", ROOT / "tests" / "submissions" / "corpus.py")
        corpus = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(corpus)
        corpus.make_course(tmp)
        return corpus.NOTEBOOK
    src = ROOT / "solutions" / assignment
    shutil.copytree(src, tmp / "solutions" / assignment)
    if (ROOT / "assignments" / assignment).is_dir():
        shutil.copytree(ROOT / "assignments" / assignment, tmp / "assignments" / assignment)
    (tmp / "autograder").mkdir(exist_ok=True)
    return next(src.glob("*.ipynb")).name


def _plain_vs_hardened(a) -> int:
    """Plain nbgrader's serial autograde vs the hardened grader (1 and 2 workers) and the default
    ``grade autograde`` (hardened + nbgrader's gradebook pass), on the same ``n`` submissions."""
    from autograder import course, grade

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = tmp / "course"
        for name in ("solutions", "assignments"):
            shutil.copytree(ROOT / name / a.assignment, root / name / a.assignment)
        shutil.copytree(ROOT / "autograder", root / "autograder", ignore=shutil.ignore_patterns(*_STATE))
        name = next((root / "solutions" / a.assignment).glob("*.ipynb")).name
        source = nbformat.read(str(root / "solutions" / a.assignment / name), as_version=4)
        release = nbformat.read(str(root / "assignments" / a.assignment / name), as_version=4)
        answers = {c.metadata["nbgrader"]["grade_id"]: _strip(c.source) for c in source.cells
                   if c.metadata.get("nbgrader", {}).get("solution")}
        for c in release.cells:
            if c.metadata.get("nbgrader", {}).get("solution"):
                c.source = answers[c.metadata["nbgrader"]["grade_id"]]
        for i in range(a.n):
            d = tmp / "inbox" / f"s{i:03d}" / a.assignment
            d.mkdir(parents=True)
            nbformat.write(release, str(d / name))
        grade.collect(tmp / "inbox", root)
        os.environ.pop(course.DB_ENV, None)   # the temporary course has its own gradebook
        print(f"isolation: {probe()}")
        print(f"{a.assignment}: {a.n} honest submissions (release + the instructor's answers), {os.cpu_count()} cores")
        rows, scores = [], {}

        def timed(label, fn):
            t = time.perf_counter()
            fn()
            dt = time.perf_counter() - t
            rows.append((label, dt))
            print(f"  {label:<44} {dt:7.1f} s  {60 * a.n / dt:5.1f} submissions/min", flush=True)
            return dt

        plain = timed("plain nbgrader autograde (serial, --unsafe)",
                      lambda: grade.autograde(a.assignment, root=root, unsafe=True))
        scores["plain"] = grade.scores(a.assignment, root)
        for w in (1, 2):
            out = tmp / f"secure{w}"
            timed(f"hardened grader, {w} worker(s)",
                  lambda: scores.__setitem__(w, grade.autograde_secure(
                      a.assignment, root=root, workers=w, gradebook=False, out=out)))
        timed("grade autograde (default: hardened, 2 workers)",
              lambda: grade.autograde(a.assignment, root=root, workers=2))
        scores["default"] = grade.scores(a.assignment, root)
        for w in (1, 2):
            got = {s: r["total"] for s, r in scores[w].items()}
            want = {s: sum(v or 0 for k, v in scores["plain"][s].items() if k in scores[w][s]["scores"]) for s in got}
            assert got == want, f"{w} worker(s): scores {got} differ from plain nbgrader's {want}"
        assert scores["default"] == scores["plain"], "grade autograde's gradebook differs from plain nbgrader's"
        print("ratios (plain nbgrader time / this time, same run):")
        for label, dt in rows[1:]:
            print(f"  {label:<44} {plain / dt:5.2f}x")
        target = plain / rows[2][1]
        print(f"target: hardened 2 workers >= 1.8x plain nbgrader: {target:.2f}x "
              f"{'ok' if target >= 1.8 else 'MISSED'}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=None, help="submissions (default 8; 6 with --vs-nbgrader)")
    p.add_argument("--assignment", default=None, help="tiny | an assignment id (default tiny; "
                   "01_convolution with --vs-nbgrader)")
    p.add_argument("--vs-nbgrader", action="store_true",
                   help="compare with plain nbgrader's serial autograde on the same submissions")
    a = p.parse_args(argv)
    if a.vs_nbgrader:
        a.n, a.assignment = a.n or 6, a.assignment or "01_convolution"
        return _plain_vs_hardened(a)
    a.n, a.assignment = a.n or 8, a.assignment or "tiny"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        name = _course(tmp, a.assignment)
        nb = nbformat.read(str(tmp / "solutions" / a.assignment / name), as_version=4)
        for c in nb.cells:
            c.source = _strip(c.source)
        for i in range(a.n):
            d = tmp / "subs" / f"s{i:03d}" / a.assignment
            d.mkdir(parents=True)
            nbformat.write(nb, str(d / name))
        print(f"isolation: {probe()}")
        totals = {}
        for workers in (1, 2):
            t = time.perf_counter()
            res = grade_batch(a.assignment, root=tmp, submissions=tmp / "subs", workers=workers,
                              limits=Limits(cell_timeout=120, notebook_timeout=600), out=tmp / f"out{workers}")
            dt = time.perf_counter() - t
            totals[workers] = {s: r["scores"] for s, r in res.items()}
            some = next(iter(res.values()))
            print(f"{a.assignment}: {a.n} submissions, {workers} worker(s): {dt:.1f} s, "
                  f"{60 * a.n / dt:.1f} submissions/min (score {some['total']:g}/{some['max_total']:g})")
        assert totals[1] == totals[2], "parallel scores differ from serial ones"
    return 0


if __name__ == "__main__":
    sys.exit(main())
