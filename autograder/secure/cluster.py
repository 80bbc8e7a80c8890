"""Grading on a Dask distributed cluster: the executor :func:`batch.grade_batch` uses when it is
given a scheduler (``python3 run.py grade secure ASSIGNMENT --scheduler tcp://HOST:PORT``).

Only *where* a job runs changes: :func:`map_jobs` submits every job — one per submission
and notebook, plain data built by the coordinator (bytes, str, dicts) — as one Dask task of the
job function the local pool runs too (:func:`batch.run_job`: bytes in, the runner's JSON text
out) and returns the texts in order; the coordinator only ``json.loads`` them and alone writes
reports and the gradebook. Before the first task every worker reports its checkout's hash for
the assignment (:func:`check_workers`); workers whose checkout differs are left out and named,
and with none left the batch stops before grading anything. Each task checks the hash again on
its worker (a refusal is an error naming both hashes, never a grade). A worker lost mid-batch
loses nothing: the scheduler gives its tasks to another worker, ``retries=`` covers a task that
raised, and a job has no side effect but temporary files, so running it twice is harmless.

This module knows nothing of grading: the job and check functions come from the caller (imports
flow one way, batch -> cluster). ``distributed`` is imported only when a cluster is used (the
``cluster`` extra). See autograder/README.md, "Grading on a Dask cluster".
"""
from __future__ import annotations

import json
import os
import re
import sys
import time
import uuid
from pathlib import Path

__all__ = ["map_jobs", "check_workers", "connect", "security", "resolve_scheduler", "worker_command",
           "scheduler_command", "TLS_CONFIG"]

PKG_ROOT = Path(__file__).resolve().parents[2]

#: Dask configuration keys read for TLS when no certificates are passed (environment variables
#: ``DASK_DISTRIBUTED__COMM__TLS__CA_FILE``, ``..._TLS__CLIENT__CERT``, ``..._TLS__CLIENT__KEY``).
TLS_CONFIG = ("distributed.comm.tls.ca-file", "distributed.comm.tls.client.cert", "distributed.comm.tls.client.key")

_ADDRESS = re.compile(r"^(tcp|tls)://[^\s/]+:\d+$")


def _distributed():
    try:
        import distributed
    except ImportError:
        raise RuntimeError("grading on a Dask cluster needs dask's `distributed` package: "
                           "pip install -e '.[cluster]'") from None
    return distributed


def resolve_scheduler(scheduler) -> str:
    """The scheduler's address from ``scheduler``: ``tcp://HOST:PORT``, ``tls://HOST:PORT`` or the
    path of a scheduler file (``dask scheduler --scheduler-file``); a clear ValueError otherwise."""
    s = str(scheduler).strip()
    if _ADDRESS.match(s):
        return s
    p = Path(s)
    if p.is_file():
        try:
            address = json.loads(p.read_text())["address"]
        except (OSError, ValueError, KeyError, TypeError):
            raise ValueError(f"--scheduler {s}: not a Dask scheduler file (JSON with an 'address')") from None
        if isinstance(address, str) and _ADDRESS.match(address):
            return address
        raise ValueError(f"--scheduler {s}: the scheduler file's address {address!r} is not tcp:// or tls://")
    raise ValueError(f"--scheduler {s!r}: expected tcp://HOST:PORT, tls://HOST:PORT or a scheduler file "
                     "written by `dask scheduler --scheduler-file`")


def security(tls_ca_file=None, tls_cert=None, tls_key=None):
    """A ``distributed.Security`` requiring TLS with this CA file, certificate and key (all three,
    PEM files), or None when none is given (dask's configuration then applies, see :data:`TLS_CONFIG`)."""
    given = {"--tls-ca-file": tls_ca_file, "--tls-cert": tls_cert, "--tls-key": tls_key}
    if not any(given.values()):
        return None
    missing = [k for k, v in given.items() if not v]
    if missing:
        raise ValueError(f"TLS needs --tls-ca-file, --tls-cert and --tls-key together: {', '.join(missing)} missing")
    for k, v in given.items():
        if not Path(v).is_file():
            raise ValueError(f"{k} {v}: no such file")
    return _distributed().Security(tls_ca_file=str(tls_ca_file), tls_client_cert=str(tls_cert),
                                   tls_client_key=str(tls_key), require_encryption=True)


