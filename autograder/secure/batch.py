"""Grade a batch of submissions: N parallel trusted runners, one writer for every result.

:func:`grade_batch` turns each (student, notebook) into a *job* — plain data built here: the
submission folder's candidate files as ``{name: bytes}``, the limits, and the course checkout's
hash (:func:`checkout_digest`) — and runs every job through one job function,
:func:`run_job` (bytes in, the runner's JSON text out), either on a local pool of threads (each
job in a trusted fork server, ``autograder.secure.runner --serve``: one fresh child per
submission) or, with ``scheduler=``, on a Dask cluster (:mod:`.cluster`; same function, other
executor). The job function checks the checkout hash, writes the bytes into a temporary folder,
plans the submission there (malformed ones get a message and zero points without running
anything) and grades it in its sandbox. Then — in this process only — the per-student reports
(``report.json`` + ``report.md``), ``grades.csv``, ``results.json`` and, if asked, the nbgrader
gradebook are written. Re-running a batch overwrites these with the same content (idempotent).
"""
from __future__ import annotations

import atexit
import contextlib
import csv
import functools
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

import nbformat

from cnnlab import rules as answer_rules

from . import notebook as nbplan
from .sandbox import Limits, probe

__all__ = ["grade_batch", "grade_one", "run_job", "make_job", "checkout_digest", "worker_checkout", "course_root",
           "CheckoutMismatch", "ServerPool", "RunnerServer", "write_reports", "record_in_gradebook",
           "find_submissions", "ROOT_ENV"]

PKG_ROOT = Path(__file__).resolve().parents[2]

#: Environment variable naming the course checkout a grading process (a cluster worker) grades
#: with; default: the checkout this code is installed from (:func:`autograder.course.default_root`).
ROOT_ENV = "CNNLAB_COURSE_ROOT"


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


