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
           [--scheduler tcp://HOST:PORT] the hardened grader alone: reports in
                                       autograder/secure_graded/ (see autograder/README.md);
                                       --scheduler: grade on that Dask cluster's workers
                                       (tls://HOST:PORT with --tls-ca-file/--tls-cert/--tls-key)
    scheduler [--host H] [--port P]    a Dask scheduler for `secure --scheduler` (default port 8786)
    worker SCHEDULER [--nthreads N]    a Dask worker that grades with this checkout (every worker
                                       machine: same checkout, same commit; hash checked per job)
    feedback ASSIGNMENT [--student S]  HTML feedback in autograder/feedback/
    export [--to FILE]                 grades as CSV (default autograder/exports/grades.csv)
    validate PATH [--invert]           run a notebook's tests (--invert: all must fail)

Every command accepts ``--db URL`` (a gradebook other than autograder/gradebook.db, e.g.
``postgresql://user@host/cnnlab``; same as the environment variable CNNLAB_GRADEBOOK_URL).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import edition, grade


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
    tls = argparse.ArgumentParser(add_help=False)
    tls.add_argument("--tls-ca-file", help="TLS: the CA certificate(s), PEM (with --tls-cert and --tls-key)")
    tls.add_argument("--tls-cert", help="TLS: this machine's certificate, PEM")
    tls.add_argument("--tls-key", help="TLS: this machine's private key, PEM")
    s = sub.add_parser("secure", parents=[common, limits, tls], help="the hardened grader alone (reports)")
    s.add_argument("assignment")
    s.add_argument("--student")
    s.add_argument("--submissions", help="folder of <student>/<assignment>/ (default autograder/submitted)")
    s.add_argument("--out", help="reports folder (default autograder/secure_graded/<assignment>)")
    s.add_argument("--no-gradebook", action="store_true", help="do not record scores in the gradebook")
    s.add_argument("--scheduler", help="grade on this Dask cluster: tcp://HOST:PORT, tls://HOST:PORT or a "
                   "scheduler file (see autograder/README.md, 'Grading on a Dask cluster')")
    s.add_argument("--retries", type=int, default=2, help="with --scheduler: tries again of a task that failed (default 2)")
    s = sub.add_parser("scheduler", parents=[common, tls], help="run a Dask scheduler for secure --scheduler")
    s.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    s.add_argument("--port", type=int, default=8786, help="port (default 8786; 0: any free port)")
    s.add_argument("--scheduler-file", help="also write the address to this JSON file")
    s.add_argument("--idle-timeout", type=float, help="stop after this many seconds without clients or tasks")
    s = sub.add_parser("worker", parents=[common, tls], help="run a Dask worker that grades with this checkout")
    s.add_argument("scheduler", help="the scheduler: tcp://HOST:PORT, tls://HOST:PORT or a scheduler file")
    s.add_argument("--nthreads", type=int, default=1,
                   help="submissions graded at once (default 1; about one per core)")
    s.add_argument("--name", help="the worker's name (default: chosen by dask)")
    s.add_argument("--no-nanny", action="store_true", help="no nanny process (nothing restarts a lost worker)")
    s.add_argument("--death-timeout", type=float, help="stop when the scheduler is unreachable this many seconds")
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
            names = edition.publish(a.assignment, a.root)
            manifest = edition.build(a.root)
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
                notebook_timeout=a.notebook_timeout, memory_mb=a.memory_mb, scheduler=a.scheduler,
                tls_ca_file=a.tls_ca_file, tls_cert=a.tls_cert, tls_key=a.tls_key, retries=a.retries)
            for student, r in sorted(results.items()):
                print(f"{student}: {r['total']:g} / {r['max_total']:g}"
                      + "".join(f"\n    - {m}" for m in r["messages"]))
            first = next(iter(results.values()), {})
            print(f"isolation: {', '.join(first.get('isolation', []))}")
            batch = first.get("batch", {})
            if a.scheduler and batch:
                print(f"cluster {batch['scheduler']}: {batch['workers']} worker thread(s) graded")
                for address, why in sorted(batch.get("refused", {}).items()):
                    print(f"refused worker {address}: {why}")
        elif a.command in ("scheduler", "worker"):
            return _dask(a)
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


def _dask(a) -> int:
    """``scheduler`` / ``worker``: replace this process by dask's own command (same pid, signals)."""
    import os

    from .secure import batch, cluster

    tls = dict(tls_ca_file=a.tls_ca_file, tls_cert=a.tls_cert, tls_key=a.tls_key)
    if a.command == "scheduler":
        extra = ["--idle-timeout", f"{a.idle_timeout}s"] if a.idle_timeout else []
        argv = cluster.scheduler_command(a.host, a.port, scheduler_file=a.scheduler_file, extra=extra, **tls)
        env = dict(os.environ)
    else:
        env = {batch.ROOT_ENV: str(Path(a.root).resolve())} if a.root else {}
        extra = ["--death-timeout", f"{a.death_timeout}s"] if a.death_timeout else []
        argv, env = cluster.worker_command(a.scheduler, nthreads=a.nthreads, name=a.name, nanny=not a.no_nanny,
                                           env=env, extra=extra, **tls)
        os.environ.update(env)   # this checkout's hashes, as the worker will compute them
        from .course import assignment_ids
        root = batch.course_root()
        print(f"grading worker: course checkout {root}", flush=True)
        for name in assignment_ids(root):
            print(f"  {name}: {batch.checkout_digest(root, name)['hash']}", flush=True)
    os.execve(argv[0], argv, env)
    return 0   # not reached


if __name__ == "__main__":
    sys.exit(main())
