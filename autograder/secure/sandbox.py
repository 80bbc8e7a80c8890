"""Start a student's process with limits, in a fresh directory, without network where possible.

Layers, each used when the machine allows it (:func:`probe` finds out once; the result says
which are active, and the report states it):

- always: own process (own session/process group), ``python -I`` (no script dir, cwd, user site
  or ``PYTHON*`` variables on ``sys.path``), a fresh empty working directory, a scrubbed
  environment (``HOME``/``TMPDIR`` = that directory, one BLAS thread), ``RLIMIT_AS`` (memory),
  ``RLIMIT_CPU`` (CPU seconds for the notebook), ``RLIMIT_FSIZE`` (largest file), no core dumps,
  ``RLIMIT_NPROC`` (processes; not enforced for root);
- ``namespaces`` (root, or unprivileged user namespaces): ``unshare --net --pid --mount``:
  no network (only a down loopback), its own PID namespace (every process it forks dies with it),
  the root filesystem read-only except the working directory, and the course's
  ``solutions/``, ``autograder/``, ``tests/`` and the submissions folder hidden under empty tmpfs;
- ``cgroup``: a pids cgroup (v1 ``/sys/fs/cgroup/pids`` or v2) with ``pids.max`` — the process
  limit that also binds root.
"""
from __future__ import annotations

import functools
import os
import resource
import shlex
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Limits", "probe", "start_agent", "AGENT_SOURCE"]

AGENT_SOURCE = (Path(__file__).with_name("agent.py")).read_text()


@dataclass
class Limits:
    """Per-submission limits. Times in seconds, memory in MiB."""

    cell_timeout: float = 30.0       # wall clock, one cell (student cell or test cell)
    notebook_timeout: float = 300.0  # wall clock, the whole notebook
    cpu_seconds: int = 300           # RLIMIT_CPU of the student's process
    memory_mb: int = 2048            # RLIMIT_AS of the student's process
    max_processes: int = 64          # pids.max (cgroup) / RLIMIT_NPROC
    max_file_mb: int = 64            # RLIMIT_FSIZE

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@functools.lru_cache(maxsize=None)
def probe() -> dict:
    """Which isolation layers work on this machine: ``{"namespaces": str|None, "cgroup": str|None,
    "root": bool}``. Namespaces: ``"root"`` (plain unshare), ``"user"`` (via a user namespace)
    or None; cgroup: the pids cgroup parent directory or None."""
    out = {"root": os.geteuid() == 0, "namespaces": None, "cgroup": None}
    unshare = shutil.which("unshare")
    if unshare and sys.platform.startswith("linux"):
        base = [unshare, "--net", "--pid", "--fork", "--mount", "--kill-child"]
        script = "mount -o remount,bind,ro / && mount -t tmpfs -o size=1m tmpfs /tmp && true"
        for mode, extra in (("root", []), ("user", ["--user", "--map-root-user"])):
            try:
                r = subprocess.run(base[:1] + extra + base[1:] + ["sh", "-c", script],
                                   capture_output=True, timeout=10)
            except (OSError, subprocess.SubprocessError):
                continue
            if r.returncode == 0:
                out["namespaces"] = mode
                break
    for parent in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup"):
        p = Path(parent)
        if not (p / "cgroup.procs").exists():
            continue
        test = p / f"cnnlab-probe-{uuid.uuid4().hex[:8]}"
        try:
            test.mkdir()
            ok = (test / "pids.max").exists()
            if ok:
                (test / "pids.max").write_text("8")
            test.rmdir()
            if ok:
                out["cgroup"] = parent
                break
        except OSError:
            try:
                test.rmdir()
            except OSError:
                pass
    return out


def _preexec(limits: Limits, nproc: bool):
    def fn():
        os.setsid()
        mem = limits.memory_mb << 20
        for res, val in ((resource.RLIMIT_AS, mem), (resource.RLIMIT_CPU, limits.cpu_seconds),
                         (resource.RLIMIT_FSIZE, limits.max_file_mb << 20), (resource.RLIMIT_CORE, 0),
                         *([(resource.RLIMIT_NPROC, limits.max_processes)] if nproc else [])):
            try:
                resource.setrlimit(res, (val, val))
            except (ValueError, OSError):
                pass
    return fn