def _security_for(address: str, sec):
    if sec is not None or not address.startswith("tls://"):
        return sec
    import dask
    _distributed()
    if not all(dask.config.get(k, None) for k in TLS_CONFIG):
        raise ValueError(f"--scheduler {address}: TLS needs a CA file, a certificate and a key: pass --tls-ca-file, "
                         f"--tls-cert and --tls-key, or set dask's {', '.join(TLS_CONFIG)} (e.g. the environment "
                         "variables DASK_DISTRIBUTED__COMM__TLS__CA_FILE, DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT, "
                         "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY)")
    return None   # distributed's Client builds its Security from that configuration


def connect(scheduler, sec=None, timeout: float = 30.0):
    """A ``distributed.Client`` of the scheduler (see :func:`resolve_scheduler`, :func:`security`);
    a RuntimeError naming the address when it cannot be reached within ``timeout`` seconds."""
    distributed = _distributed()
    address = resolve_scheduler(scheduler)
    sec = _security_for(address, sec)
    kwargs = {"security": sec} if sec is not None else {}
    try:
        return distributed.Client(address, timeout=f"{timeout}s", set_as_default=False,
                                  name="cnnlab-coordinator", **kwargs)
    except (OSError, TimeoutError) as exc:
        raise RuntimeError(f"cannot reach the Dask scheduler {address} within {timeout:g} s: {exc}") from None


class _Done:
    """Futures reported as they finish (``distributed`` calls back from its own thread), so the
    coordinator waits with a timeout and needs no default client."""

    def __init__(self):
        import queue
        self.queue = queue.Queue()

    def watch(self, future):
        future.add_done_callback(self.queue.put)
        return future

    def next(self, timeout: float):
        """The next finished future, or None after ``timeout`` seconds."""
        import queue
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None


def _outcome(future):
    """A finished future's value, or the exception that ended it (the value is trusted code's
    return value: str for a job)."""
    if future.status == "finished":
        return future.result()
    if future.status == "cancelled":
        return RuntimeError(f"task {future.key} was cancelled by the scheduler")
    return future.exception()


def check_workers(client, check, assignment: str, expected: dict, wait: float = 120.0) -> tuple[dict, dict]:
    """Run ``check(assignment, expected)`` (:func:`batch.worker_checkout`: the worker's checkout
    hash and a refusal or None) once on every worker of ``client``, as a task pinned to it (in
    its thread pool: a worker's first task imports the grader). Waits up to ``wait`` seconds for
    a first worker and for the answers. Returns ``({address: nthreads}, {address: why refused})``."""
    try:
        client.wait_for_workers(1, timeout=wait)
    except TimeoutError:
        raise RuntimeError(f"the Dask scheduler {client.scheduler.address} has no worker (waited {wait:g} s): "
                           "start some with `python3 run.py grade worker ADDRESS`") from None
    info = client.scheduler_info(n_workers=-1)["workers"]
    token, done = uuid.uuid4().hex[:10], _Done()
    asked = {done.watch(client.submit(check, assignment, expected, key=f"cnnlab-check-{token}-{n}",
                                      workers=[address], allow_other_workers=False, pure=False)): address
             for n, address in enumerate(sorted(info))}
    good, refused, left = {}, {}, set(asked)
    deadline = time.monotonic() + wait
    while left:
        f = done.next(max(0.0, deadline - time.monotonic()))
        if f is None:
            break
        left.discard(f)
        address, rep = asked[f], _outcome(f)
        if isinstance(rep, BaseException):
            refused[address] = (f"cannot check its checkout ({type(rep).__name__}: {rep}); start workers with "
                                "`python3 run.py grade worker ADDRESS` from a course checkout")
        elif not isinstance(rep, dict) or rep.get("refused") or not rep.get("hash"):
            refused[address] = str(rep.get("refused") if isinstance(rep, dict) else rep)
        else:
            good[address] = int(info[address].get("nthreads", 1))
    for f in left:
        refused[asked[f]] = f"did not report its checkout within {wait:g} s"
    client.cancel(list(asked))
    return good, refused


