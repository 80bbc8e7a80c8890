"""``python -m autograder COMMAND`` (``python3 run.py grade COMMAND``): the instructor workflow.

    release [ASSIGNMENT]               regenerate assignments/ from solutions/ (all or one) and
                                       the student edition of cnnlab (assignments/library/)
    publish ASSIGNMENT                 publish an assignment's answers (after its deadline): later
                                       student editions include its library code
    bundle [--out DIR]                 the student bundle: DIR/cnnlab-student/ and its zip (default
                                       autograder/bundle/): released notebooks, student edition,
                                       README and course.py (open the course, check your work)
    collect PATH                       copy PATH (folder or zip, <student>/<assignment>/*.ipynb)
                                       into autograder/submitted/
    autograde ASSIGNMENT [--student S] [--workers N] [--unsafe]
                                       grade submitted notebooks: hardened (student code in a
                                       sandbox, the tests in a separate trusted process), then
                                       scores, autograded notebooks and feedback as nbgrader's;
                                       --unsafe: plain nbgrader (student code and tests in one kernel)
    secure ASSIGNMENT [--workers N] [--student S] [--submissions DIR] [--out DIR] [--no-gradebook]
                                       the hardened grader alone: reports in
                                       autograder/secure_graded/ (see autograder/README.md)
    feedback ASSIGNMENT [--student S]  HTML feedback in autograder/feedback/
    export [--to FILE]                 grades as CSV (default autograder/exports/grades.csv)
    validate PATH [--invert]           run a notebook's tests (--invert: all must fail)

Every command accepts ``--db URL`` (a gradebook other than autograder/gradebook.db, e.g.
``postgresql://user@host/cnnlab``; same as the environment variable CNNLAB_GRADEBOOK_URL).
"""
from __future__ import annotations

import argparse
import sys

from . import grade


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", help="gradebook database URL (default sqlite autograder/gradebook.db)")
    common.add_argument("--root", help=argparse.SUPPRESS)  # course root; tests use a copy
    p = argparse.ArgumentParser(prog="run.py grade", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("release", parents=[common], help="regenerate assignments/ from solutions/")
    s.add_argument("assignment", nargs="?")
    s = sub.add_parser("publish", parents=[common], help="publish an assignment's answers in the student edition")
    s.add_argument("assignment")
    s = sub.add_parser("bundle", parents=[common], help="build the student bundle (folder and zip)")
    s.add_argument("--out", help="output folder (default autograder/bundle)")
    s = sub.add_parser("collect", parents=[common], help="copy submissions into autograder/submitted/")
    s.add_argument("path")
    s = sub.add_parser("feedback", parents=[common])
    s.add_argument("assignment")
    s.add_argument("--student")
    limits = argparse.ArgumentParser(add_help=False)
    limits.add_argument("--workers", type=int, help="parallel graders (default: number of cores)")
    limits.add_argument("--cell-timeout", type=float, default=60.0, help="seconds per cell (default 60)")
    limits.add_argument("--notebook-timeout", type=float, default=600.0, help="seconds per notebook (default 600)")
    limits.add_argument("--memory-mb", type=int, default=4096, help="memory limit of student code (default 4096)")
    s = sub.add_parser("autograde", parents=[common, limits], help="grade submissions (hardened)")
    s.add_argument("assignment")
    s.add_argument("--student")
    s.add_argument("--unsafe", action="store_true",
                   help="plain nbgrader: student code and tests in one kernel (a submission can fake its marks)")
    s = sub.add_parser("secure", parents=[common, limits], help="the hardened grader alone (reports)")
    s.add_argument("assignment")
    s.add_argument("--student")
    s.add_argument("--submissions", help="folder of <student>/<assignment>/ (default autograder/submitted)")
    s.add_argument("--out", help="reports folder (default autograder/secure_graded/<assignment>)")
    s.add_argument("--no-gradebook", action="store_true", help="do not record scores in the gradebook")
    s = sub.add_parser("export", parents=[common], help="grades as CSV")
    s.add_argument("--to")
    s = sub.add_parser("validate", parents=[common], help="run a notebook's tests")
    s.add_argument("path")
    s.add_argument("--invert", action="store_true", help="expect every test to fail")
    return p


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    try:
        if a.command == "release":
            for name in grade.release(a.assignment, a.root, a.db):
                print(f"released {name} -> assignments/{name}/")
            print("student edition of cnnlab -> assignments/library/ (see assignments/library/WITHHELD.json)")
        elif a.command == "publish":
            names = grade.edition.publish(a.assignment, a.root)
            manifest = grade.edition.build(a.root)
            print(f"published: {', '.join(names)}; student edition rebuilt, {len(manifest['withheld'])} answers withheld")
        elif a.command == "bundle":
            from . import bundle
            folder, archive = bundle.build(a.root, a.out)
            print(f"student bundle -> {folder}/ and {archive}")
        elif a.command == "collect":
            for student, assignment in grade.collect(a.path, a.root):
                print(f"collected {student}/{assignment}")
        elif a.command == "autograde":
            limits = {} if a.unsafe else dict(workers=a.workers, cell_timeout=a.cell_timeout,
                                               notebook_timeout=a.notebook_timeout, memory_mb=a.memory_mb)
            print(f"autograded -> {grade.autograde(a.assignment, a.student, a.root, a.db, unsafe=a.unsafe, **limits)}")
        elif a.command == "secure":
            results = grade.autograde_secure(
                a.assignment, a.student, a.root, a.db, workers=a.workers, submissions=a.submissions,
                out=a.out, gradebook=not a.no_gradebook, cell_timeout=a.cell_timeout,
                notebook_timeout=a.notebook_timeout, memory_mb=a.memory_mb)
            for student, r in sorted(results.items()):
                print(f"{student}: {r['total']:g} / {r['max_total']:g}"
                      + "".join(f"\n    - {m}" for m in r["messages"]))
            first = next(iter(results.values()), {})
            print(f"isolation: {', '.join(first.get('isolation', []))}")
        elif a.command == "feedback":
            print(f"feedback -> {grade.feedback(a.assignment, a.student, a.root, a.db)}")
        elif a.command == "export":
            print(f"grades -> {grade.export(a.to, a.root, a.db)}")
        elif a.command == "validate":
            results = grade.validate(a.path, a.invert)
            if not results:
                print("Success! " + ("No test passes." if a.invert else "All tests pass."))
                return 0
            for kind, cells in results.items():
                for cell in cells:
                    print(f"--- {kind} ---\n{cell.get('source', '')[:800]}\n{cell.get('raw_error', '')}")
            return 1
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
