"""Grade a batch of submissions: N parallel trusted runners, one writer for every result.

:func:`grade_batch` plans each (student, notebook) in this process (reading submissions
read-only; malformed ones get a message and zero points without running anything), runs the
plans in up to ``workers`` trusted fork servers (``autograder.secure.runner --serve``: one
fresh child per submission), and then — in this process
only — writes the per-student reports (``report.json`` + ``report.md``), ``grades.csv``,
``results.json`` and, if asked, the nbgrader gradebook. Re-running a batch overwrites these
with the same content (idempotent).
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

from cnnlab import rules as answer_rules

from . import notebook as nbplan
from .sandbox import Limits, probe

__all__ = ["grade_batch", "grade_one", "RunnerServer", "write_reports", "record_in_gradebook", "find_submissions"]

PKG_ROOT = Path(__file__).resolve().parents[2]


def find_submissions(submissions: Path, assignment: str, student: str | None = None) -> dict[str, Path]:
    """``{student: folder}`` for ``submissions/<student>/<assignment>/`` (or ``<student>/``)."""
    out = {}
    if not submissions.is_dir():
        raise ValueError(f"submissions folder {submissions} does not exist")
    for d in sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))):
        if student and d.name != student:
            continue
        out[d.name] = d / assignment if (d / assignment).is_dir() else d
    if student and student not in out:
        raise ValueError(f"no submission of student {student!r} in {submissions}")
    return out


def student_library(root: Path) -> tuple[Path, set[str]]:
    """The student edition of cnnlab that graded code imports (``assignments/library`` of the
    course, else of this repository) and its withheld classes as ``module:qualname``."""
    from ..edition import EDITION_DIR
    for base in (Path(root), PKG_ROOT):
        lib = base / EDITION_DIR
        if (lib / "cnnlab" / "__init__.py").is_file():
            try:
                manifest = json.loads((lib / "WITHHELD.json").read_text())
                withheld = {f"{w['module']}:{w['name']}" for w in manifest["withheld"]}
            except (OSError, ValueError, KeyError, TypeError):
                raise ValueError(f"{lib / 'WITHHELD.json'} is missing or malformed: "
                                 "run `python3 run.py grade release`") from None
            return lib, withheld
    raise ValueError(f"no student edition of cnnlab in {Path(root) / EDITION_DIR}: run `python3 run.py grade release`")


def _full_library_dirs(root: Path) -> set[Path]:
    """Where the full library lives (hidden from student code): the course's and this repository's
    ``lib/``, and wherever ``cnnlab`` is installed from."""
    dirs = {Path(root) / "lib", PKG_ROOT / "lib"}
    try:
        import cnnlab
        pkg = Path(cnnlab.__file__).resolve().parent
        # an installed copy in site-packages: hide the package itself, not site-packages
        dirs.add(pkg if pkg.parent.name in ("site-packages", "dist-packages") else pkg.parent)
    except ImportError:
        pass
    return {d for d in dirs if d.is_dir()}


def _runner_env() -> dict:
    return dict(os.environ, PYTHONPATH=str(PKG_ROOT), MPLBACKEND="Agg", OMP_NUM_THREADS="1",
                OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")


class RunnerServer:
    """One trusted fork server (``python -m autograder.secure.runner --serve``): the libraries
    are imported once, each job runs in a fresh forked child. Used by one thread at a time."""

    def __init__(self):
        self.proc = None

    def _start(self):
        self.proc = subprocess.Popen([sys.executable, "-m", "autograder.secure.runner", "--serve"],
                                     cwd="/", env=_runner_env(), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)

    def _reply(self, deadline: float):
        import select
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
            return None
        line = self.proc.stdout.readline()
        return json.loads(line) if line else {}

    def run(self, job_path: Path, log_path: Path, timeout: float) -> str | None:
        """Run one job; returns an error text, or None when the runner exited normally."""
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        deadline = time.monotonic() + timeout
        try:
            self.proc.stdin.write(json.dumps([str(job_path), str(log_path)]) + "\n")
            self.proc.stdin.flush()
            started = self._reply(time.monotonic() + 120)   # the first job waits for the imports
        except (OSError, ValueError):
            started = {}
        if not started:
            self.close()
            return "grader error: the runner could not be started"
        done = self._reply(deadline)
        if done is None:   # past the time limit: stop the child (the server then reports it)
            try:
                os.killpg(started["pid"], 9)
            except OSError:
                pass
            self._reply(time.monotonic() + 30)
            return "grader stopped: notebook time limit"
        code = done.get("status") if done else None
        if code == 0:
            return None
        try:
            tail = log_path.read_text(errors="replace")[-600:]
        except OSError:
            tail = ""
        if code is None:
            self.close()
        return f"grader error (exit {code}): {tail}"

    def close(self):
        if self.proc is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


def _empty_result(plan_points: dict, messages: list[str], status: str) -> dict:
    return {"status": status, "scores": {g: 0.0 for g in plan_points}, "max_scores": dict(plan_points),
            "cells": [], "messages": messages, "isolation": [], "total": 0.0,
            "max_total": sum(plan_points.values())}


def grade_one(source_path: Path, folder: Path, *, release_path: Path | None = None, limits: Limits | None = None,
              student_files=(), trusted_files=(), hide=(), tmp: Path | None = None,
              server: "RunnerServer | None" = None, library: Path | None = None, withheld=()) -> dict:
    """Grade one submission folder against one source notebook: in a child of ``server`` (a
    :class:`RunnerServer`), else in a new runner subprocess. ``library``: the student edition
    the student's code imports ``cnnlab`` from; ``withheld``: its withheld classes
    (``module:qualname``)."""
    limits = limits or Limits()
    source_nb = nbformat.read(str(source_path), as_version=4)
    release_nb = nbformat.read(str(release_path), as_version=4) if release_path and Path(release_path).is_file() else None
    points = {c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"].get("points", 0) or 0)
              for c in source_nb.cells if c.metadata.get("nbgrader", {}).get("grade")}
    path, msgs = nbplan.find_notebook(folder, source_path.name)
    if path is None:
        return _empty_result(points, msgs, "missing")
    sub_nb, rmsgs = nbplan.read_submission(path)
    msgs += rmsgs
    if sub_nb is None:
        return _empty_result(points, msgs, "malformed")
    plan = nbplan.build_plan(source_nb, sub_nb, release_nb)
    plan["messages"] = msgs + plan["messages"]
    plan["rules"] = {gid: {"forbid": list(r.forbid), "tests": list(r.tests)}
                     for gid, r in answer_rules.load(Path(source_path).parent).items()}
    with tempfile.TemporaryDirectory(prefix="cnnlab-job-", dir=tmp) as jd:
        job_path, res_path = Path(jd) / "job.json", Path(jd) / "result.json"
        job_path.write_text(json.dumps({"plan": plan, "limits": limits.as_dict(), "result": str(res_path),
                                        "student_files": [str(p) for p in student_files],
                                        "trusted_files": [str(p) for p in trusted_files],
                                        "hide": [str(p) for p in hide],
                                        "library": str(library) if library else None,
                                        "withheld": sorted(withheld)}))
        err = None
        if server is None:
            try:
                proc = subprocess.run([sys.executable, "-m", "autograder.secure.runner", str(job_path)],
                                      cwd=jd, env=_runner_env(), capture_output=True, text=True,
                                      timeout=limits.notebook_timeout + 60)
                if proc.returncode != 0:
                    err = f"grader error (exit {proc.returncode}): {proc.stderr[-600:]}"
            except subprocess.TimeoutExpired:
                err = "grader stopped: notebook time limit"
        else:
            err = server.run(job_path, Path(jd) / "runner.log", limits.notebook_timeout + 60)
        try:
            result = json.loads(res_path.read_text())
        except (OSError, json.JSONDecodeError):
            result = _empty_result(points, plan["messages"], "error")
        if err:
            result["messages"].append(err)
    result.setdefault("status", "graded")
    result["notebook"] = source_path.name
    result["total"] = sum(v for v in result["scores"].values() if v is not None)
    result["max_total"] = sum(result["max_scores"].values())
    return result


def _assignment_files(folder: Path) -> list[Path]:
    """Files an assignment needs besides its notebooks (data, images), never notebooks."""
    if not folder.is_dir():
        return []
    return [p for p in sorted(folder.iterdir()) if p.suffix != ".ipynb" and not p.name.startswith(".")
            and p.name not in ("__pycache__",)]


def grade_batch(assignment: str, root=None, submissions=None, workers: int | None = None,
                student: str | None = None, limits: Limits | None = None, out=None,
                gradebook: bool = False, db: str | None = None) -> dict:
    """Grade every submission of ``assignment`` (or one ``student``) with ``workers`` processes.

    ``root``: course root (default the repository); ``submissions``: folder of
    ``<student>/<assignment>/`` (default ``autograder/submitted``); ``out``: where reports go
    (default ``autograder/secure_graded/<assignment>``). Returns ``{student: result}`` where a
    result has ``total``, ``max_total``, ``scores`` ({grade_id: points}), ``messages``,
    ``notebooks`` (per-notebook results)."""
    from ..course import DIRECTORIES, default_root

    root = Path(root).resolve() if root else default_root()
    src_dir = root / DIRECTORIES["source_directory"] / assignment
    sources = sorted(src_dir.glob("*.ipynb"))
    if not sources:
        raise ValueError(f"assignment {assignment!r}: no notebook in {src_dir}")
    rel_dir = root / DIRECTORIES["release_directory"] / assignment
    submissions = Path(submissions).resolve() if submissions else root / DIRECTORIES["submitted_directory"]
    out = Path(out).resolve() if out else root / "autograder" / "secure_graded" / assignment
    workers = max(1, int(workers or os.cpu_count() or 1))
    folders = find_submissions(submissions, assignment, student)
    library, withheld = student_library(root)
    hide = sorted({root / "solutions", root / "autograder", root / "tests", submissions, out,
                   *_full_library_dirs(root)})
    jobs = [(s, src) for s in folders for src in sources]

    local, servers = threading.local(), []

    def run(job):
        s, src = job
        if not hasattr(local, "server"):
            local.server = RunnerServer()
            servers.append(local.server)
        return grade_one(src, folders[s], release_path=rel_dir / src.name, limits=limits,
                         student_files=_assignment_files(rel_dir), trusted_files=_assignment_files(src_dir),
                         hide=hide, server=local.server, library=library, withheld=withheld)

    t0 = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            per_job = list(pool.map(run, jobs))
    finally:
        for server in servers:
            server.close()
    results: dict = {}
    for (s, src), r in zip(jobs, per_job):
        agg = results.setdefault(s, {"student": s, "assignment": assignment, "scores": {}, "max_scores": {},
                                     "messages": [], "notebooks": {}, "total": 0.0, "max_total": 0.0})
        agg["notebooks"][src.name] = r
        agg["scores"].update(r["scores"])
        agg["max_scores"].update(r["max_scores"])
        agg["messages"] += [f"{src.name}: {m}" if len(sources) > 1 else m for m in r["messages"]]
        agg["total"] += r["total"]
        agg["max_total"] += r["max_total"]
        agg["isolation"] = r.get("isolation", [])
    write_reports(results, out)
    if gradebook:
        record_in_gradebook(assignment, results, root, db)
    elapsed = time.monotonic() - t0
    for r in results.values():
        r.setdefault("batch", {"workers": workers, "seconds": round(elapsed, 2)})
    return results


def _report_md(r: dict) -> str:
    lines = [f"# {r['assignment']} — {r['student']}", "",
             f"**Total: {r['total']:g} / {r['max_total']:g}**", "", "| cell | points | max |", "| --- | --- | --- |"]
    for gid, mx in r["max_scores"].items():
        got = r["scores"].get(gid)
        lines.append(f"| {gid} | {'manual' if got is None else f'{got:g}'} | {mx:g} |")
    errors = [(nb, c) for nb, res in r["notebooks"].items() for c in res.get("cells", []) if c.get("error")]
    if errors:
        lines += ["", "## Errors", ""] + [f"- `{c['id']}` ({c['kind']}): {c['error']}" for _, c in errors]
    lines += ["", "## Messages", ""] + ([f"- {m}" for m in r["messages"]] or ["- none"])
    return "\n".join(lines) + "\n"


def write_reports(results: dict, out: Path) -> None:
    """Per student ``<out>/<student>/report.json`` and ``report.md``; ``<out>/grades.csv`` and
    ``<out>/results.json`` for the batch (merged with earlier runs' other students)."""
    out.mkdir(parents=True, exist_ok=True)
    for s, r in results.items():
        d = out / s
        d.mkdir(parents=True, exist_ok=True)
        stable = {k: v for k, v in r.items() if k != "batch"}
        (d / "report.json").write_text(json.dumps(stable, indent=1, sort_keys=True))
        (d / "report.md").write_text(_report_md(r))
    all_path = out / "results.json"
    merged = {}
    if all_path.is_file():
        try:
            merged = json.loads(all_path.read_text())
        except json.JSONDecodeError:
            merged = {}
    merged.update({s: {k: v for k, v in r.items() if k != "batch"} for s, r in results.items()})
    all_path.write_text(json.dumps(merged, indent=1, sort_keys=True))
    cells = sorted({g for r in merged.values() for g in r["max_scores"]})
    with open(out / "grades.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", "total", "max_total", *cells, "messages"])
        for s in sorted(merged):
            r = merged[s]
            w.writerow([s, r["total"], r["max_total"],
                        *["" if r["scores"].get(g) is None else r["scores"][g] for g in cells],
                        " | ".join(r["messages"])])


def record_in_gradebook(assignment: str, results: dict, root: Path, db: str | None = None) -> None:
    """Write auto scores to nbgrader's gradebook (so ``nbgrader export`` shows them).

    Releases the assignment first if the gradebook does not know it. One writer: called only
    from the batch's parent process."""
    from nbgrader.api import MissingEntry

    from .. import grade as nbg
    from ..course import db_url

    if not nbg._in_gradebook(assignment, root, db):
        nbg.release(assignment, root, db)
    import warnings

    with warnings.catch_warnings(), nbg._gradebook(db or db_url(root)) as gb:
        warnings.simplefilter("ignore")  # SQLAlchemy autoflush notices from nbgrader's add_submission
        for s, r in results.items():
            gb.update_or_create_student(s)
            try:
                sub = gb.find_submission(assignment, s)
            except MissingEntry:
                sub = gb.add_submission(assignment, s)
            for nb in sub.notebooks:
                for g in nb.grades:
                    if g.name in r["scores"] and r["scores"][g.name] is not None:
                        g.auto_score = float(r["scores"][g.name])
            gb.db.commit()