def map_jobs(fn, jobs, scheduler, *, check, assignment: str, expected: dict, security=None, retries: int = 2,
             connect_timeout: float = 30.0, worker_wait: float = 120.0, window: int | None = None):
    """Run ``fn(job)`` for every job of ``jobs`` (an iterable, consumed as tasks finish: at most
    ``window`` are held by the cluster at once, default twice its threads) as Dask tasks on the
    workers whose checkout passes ``check`` (see :func:`check_workers`). Returns ``(results,
    info)``: one result per job in order — ``fn``'s return value, or the exception that ended
    the task after ``retries`` — and ``{"scheduler", "workers" (threads), "worker_addresses",
    "refused"}``. A RuntimeError when no worker may grade, or none is left for ``worker_wait``
    seconds while jobs wait."""
    import dask

    address = resolve_scheduler(scheduler)
    client = connect(address, security, connect_timeout)
    pending: dict = {}
    try:
        good, refused = check_workers(client, check, assignment, expected, worker_wait)
        if not good:
            raise RuntimeError(f"no worker of {address} may grade {assignment}: "
                               + "; ".join(f"{a}: {why}" for a, why in refused.items()))
        restrict = sorted(good) if refused else None   # else any worker: each task checks again
        window = window or max(4, 2 * sum(good.values()))
        token, done = uuid.uuid4().hex[:10], _Done()
        results: dict[int, object] = {}
        it = enumerate(jobs)
        exhausted, idle_since = False, None
        while True:
            while not exhausted and len(pending) < window:
                nxt = next(it, None)
                if nxt is None:
                    exhausted = True
                    break
                i, job = nxt
                # one task is one submission (up to the reader's 200 MiB limit): not a "large graph"
                with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1GiB"}):
                    f = client.submit(fn, job, key=f"cnnlab-grade-{token}-{i:06d}", retries=retries,
                                      workers=restrict, allow_other_workers=False, pure=False)
                pending[done.watch(f)] = i
            if not pending:
                break
            f = done.next(5.0)
            if f is None:   # nothing finished for a while: is any worker that may grade left?
                alive = set(client.scheduler_info(n_workers=-1)["workers"])
                if restrict is not None:
                    alive &= set(restrict)
                if alive:
                    idle_since = None
                elif idle_since is None:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > worker_wait:
                    raise RuntimeError(f"no worker of {address} that may grade {assignment} is left (waited "
                                       f"{worker_wait:g} s); {len(results)} of the jobs were graded")
                continue
            if f not in pending:
                continue
            results[pending.pop(f)] = _outcome(f)
            f.release()
        info = {"scheduler": address, "workers": sum(good.values()), "worker_addresses": sorted(good),
                "refused": refused}
        return [results[i] for i in range(len(results))], info
    finally:
        if pending:
            client.cancel(list(pending))
        client.close()


def _tls_args(tls_ca_file, tls_cert, tls_key) -> list[str]:
    security(tls_ca_file, tls_cert, tls_key)   # the same checks (all three, files exist)
    if not tls_ca_file:
        return []
    return ["--tls-ca-file", str(tls_ca_file), "--tls-cert", str(tls_cert), "--tls-key", str(tls_key)]


def worker_command(scheduler, *, nthreads: int = 1, name: str | None = None, nanny: bool = True,
                   tls_ca_file=None, tls_cert=None, tls_key=None, env: dict | None = None,
                   extra=()) -> tuple[list[str], dict]:
    """``(argv, environment)`` of a grading worker: ``dask worker`` for the scheduler (one process
    of ``nthreads`` threads, each grading one submission at a time in its own fork server), with
    this checkout's code importable (``PYTHONPATH``), BLAS on one thread, ``env`` added (e.g. the
    course root variable) and TLS when certificates are given."""
    if not isinstance(nthreads, int) or nthreads < 1:
        raise ValueError(f"--nthreads must be a positive number of threads, got {nthreads!r}")
    address = resolve_scheduler(scheduler)
    argv = [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "1",
            "--nthreads", str(nthreads), "--no-dashboard", "--nanny" if nanny else "--no-nanny"]
    if name:
        argv += ["--name", name]
    argv += _tls_args(tls_ca_file, tls_cert, tls_key)
    if tls_ca_file or address.startswith("tls://"):
        argv += ["--protocol", "tls"]
    argv += list(extra)
    environ = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   MPLBACKEND="Agg", PYTHONPATH=os.pathsep.join(
                       [str(PKG_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    environ.update(env or {})
    return argv, environ


def scheduler_command(host: str = "0.0.0.0", port: int = 8786, *, scheduler_file=None, tls_ca_file=None,
                      tls_cert=None, tls_key=None, extra=()) -> list[str]:
    """argv of ``dask scheduler`` on ``host:port`` (TLS when certificates are given)."""
    if not isinstance(port, int) or not 0 <= port < 65536:
        raise ValueError(f"--port must be a TCP port (0-65535; 0: any free one), got {port!r}")
    argv = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", host, "--port", str(port),
            "--no-dashboard"]
    if scheduler_file:
        argv += ["--scheduler-file", str(scheduler_file)]
    tls = _tls_args(tls_ca_file, tls_cert, tls_key)
    if tls:
        argv += ["--protocol", "tls", *tls]
    return argv + list(extra)