class ServerPool:
    """Trusted fork servers for concurrent jobs: :meth:`server` lends an idle one (started on
    first use) for the length of one job; :meth:`close` stops them all. Thread-safe."""

    def __init__(self):
        self._idle: list[RunnerServer] = []
        self._all: list[RunnerServer] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def server(self):
        """A :class:`RunnerServer` that no other job uses until this block ends."""
        with self._lock:
            server = self._idle.pop() if self._idle else None
            if server is None:
                server = RunnerServer()
                self._all.append(server)
        try:
            yield server
        finally:
            with self._lock:
                self._idle.append(server)

    def close(self) -> None:
        """Stop every server this pool started (each is started again if used later)."""
        with self._lock:
            servers, self._idle = list(self._all), []
            self._all = []
        for server in servers:
            server.close()


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
    plan["rules"] = {gid: {"forbid": list(r.forbid), "tests": list(r.tests),
                           "names": None if r.names is None else list(r.names)}
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


# -- the course checkout a job is graded with ------------------------------------------------

_SKIP_NAMES = ("__pycache__", ".ipynb_checkpoints")


def course_root() -> Path:
    """The course checkout this process grades with: ``$CNNLAB_COURSE_ROOT`` if set, else the
    checkout this code is installed from. Never sent by a coordinator."""
    from ..course import default_root

    value = os.environ.get(ROOT_ENV, "").strip()
    if not value:
        return default_root()
    root = Path(value).expanduser().resolve()
    if not (root / "solutions").is_dir():
        raise ValueError(f"{ROOT_ENV}={value}: not a course checkout (no solutions/ folder in {root})")
    return root


def _tree_digest(base: Path, python_packages: bool = False) -> str:
    """sha256 of every file under ``base`` (relative path + content; no dot files, caches or
    checkpoints), ``"absent"`` when there is no such folder. ``python_packages``: only ``.py``
    files, descending only into folders that are Python packages (course state such as
    ``autograder/submitted/`` is not code)."""
    if not base.is_dir():
        return "absent"
    h = hashlib.sha256()

    def walk(d: Path):
        for p in sorted(d.iterdir(), key=lambda q: q.name):
            if p.name.startswith(".") or p.name in _SKIP_NAMES or p.suffix == ".pyc":
                continue
            if p.is_dir():
                if not python_packages or (p / "__init__.py").is_file():
                    walk(p)
            elif p.is_file() and (not python_packages or p.suffix == ".py"):
                rel = p.relative_to(base).as_posix().encode("utf-8", "surrogateescape")
                h.update(rel + b"\0" + hashlib.sha256(p.read_bytes()).digest())

    walk(base)
    return h.hexdigest()


def _environment() -> str:
    from importlib import metadata

    def version(dist):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "absent"
    return (f"python {platform.python_version_tuple()[0]}.{platform.python_version_tuple()[1]}, "
            f"numpy {version('numpy')}, torch {version('torch')}, nbformat {version('nbformat')}")


def checkout_digest(root, assignment: str) -> dict:
    """What a job of ``assignment`` is graded with, as hashes: ``{"hash": H, "parts": {...}}``.

    Parts: the instructor's source ``solutions/<assignment>/`` (notebooks, hidden tests,
    ``rules.toml``, data), the release ``assignments/<assignment>/``, the student edition of
    cnnlab, the full library ``cnnlab`` as this process imports it, the autograder's code (the
    ``autograder`` package) and the versions of Python, numpy, torch and nbformat. Paths are
    relative, so checkouts at different places with the same files have the same hash."""
    import cnnlab

    from ..course import DIRECTORIES

    root = Path(root)
    library, _ = student_library(root)
    parts = {
        f"solutions/{assignment}": _tree_digest(root / DIRECTORIES["source_directory"] / assignment),
        f"assignments/{assignment}": _tree_digest(root / DIRECTORIES["release_directory"] / assignment),
        "student edition": _tree_digest(Path(library)),
        "cnnlab": _tree_digest(Path(cnnlab.__file__).resolve().parent),
        "autograder": _tree_digest(Path(__file__).resolve().parents[1], python_packages=True),
        "environment": _environment(),
    }
    return {"hash": hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest(), "parts": parts}


class CheckoutMismatch(RuntimeError):
    """A grading process's course checkout differs from the coordinator's: it refuses the job."""


def _mismatch(mine: dict, expected: dict, root: Path, assignment: str) -> str:
    import socket
    differ = []
    for k in sorted(set(mine["parts"]) | set(expected["parts"])):
        a, b = mine["parts"].get(k), expected["parts"].get(k)
        if a != b:
            differ.append(f"{k} ({a!r} here, {b!r} there)" if k == "environment" else k)
    return (f"checkout refused on {socket.gethostname()}: the course checkout {root} has hash {mine['hash']} for "
            f"assignment {assignment!r}, the coordinator's has {expected['hash']} (differing: "
            f"{', '.join(differ) or 'unknown'}); check out the coordinator's commit here (or point {ROOT_ENV} "
            "at a checkout that has it) and restart this worker")


def worker_checkout(assignment: str, expected: dict | None = None) -> dict:
    """This process's checkout for ``assignment`` (what a cluster worker reports before a batch):
    ``{"host", "root", "hash", "parts", "refused"}`` — ``refused``: None, or the message of
    :class:`CheckoutMismatch` when ``expected`` (the coordinator's :func:`checkout_digest`)
    differs, or why this process cannot grade the assignment at all."""
    import socket
    host = socket.gethostname()
    try:
        root = course_root()
        mine = checkout_digest(root, assignment)
    except (OSError, ValueError) as exc:
        return {"host": host, "hash": None, "refused": f"{host} cannot grade {assignment!r}: {exc}"}
    refused = None
    if expected is not None and mine["hash"] != expected.get("hash"):
        refused = _mismatch(mine, expected, root, assignment)
    return {"host": host, "root": str(root), **mine, "refused": refused}


# -- a job: plain data built by trusted code, graded by run_job --------------------------------

#: The files :func:`notebook.find_notebook` may pick as the submitted notebook (besides the
#: expected name): nothing else of a submission folder is read, so nothing else travels.
_CANDIDATE_SUFFIXES = (".ipynb", ".json", ".txt", "")


def make_job(assignment: str, notebook: str, folder: Path, limits: Limits, checkout: dict, hide=()) -> dict:
    """The job of one (submission folder, source notebook): only plain data — ``files``
    (``{name: bytes}``, the folder's files that could be the notebook), ``oversize``
    (``{name: size}`` of those over the reader's limit, which are refused by size unread),
    ``limits``, the coordinator's ``checkout`` digest and ``hide`` (folders of this machine that
    hold other students' work or results, hidden from the sandbox wherever they exist)."""
    files, oversize, messages = {}, {}, []
    folder = Path(folder)
    if folder.is_dir():
        for p in sorted(folder.iterdir(), key=lambda q: q.name):
            if p.name != notebook and (p.name.startswith(".") or p.suffix.lower() not in _CANDIDATE_SUFFIXES):
                continue
            try:
                if not p.is_file():
                    continue
                size = p.stat().st_size
                if size > nbplan.MAX_BYTES:
                    oversize[p.name] = size
                else:
                    files[p.name] = p.read_bytes()
            except OSError as exc:
                messages.append(f"could not read the submitted file {p.name}: {exc.strerror or exc}")
    return {"assignment": assignment, "notebook": notebook, "files": files, "oversize": oversize,
            "messages": messages, "limits": limits.as_dict(), "checkout": checkout,
            "hide": [str(h) for h in hide]}


def _plain_name(name, what: str) -> str:
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\0" in name or os.sep in name:
        raise ValueError(f"job: {what} {name!r} is not a plain file name")
    return name


def _check_job(job) -> None:
    if not isinstance(job, dict):
        raise ValueError(f"job: expected a dict, got {type(job).__name__}")
    _plain_name(job.get("assignment"), "assignment")
    if not str(job.get("notebook", "")).endswith(".ipynb"):
        raise ValueError(f"job: notebook {job.get('notebook')!r} must name a .ipynb file")
    _plain_name(job["notebook"], "notebook")
    for name, data in dict(job.get("files", {})).items():
        _plain_name(name, "file name")
        if not isinstance(data, bytes):
            raise ValueError(f"job: file {name!r} must be bytes, got {type(data).__name__}")
    for name, size in dict(job.get("oversize", {})).items():
        _plain_name(name, "file name")
        if not isinstance(size, int) or size < 0:
            raise ValueError(f"job: oversize[{name!r}] must be a size in bytes, got {size!r}")
    checkout = job.get("checkout")
    if not isinstance(checkout, dict) or not isinstance(checkout.get("hash"), str):
        raise ValueError("job: checkout must be the coordinator's checkout_digest()")


_SPOOL: Path | None = None
_PROCESS_POOL: ServerPool | None = None
_GLOBAL_LOCK = threading.Lock()


def _spool() -> Path:
    """This process's folder for the submissions its jobs write (one sub-folder per job; hidden
    from every sandbox, so no submission sees another's files)."""
    global _SPOOL
    with _GLOBAL_LOCK:
        if _SPOOL is None or not _SPOOL.is_dir():
            _SPOOL = Path(tempfile.mkdtemp(prefix="cnnlab-spool-"))
            atexit.register(shutil.rmtree, _SPOOL, True)
        return _SPOOL


def _process_pool() -> ServerPool:
    """The fork servers of this process when the caller brings none (a cluster worker's jobs):
    kept for later jobs, stopped when the process exits."""
    global _PROCESS_POOL
    with _GLOBAL_LOCK:
        if _PROCESS_POOL is None:
            _PROCESS_POOL = ServerPool()
            atexit.register(_PROCESS_POOL.close)
        return _PROCESS_POOL


def run_job(job: dict, root=None, pool: ServerPool | None = None) -> str:
    """Grade one job (:func:`make_job`): the job function of every batch, local or on a cluster.

    Checks that this process's course checkout (``root``, default :func:`course_root`: never
    taken from the job) has the job's checkout hash and raises :class:`CheckoutMismatch`
    naming both otherwise; writes the job's bytes into a fresh temporary folder and grades it
    there with :func:`grade_one` in a fork server of ``pool`` (default: this process's). Returns
    the result as JSON text. Idempotent: it writes only temporary files, so a job may run
    again elsewhere (a cluster retries the jobs of a lost worker)."""
    from ..course import DIRECTORIES

    _check_job(job)
    root = Path(root).resolve() if root else course_root()
    assignment, name = job["assignment"], job["notebook"]
    mine = checkout_digest(root, assignment)
    if mine["hash"] != job["checkout"]["hash"]:
        raise CheckoutMismatch(_mismatch(mine, job["checkout"], root, assignment))
    src_dir = root / DIRECTORIES["source_directory"] / assignment
    rel_dir = root / DIRECTORIES["release_directory"] / assignment
    library, withheld = student_library(root)
    spool = _spool()
    hide = sorted({root / "solutions", root / "autograder", root / "tests", spool,
                   *(Path(h) for h in job.get("hide", [])), *_full_library_dirs(root)})
    pool = pool or _process_pool()
    with tempfile.TemporaryDirectory(prefix="job-", dir=spool) as d:
        folder = Path(d)
        for fname, data in job["files"].items():
            (folder / fname).write_bytes(data)
        for fname, size in job.get("oversize", {}).items():
            with open(folder / fname, "wb") as f:
                f.truncate(size)   # sparse: refused by its size, as the original would be
        with pool.server() as server:
            result = grade_one(src_dir / name, folder, release_path=rel_dir / name,
                               limits=Limits(**job["limits"]), student_files=_assignment_files(rel_dir),
                               trusted_files=_assignment_files(src_dir), hide=hide, server=server,
                               library=library, withheld=withheld)
    result["messages"] = list(job.get("messages", [])) + result["messages"]
    return json.dumps(result)


def _map_local(fn, jobs, workers: int) -> list:
    """``fn`` over ``jobs`` (an iterable, consumed as threads free up) on ``workers`` threads;
    one result per job in order, an exception where ``fn`` raised."""
    results: dict[int, object] = {}
    it = enumerate(jobs)
    with ThreadPoolExecutor(max_workers=workers) as ex:
        pending: dict = {}
        exhausted = False
        while True:
            while not exhausted and len(pending) < 2 * workers:
                nxt = next(it, None)
                if nxt is None:
                    exhausted = True
                else:
                    pending[ex.submit(fn, nxt[1])] = nxt[0]
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                i = pending.pop(f)
                results[i] = f.exception() if f.exception() is not None else f.result()
    return [results[i] for i in range(len(results))]


def _parse_result(text) -> dict:
    """A job's JSON text -> its result (only ``json.loads``; anything else is an error)."""
    if not isinstance(text, str):
        raise ValueError(f"a job returned {type(text).__name__}, not JSON text")
    r = json.loads(text)
    if not (isinstance(r, dict) and isinstance(r.get("scores"), dict) and isinstance(r.get("max_scores"), dict)
            and isinstance(r.get("messages"), list)):
        raise ValueError("a job's result is not a grading result (scores, max_scores, messages)")
    return r


def grade_batch(assignment: str, root=None, submissions=None, workers: int | None = None,
                student: str | None = None, limits: Limits | None = None, out=None,
                gradebook: bool = False, db: str | None = None, scheduler: str | None = None,
                security=None, retries: int = 2) -> dict:
    """Grade every submission of ``assignment`` (or one ``student``) with ``workers`` processes,
    or on the Dask cluster of ``scheduler``.

    ``root``: course root (default the repository); ``submissions``: folder of
    ``<student>/<assignment>/`` (default ``autograder/submitted``); ``out``: where reports go
    (default ``autograder/secure_graded/<assignment>``). ``scheduler``: a Dask scheduler's
    address (``tcp://HOST:PORT``, ``tls://HOST:PORT``) or scheduler file: every job runs on its
    workers instead of local threads (same job function, :func:`run_job`; see
    :mod:`autograder.secure.cluster`); ``security``: a ``distributed.Security`` for TLS (default:
    dask's configuration); ``retries``: how often a cluster job that raised is tried again.
    Returns ``{student: result}`` where a result has ``total``, ``max_total``, ``scores``
    ({grade_id: points}), ``messages``, ``notebooks`` (per-notebook results). A job that could
    not be graded (a refused checkout, a lost cluster) leaves its student without a report: the
    others' are written, then a :class:`RuntimeError` names the students and the reasons."""
    from ..course import DIRECTORIES, default_root

    root = Path(root).resolve() if root else default_root()
    src_dir = root / DIRECTORIES["source_directory"] / assignment
    sources = sorted(src_dir.glob("*.ipynb"))
    if not sources:
        raise ValueError(f"assignment {assignment!r}: no notebook in {src_dir}")
    submissions = Path(submissions).resolve() if submissions else root / DIRECTORIES["submitted_directory"]
    out = Path(out).resolve() if out else root / "autograder" / "secure_graded" / assignment
    if scheduler and workers:
        raise ValueError(f"workers={workers} sizes the local pool; with scheduler={scheduler!r} the cluster's "
                         "workers grade (start each with --nthreads N): pass one of them")
    workers = max(1, int(workers or os.cpu_count() or 1))
    limits = limits or Limits()
    folders = find_submissions(submissions, assignment, student)
    checkout = checkout_digest(root, assignment)   # also: the student edition exists
    specs = [(s, src.name) for s in folders for src in sources]
    jobs = (make_job(assignment, name, folders[s], limits, checkout, hide=(submissions, out)) for s, name in specs)

    t0 = time.monotonic()
    if scheduler:
        from . import cluster
        texts, info = cluster.map_jobs(run_job, jobs, scheduler, check=worker_checkout, assignment=assignment,
                                       expected=checkout, security=security, retries=retries)
    else:
        pool = ServerPool()
        try:
            texts = _map_local(functools.partial(run_job, root=root, pool=pool), jobs, workers)
        finally:
            pool.close()
        info = {"workers": workers}
    results: dict = {}
    failed: dict[str, list[str]] = {}
    for (s, name), text in zip(specs, texts):
        try:
            if isinstance(text, BaseException):
                raise text
            r = _parse_result(text)
        except Exception as exc:  # noqa: BLE001  (reported below; the other students are written)
            failed.setdefault(s, []).append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        agg = results.setdefault(s, {"student": s, "assignment": assignment, "scores": {}, "max_scores": {},
                                     "messages": [], "notebooks": {}, "total": 0.0, "max_total": 0.0})
        agg["notebooks"][name] = r
        agg["scores"].update(r["scores"])
        agg["max_scores"].update(r["max_scores"])
        agg["messages"] += [f"{name}: {m}" if len(sources) > 1 else m for m in r["messages"]]
        agg["total"] += r["total"]
        agg["max_total"] += r["max_total"]
        agg["isolation"] = r.get("isolation", [])
    results = {s: r for s, r in results.items() if s not in failed}
    write_reports(results, out)
    if gradebook and results:
        record_in_gradebook(assignment, results, root, db)
    elapsed = time.monotonic() - t0
    for r in results.values():
        r.setdefault("batch", {**info, "seconds": round(elapsed, 2)})
    if failed:
        shown = "; ".join(f"{s}: {' | '.join(m)}" for s, m in list(failed.items())[:5])
        raise RuntimeError(f"{len(failed)} of {len(folders)} submissions of {assignment} could not be graded "
                           f"(no report written for them; the other {len(results)} were): {shown}"
                           + (" ..." if len(failed) > 5 else ""))
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


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename: a
    reader (or a batch killed mid-write) never sees half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_reports(results: dict, out: Path) -> None:
    """Per student ``<out>/<student>/report.json`` and ``report.md``; ``<out>/grades.csv`` and
    ``<out>/results.json`` for the batch (merged with earlier runs' other students).

    Every file is written whole and renamed into place; the merge holds an exclusive lock on
    ``<out>/.lock``, so two batches writing to the same folder at once (two graders, two
    ``--student`` runs) both keep their students."""
    import fcntl
    import io

    out.mkdir(parents=True, exist_ok=True)
    for s, r in results.items():
        d = out / s
        d.mkdir(parents=True, exist_ok=True)
        stable = {k: v for k, v in r.items() if k != "batch"}
        _write_atomic(d / "report.json", json.dumps(stable, indent=1, sort_keys=True))
        _write_atomic(d / "report.md", _report_md(r))
    with open(out / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        all_path = out / "results.json"
        merged = {}
        if all_path.is_file():
            try:
                merged = json.loads(all_path.read_text())
            except json.JSONDecodeError:
                merged = {}
        merged.update({s: {k: v for k, v in r.items() if k != "batch"} for s, r in results.items()})
        _write_atomic(all_path, json.dumps(merged, indent=1, sort_keys=True))
        cells = sorted({g for r in merged.values() for g in r["max_scores"]})
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        w.writerow(["student", "total", "max_total", *cells, "messages"])
        for s in sorted(merged):
            r = merged[s]
            w.writerow([s, r["total"], r["max_total"],
                        *["" if r["scores"].get(g) is None else r["scores"][g] for g in cells],
                        " | ".join(r["messages"])])
        _write_atomic(out / "grades.csv", buf.getvalue())


def record_in_gradebook(assignment: str, results: dict, root: Path, db: str | None = None) -> None:
    """Write auto scores to nbgrader's gradebook (so ``nbgrader export`` shows them).

    Releases the assignment first if the gradebook does not know it. One writer: called only
    from the batch's parent process."""
    from nbgrader.api import MissingEntry

    from ..course import db_url
    from ..gradebook import knows_assignment, open_gradebook
    from ..nbgrader_run import release

    url = db or db_url(root)
    if not knows_assignment(url, assignment):
        release(assignment, root, db)
    import warnings

    with warnings.catch_warnings(), open_gradebook(url) as gb:
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
