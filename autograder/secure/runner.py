"""The TRUSTED runner: grades one submission from its plan. Never executes student code.

``python -m autograder.secure.runner JOB.json`` grades one job; ``python -m
autograder.secure.runner --serve`` is the fork server :mod:`autograder.secure.batch` keeps per
worker: it imports the heavy libraries the instructor's cells use once (numpy, torch,
matplotlib, cnnlab) and forks one fresh child per submission, so no state passes from one
submission to the next and no submission pays the imports again. It starts the student's process (:mod:`.sandbox`), sends it the student's
cells, and runs the instructor's test cells *here*, in a namespace where every name the student
defined is plain data or a :class:`~.wire.RemoteObject`. A test cell earns its points iff it
runs here without an exception. The result is rewritten to ``JOB["result"]`` after every cell, so
a runner killed by the batch still leaves the points its finished cells earned.
"""
from __future__ import annotations

import builtins
import contextlib
import io
import json
import keyword
import os
import shutil
import signal
import sys
import tempfile
import time
import types
from pathlib import Path

# The trusted side handles IPython syntax exactly as the agent does (agent.py is import-safe).
from . import deps, sandbox, wire
from .agent import MAGIC, IPythonShim, transform_magics

__all__ = ["run_plan", "main", "serve"]

# Imported once by the fork server (trusted libraries only; a missing one is simply skipped).
PRELOAD = ("numpy", "torch", "torch.nn", "torch.nn.functional", "matplotlib", "matplotlib.pyplot",
           "cnnlab", "cnnlab.layers", "cnnlab.gradcheck", "cnnlab.models", "cnnlab.analysis")

_SIGNALS = {9: "killed (SIGKILL)", 11: "crashed (segmentation fault)", 6: "aborted",
            24: "CPU time limit (SIGXCPU)", 25: "file size limit (SIGXFSZ)", 7: "bus error"}


class CellTimeout(Exception):
    """A cell of the trusted side ran past its wall-clock limit."""


def _alarm(signum, frame):
    raise CellTimeout("time limit reached")


class _Capture(io.StringIO):
    """What a trusted cell prints, at most 20,000 characters (shown in the feedback)."""

    def write(self, text):
        if self.tell() < 20_000:
            super().write(str(text)[: 20_000 - self.tell()])
        return len(text)


def _run_source(src: str, ns: dict) -> str:
    """Execute an instructor cell in the trusted namespace (IPython magics supported); returns
    what it printed."""
    if MAGIC.search(src):
        src = transform_magics(src)
        ns.setdefault("get_ipython", lambda shim=IPythonShim(ns): shim)
    out = _Capture()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            exec(compile(src, "<cell>", "exec"), ns)
    finally:
        _run_source.last_output = out.getvalue()
    return out.getvalue()


_run_source.last_output = ""


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:500]}"


