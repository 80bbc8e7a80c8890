#!/usr/bin/env python3
"""CNN Lab's one entry point: set-up, course, tests and benchmarks.

Needs only python3. The first call creates a virtual environment in ``.venv/`` and installs
``cnnlab`` with its development extras (``pip install -e .[dev]``); later calls reuse it and
reinstall only when ``pyproject.toml`` changed.

    python3 run.py lab            # the student's lab: a copy of assignments/ in student_work/, the
                                  # student edition of cnnlab, no instructor tools
    python3 run.py lab --instructor   # the instructor's lab: the whole course, the full library,
                                  # nbgrader's Create Assignment and Formgrader for this course
    python3 run.py check [NOTEBOOK ...]   # the student's check (cnnlab.selfcheck) under the student edition
                                  # (default: student_work/, else assignments/)
    python3 run.py test [ARGS]    # the whole test suite (pytest ARGS are passed through)
    python3 run.py bench [ARGS]   # the benchmarks (see benchmarks/README.md)
    python3 run.py grade COMMAND  # the instructor's commands: release, publish, bundle, collect,
                                  # autograde, secure, scheduler, worker, feedback, export, validate
                                  # (python3 run.py grade --help; autograder/README.md)
    python3 run.py python [ARGS]  # the environment's python, e.g. to run a script
    python3 run.py setup          # only create/update the environment
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".cnnlab-installed"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")


def _fingerprint() -> str:
    h = hashlib.sha256()
    for name in ("pyproject.toml", "run.py"):
        h.update((ROOT / name).read_bytes())
    h.update(sys.version.encode())
    return h.hexdigest()


def setup(quiet: bool = False) -> None:
    """Create ``.venv`` if needed and (re)install the package when pyproject.toml changed."""
    if not PY.exists():
        print(f"[cnnlab] creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    want = _fingerprint()
    if STAMP.exists() and STAMP.read_text() == want:
        return
    print("[cnnlab] installing cnnlab and its dependencies (first run: a few minutes)", flush=True)
    pip = [str(PY), "-m", "pip", "install", "--disable-pip-version-check"]
    if quiet or os.environ.get("CI"):
        pip.append("-q")
    subprocess.run(pip + ["-e", f"{ROOT}[dev]"], check=True, cwd=ROOT)
    # Register the environment's kernel under the name the notebooks use.
    subprocess.run([str(PY), "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3",
                    "--display-name", "Python 3 (cnnlab)"], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    STAMP.write_text(want)


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(VENV)
    env.setdefault("MPLBACKEND", "Agg")
    env.pop("PYTHONHOME", None)
    return env


STUDENT_WORK = ROOT / "student_work"
PROFILES = {"student": ROOT / "autograder" / "student" / "jupyter",
            "instructor": ROOT / "autograder" / "instructor" / "jupyter"}


def student_copy(work: Path = STUDENT_WORK) -> Path:
    """The student's working copy of the release: each assignment's files copied into ``work``
    when missing there (a file already there is the student's and is never overwritten)."""
    import shutil
    for folder in sorted((ROOT / "assignments").iterdir()):
        if not folder.is_dir() or folder.name == "library":
            continue
        for src in folder.iterdir():
            dest = work / folder.name / src.name
            if src.is_file() and not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest)
    return work


def lab_invocation(instructor: bool, env: dict, work: Path = STUDENT_WORK,
                   root: Path = ROOT) -> tuple[list[str], Path, dict]:
    """``(command, working directory, environment)`` of the student's or the instructor's lab.

    Student: JupyterLab on :func:`student_copy`, the student edition first on the kernel's path,
    the student profile (autograder/student/jupyter: no Create Assignment, no Formgrader, no
    course list, no news prompt). Instructor: the whole repository with the full library, run
    from autograder/ so that nbgrader's Formgrader reads this course's nbgrader_config.py.
    ``root``: the course the instructor's lab opens (default this repository; tests use a copy)."""
    env = dict(env)
    env.pop("MPLBACKEND", None)
    profile = PROFILES["instructor" if instructor else "student"]
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(filter(None, [str(profile), env.get("JUPYTER_CONFIG_PATH")]))
    if instructor:
        folder, cwd = root, root / "autograder"
    else:
        folder, cwd = student_copy(work), ROOT
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "assignments" / "library"),
                                                          env.get("PYTHONPATH")]))
    return ([str(PY), "-m", "jupyter", "lab", f"--ServerApp.root_dir={folder}",
             "--MappingKernelManager.default_kernel_name=python3"], cwd, env)


COMMANDS = ("setup", "lab", "check", "test", "bench", "python", "grade")


def main(argv: list[str]) -> int:
    cmd, args = (argv[0], argv[1:]) if argv else ("help", [])
    if cmd in ("help", "-h", "--help"):
        print(__doc__)
        return 0
    if cmd not in COMMANDS:
        print(f"unknown command {cmd!r}\n{__doc__}", file=sys.stderr)
        return 2
    setup()
    env = _env()
    if cmd == "setup":
        return 0
    if cmd == "check":   # what `python3 course.py check` does in the student bundle
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "assignments" / "library"), env.get("PYTHONPATH")]))
        default = STUDENT_WORK if STUDENT_WORK.is_dir() else ROOT / "assignments"
        return subprocess.call([str(PY), "-m", "cnnlab.selfcheck", *(args or [str(default)])], cwd=ROOT, env=env)
    if cmd == "lab":
        command, cwd, env = lab_invocation("--instructor" in args, env)
        return subprocess.call(command + [a for a in args if a != "--instructor"], cwd=cwd, env=env)
    if cmd == "test":
        # Tests run in parallel workers: one BLAS/OpenMP thread each avoids oversubscription
        # (tiny matrix products are ~30x slower with contended OpenBLAS threads).
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, "1")
        if not any(a.startswith("-n") for a in args):
            args = ["-n", os.environ.get("CNNLAB_TEST_WORKERS", "auto"), *args]
        if not any(a.startswith("--dist") for a in args):
            # a file marked xdist_group runs on one worker, so its session fixture is built once
            args = ["--dist", "loadgroup", *args]
        return subprocess.call([str(PY), "-m", "pytest", *args], cwd=ROOT, env=env)
    if cmd == "bench":
        return subprocess.call([str(PY), str(ROOT / "benchmarks" / "run.py"), *args], cwd=ROOT, env=env)
    if cmd == "grade":
        return subprocess.call([str(PY), "-m", "autograder", *args], cwd=ROOT, env=env)
    return subprocess.call([str(PY), *args], cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