class AgentProcess:
    """A running student process: ``rfd`` to read its replies, ``wfd`` to send requests."""

    def __init__(self, proc, rfd, wfd, cgroup: Path | None, workdir: Path, layers: list[str]):
        self.proc, self.rfd, self.wfd, self.cgroup, self.workdir = proc, rfd, wfd, cgroup, workdir
        self.layers = layers

    def cpu_seconds(self) -> float:
        """CPU seconds (user + system, threads and waited-for children included) used so far by the
        student's process and everything it started: the processes of its process group and of its
        cgroup, read from ``/proc`` on this (trusted) side, where student code cannot change them."""
        members: set[int] = set()
        if self.cgroup is not None:
            try:
                members = {int(x) for x in (self.cgroup / "cgroup.procs").read_text().split()}
            except OSError:
                pass
        ticks = 0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat") as fh:
                    fields = fh.read().rpartition(")")[2].split()
            except OSError:
                continue     # the process ended meanwhile
            # after the command: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
            # utime stime cutime cstime ...
            if int(fields[2]) == self.proc.pid or int(entry.name) in members:
                ticks += sum(int(f) for f in fields[11:15])
        return ticks / os.sysconf("SC_CLK_TCK")

    def kill(self) -> None:
        """Stop the process and everything it started (process group, PID namespace, cgroup)."""
        for fd in (self.wfd, self.rfd):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.killpg(self.proc.pid, 9)
        except OSError:
            pass
        if self.cgroup is not None:
            procs = self.cgroup / "cgroup.procs"
            for _ in range(50):
                try:
                    pids = [int(x) for x in procs.read_text().split()]
                except OSError:
                    break
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, 9)
                    except OSError:
                        pass
                import time
                time.sleep(0.02)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if self.cgroup is not None:
            try:
                self.cgroup.rmdir()
            except OSError:
                pass


def start_agent(workdir: Path, limits: Limits, hide: list[Path], log_path: Path,
                python: str | None = None, library: Path | None = None) -> AgentProcess:
    """Start the untrusted agent in ``workdir`` with ``limits``; ``hide`` are folders the student
    must not see (hidden under an empty tmpfs when namespaces work). stdout/stderr go to
    ``log_path`` (bounded by ``RLIMIT_FSIZE``). ``library``: a folder put first on the student's
    ``sys.path`` (the student edition of cnnlab, ``assignments/library``)."""
    caps = probe()
    python = python or sys.executable
    req_r, req_w = os.pipe()
    rep_r, rep_w = os.pipe()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir), "TMPDIR": str(workdir),
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "MPLBACKEND": "Agg", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONHASHSEED": "0"}
    layers = ["process", "fresh-dir", "python -I", "rlimits"]
    py_cmd = [python, "-I", "-c", AGENT_SOURCE, str(req_r), str(rep_w)]
    if library is not None:
        py_cmd.append(str(Path(library).resolve()))
        layers.append("student-edition")
    cgroup = None
    if caps["cgroup"]:
        cgroup = Path(caps["cgroup"]) / f"cnnlab-{uuid.uuid4().hex[:12]}"
        try:
            cgroup.mkdir()
            (cgroup / "pids.max").write_text(str(limits.max_processes))
            layers.append("pids-cgroup")
        except OSError:
            cgroup = None
    if caps["namespaces"]:
        steps = [f"mount --bind {shlex.quote(str(workdir))} {shlex.quote(str(workdir))}",
                 "mount -o remount,bind,ro /"]
        dirs = sorted({Path(p).resolve() for p in hide if Path(p).is_dir()})
        dirs = [d for d in dirs if not any(o != d and o in d.parents for o in dirs)]  # outermost only
        steps += [f"mount -t tmpfs -o size=64k,ro tmpfs {shlex.quote(str(d))}" for d in dirs]
        steps += ["(mount -t tmpfs -o size=1m tmpfs /dev/shm 2>/dev/null || true)",
                  "(mount -t proc proc /proc 2>/dev/null || true)",
                 # re-enter the directory: the old cwd still points into the read-only mount
                 f"cd {shlex.quote(str(workdir))}"]
        if cgroup is not None:
            steps.insert(0, f"echo $$ > {shlex.quote(str(cgroup / 'cgroup.procs'))}")
        script = " && ".join(steps) + ' && exec "$@"'
        extra = ["--user", "--map-root-user"] if caps["namespaces"] == "user" else []
        cmd = ["unshare", *extra, "--net", "--pid", "--fork", "--mount", "--kill-child",
               "sh", "-c", script, "sh", *py_cmd]
        layers += ["no-network", "pid-namespace", "read-only-fs", "hidden-course-dirs"]
    else:
        cmd = py_cmd
        if cgroup is not None:  # join the cgroup from the shell before exec
            cmd = ["sh", "-c", f'echo $$ > {shlex.quote(str(cgroup / "cgroup.procs"))} && exec "$@"',
                   "sh", *py_cmd]
    # RLIMIT_NPROC counts every process of the user (and binds neither root nor a user
    # namespace's root): used only where no pids cgroup is available.
    nproc = cgroup is None and not caps["root"]
    if nproc:
        layers.append("RLIMIT_NPROC")
    log = open(log_path, "wb")
    try:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, pass_fds=(req_r, rep_w),
                                preexec_fn=_preexec(limits, nproc), close_fds=True)
    finally:
        log.close()
        os.close(req_r)
        os.close(rep_w)
    return AgentProcess(proc, rep_r, req_w, cgroup, workdir, layers)