def run_plan(plan: dict, limits: sandbox.Limits, workdir: Path, hide: list[Path], write=None,
             library: Path | None = None) -> dict:
    """Grade one plan; ``write(result)`` is called after every cell. Returns the result dict:
    ``scores`` (grade_id -> points earned, None for manual cells), ``max_scores``, ``cells``
    (per-step status), ``messages``, ``isolation`` (layers active)."""
    write = write or (lambda r: None)
    result = {"scores": {}, "max_scores": dict(plan["points"]), "cells": [],
              "messages": list(plan.get("messages", [])), "isolation": [], "limits": limits.as_dict()}
    for step in plan["steps"]:
        if step["kind"] in ("test", "answer", "manual"):
            result["scores"][step["id"]] = None if step["kind"] == "manual" else 0.0
    write(result)
    log = workdir.parent / (workdir.name + ".log")
    agent = sandbox.start_agent(workdir, limits, hide, log, library=library)
    result["isolation"] = agent.layers
    from cnnlab import cputime
    cputime.use_meter(agent.cpu_seconds)    # tests that time student code read the student's process
    notebook_deadline = time.monotonic() + limits.notebook_timeout
    cell_deadline = [notebook_deadline]
    current = {"id": None}

    def on_dead(exc):
        if isinstance(exc, wire.StudentTimeout):
            why = (f"time limit: cell {current['id']!r} ran over "
                   f"{limits.cell_timeout:g} s (or the notebook over {limits.notebook_timeout:g} s)")
        elif isinstance(exc, wire.ProtocolError):
            why = f"the student's process sent an invalid reply during {current['id']!r} ({exc})"
        else:
            why = None
        agent.kill()
        if why is None:
            rc = agent.proc.returncode
            if rc is not None and rc < 0:
                why = f"the student's process was {_SIGNALS.get(-rc, f'stopped by signal {-rc}')}"
            elif rc is not None and rc >= 128 and rc - 128 in _SIGNALS:
                why = f"the student's process was {_SIGNALS[rc - 128]}"
            else:
                why = f"the student's process exited (code {rc}; os._exit or sys.exit outside a cell?)"
            why += f" during {current['id']!r}"
        result["messages"].append(why + "; cells after it could not use student code")

    conn = wire.AgentConnection(agent.rfd, agent.wfd, lambda: cell_deadline[0], on_dead)
    ns: dict = {"__name__": "__main__", "__builtins__": builtins}
    protected: set[str] = set()
    student_names: set[str] = set()
    reported: set[str] = set()
    old_handler = signal.signal(signal.SIGALRM, _alarm)
    plan_rules = plan.get("rules") or {}
    broke = _static_rule_check(plan, plan_rules)
    if plan_rules:
        try:
            conn.request({"op": "rules", "rules": {g: list(r["forbid"]) for g, r in plan_rules.items()}})
        except (wire.StudentTimeout, wire.StudentProcessDied, wire.ProtocolError):
            pass

    def bind(names):
        if not isinstance(names, list):
            return
        for name in names[:10_000]:
            if (type(name) is not str or not name.isidentifier() or keyword.iskeyword(name)
                    or name.startswith("__") or hasattr(builtins, name)):
                if type(name) is str and hasattr(builtins, name) and name not in reported:
                    reported.add(name)
                    result["messages"].append(f"student code redefined the built-in {name!r}; "
                                              "the tests use the real one")
                continue
            if name in protected and name not in student_names:
                if name not in reported:
                    reported.add(name)
                    result["messages"].append(f"student code rebound {name!r}, which the assignment "
                                              "defines; the tests use the instructor's")
                continue
            try:
                ns[name] = conn.value({"op": "get", "name": name})
                student_names.add(name)
            except wire.StudentProcessDied:
                return
            except Exception:  # noqa: BLE001
                ns.pop(name, None)

    try:
        for index, step in enumerate(plan["steps"]):
            kind, sid = step["kind"], step["id"]
            current["id"] = sid
            now = time.monotonic()
            if now >= notebook_deadline and not conn.dead:
                conn.dead = "notebook time limit"
                agent.kill()
                result["messages"].append(f"time limit: the notebook ran over {limits.notebook_timeout:g} s "
                                          f"before {sid!r}")
            cell_deadline[0] = min(now + limits.cell_timeout, notebook_deadline)
            entry = {"id": sid, "kind": kind, "status": "ok"}
            if kind == "manual":
                entry["status"] = "manual"
            elif kind in ("student", "extra", "answer"):
                if not step["src"].strip():
                    entry["status"] = "empty"
                try:
                    reply, _ = conn.request({"op": "exec", "src": step["src"], "cell": sid})
                    if reply.get("out"):
                        entry["output"] = str(reply["out"])[:20_100]
                    if not reply.get("ok"):
                        entry["status"] = "error"
                        entry["error"] = f"{str(reply.get('etype'))[:80]}: {str(reply.get('msg'))[:500]}"
                        if reply.get("etype") == "MemoryError":
                            result["messages"].append(f"memory limit ({limits.memory_mb} MiB) hit in {sid!r}")
                        elif reply.get("etype") == "SystemExit":
                            result["messages"].append(f"{sid!r} called sys.exit(); the cell was stopped")
                    bind(reply.get("names"))
                    if kind == "answer" and entry["status"] != "error":
                        result["scores"][sid] = step["points"]
                except (wire.StudentTimeout, wire.StudentProcessDied, wire.ProtocolError) as exc:
                    entry["status"], entry["error"] = "error", _error_text(exc)
            else:  # instructor code or a test: trusted side (instructor cells also on the student side)
                if kind == "instructor" and not conn.dead:
                    try:
                        reply, _ = conn.request({"op": "exec", "src": step["src"]})
                    except (wire.StudentTimeout, wire.StudentProcessDied, wire.ProtocolError):
                        pass
                if kind == "instructor" and sid not in deps.needed_instructor_cells(
                        plan["steps"][index:], {k for k, v in ns.items() if isinstance(v, types.ModuleType)}):
                    entry["status"] = "student-side only"   # no later trusted cell can observe it
                    result["cells"].append(entry)
                    write(result)
                    continue
                left = max(cell_deadline[0] - time.monotonic(), 0.05)
                signal.setitimer(signal.ITIMER_REAL, left + 0.5)
                before = {k: id(v) for k, v in ns.items()}
                if kind == "test":
                    entry["visible"] = "ok"   # the verdict of the cell's visible part (cnnlab.check)
                try:
                    _run_source(step["src"], ns)
                    if kind == "test":
                        result["scores"][sid] = step["points"]
                except BaseException as exc:  # noqa: BLE001
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    entry["status"], entry["error"] = "error", _error_text(exc)
                    from cnnlab import check
                    if kind == "test" and check.failed_visibly(step["src"], exc):
                        entry["visible"], entry["visible_error"] = "error", check.error_text(exc)
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    if kind == "test" and _run_source.last_output:
                        entry["output"] = _run_source.last_output
                if kind == "instructor":
                    for k, v in ns.items():
                        if before.get(k) != id(v) and k not in student_names:
                            protected.add(k)
            result["cells"].append(entry)
            write(result)
    finally:
        signal.signal(signal.SIGALRM, old_handler)
        agent.kill()
    _apply_rules(result, plan_rules, broke, conn.broke)
    result["total"] = sum(v for v in result["scores"].values() if v is not None)
    result["max_total"] = sum(result["max_scores"].values())
    write(result)
    return result


