"""Throughput of the hardened autograder: submissions per minute with 1 and 2 workers.

    python3 run.py python benchmarks/bench_grading.py [--n 8] [--assignment tiny|01_convolution]

Grades ``n`` honest submissions (the full solution, solution markers stripped) in a temporary
copy of the course, once with 1 worker and once with 2, checks both give the same scores, and
prints submissions/minute. ``tiny`` is the test corpus's assignment (tests/submissions/corpus.py).
"""
from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograder.secure import Limits, grade_batch, probe  # noqa: E402


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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--assignment", default="tiny")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        name = _course(tmp, a.assignment)
        nb = nbformat.read(str(tmp / "solutions" / a.assignment / name), as_version=4)
        for c in nb.cells:
            c.source = "\n".join(l for l in c.source.split("\n") if "BEGIN SOLUTION" not in l and "END SOLUTION" not in l)
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