def _static_rule_check(plan: dict, plan_rules: dict) -> dict[str, str]:
    """Answer id -> first violation found in its source (cnnlab.rules.check_answers), with the
    import aliases of every code cell of the submission."""
    if not plan_rules:
        return {}
    from cnnlab import rules
    answers = {s["id"]: s["src"] for s in plan["steps"] if s["kind"] in ("student", "answer")}
    return rules.check_answers(answers, {g: r["forbid"] for g, r in plan_rules.items()},
                               (s.get("src", "") for s in plan["steps"]),
                               {g: r.get("names") for g, r in plan_rules.items()})


def _apply_rules(result: dict, plan_rules: dict, static: dict, runtime: dict) -> None:
    """An answer that broke its rules earns nothing in its tests: their scores become 0 and a
    message names the answer, the API and the tests."""
    if not plan_rules:
        return
    from cnnlab import rules
    broke = dict(static)
    if "*" in runtime:
        for gid in plan_rules:
            broke.setdefault(gid, runtime["*"])
    for gid, msg in runtime.items():
        if gid in plan_rules:
            broke.setdefault(gid, msg)
    result["rules"] = {}
    for gid in sorted(broke):
        tests = [t for t in plan_rules[gid]["tests"] if t in result["scores"]]
        for t in tests + ([gid] if gid in result["scores"] else []):
            if result["scores"][t]:
                result["scores"][t] = 0.0
        result["rules"][gid] = broke[gid]
        result["messages"].append(rules.broken_message(gid, broke[gid], tests))
        for entry in result["cells"]:
            if entry["id"] in tests and entry.get("status") == "ok":
                entry["status"] = "error"
                entry["error"] = f"RuleBroken: answer {gid!r} {broke[gid]}"
            if entry["id"] in tests and entry.get("visible") == "ok":
                entry["visible"] = "error"
                entry["visible_error"] = f"RuleBroken: {result['messages'][-1]}"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    job = json.loads(Path(argv[0]).read_text())
    out = Path(job["result"])

    def write(result):
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result))
        os.replace(tmp, out)

    base = Path(tempfile.mkdtemp(prefix="cnnlab-secure-"))
    os.chmod(base, 0o755)
    try:
        workdir = base / "work"
        trusted = base / "trusted"
        workdir.mkdir()
        trusted.mkdir()
        for src in job.get("student_files", []):
            _copy(Path(src), workdir)
        for src in job.get("trusted_files", []):
            _copy(Path(src), trusted)
        os.chdir(trusted)
        sys.path[:] = [p for p in sys.path if p not in ("", ".")]
        limits = sandbox.Limits(**job.get("limits", {}))
        wire.WITHHELD = frozenset(job.get("withheld", []))
        run_plan(job["plan"], limits, workdir, [Path(p) for p in job.get("hide", [])], write,
                 library=Path(job["library"]) if job.get("library") else None)
    finally:
        os.chdir("/")
        shutil.rmtree(base, ignore_errors=True)
    return 0


def _copy(src: Path, dest_dir: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dest_dir / src.name, dirs_exist_ok=True)
    elif src.is_file():
        shutil.copy2(src, dest_dir / src.name)


def serve(rfd: int = 0, wfd: int = 1) -> int:
    """Fork server: read one JSON line ``[job_path, log_path]`` per job from ``rfd``; fork a child
    that runs :func:`main` on it with stdout/stderr in ``log_path``; answer ``{"pid": PID}`` at
    once and ``{"pid": PID, "status": EXIT}`` when it ends (EXIT < 0: killed by that signal)."""
    import importlib
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001  (not installed here: the child imports what it needs)
            pass
    inp = os.fdopen(rfd, "r", encoding="utf-8", closefd=False)
    out = os.fdopen(wfd, "w", encoding="utf-8", closefd=False)
    for line in inp:
        job_path, log_path = json.loads(line)
        pid = os.fork()
        if pid == 0:   # the child: one submission, then exit without running the server's cleanup
            code = 1
            try:
                fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                os.close(fd)
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.close(null)
                for f in {rfd, wfd} - {0, 1, 2}:
                    os.close(f)
                os.setpgid(0, 0)
                code = main([job_path])
            except BaseException:  # noqa: BLE001
                import traceback
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        out.write(json.dumps({"pid": pid}) + "\n")
        out.flush()
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        out.write(json.dumps({"pid": pid, "status": code}) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(serve() if sys.argv[1:] == ["--serve"] else main())
