#!/usr/bin/env python3
"""CNN Lab's one entry point: set-up, course, tests and benchmarks.

Needs only python3. The first call creates a virtual environment in ``.venv/`` and installs
``cnnlab`` with its development extras (``pip install -e .[dev]``); later calls reuse it and
reinstall only when ``pyproject.toml`` changed.

    python3 run.py lab            # JupyterLab on assignments/, as students get it (student edition of cnnlab)
    python3 run.py lab --instructor   # the whole course with the full library
    python3 run.py check [NOTEBOOK ...]   # the student's check (cnnlab.selfcheck) under the student edition
    python3 run.py test [ARGS]    # the whole test suite (pytest ARGS are passed through)
    python3 run.py bench [ARGS]   # the benchmarks (see benchmarks/README.md)
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


def main(argv: list[str]) -> int:
    cmd, args = (argv[0], argv[1:]) if argv else ("help", [])
    if cmd in ("help", "-h", "--help"):
        print(__doc__)
        return 0
    if cmd not in ("setup", "lab", "check", "test", "bench", "python", "grade"):
        print(f"unknown command {cmd!r}\n{__doc__}", file=sys.stderr)
        return 2
    setup()
    env = _env()
    if cmd == "setup":
        return 0
    student_path = os.pathsep.join(filter(None, [str(ROOT / "assignments" / "library"), env.get("PYTHONPATH")]))
    if cmd == "check":   # what `python3 course.py check` does in the student bundle
        env["PYTHONPATH"] = student_path
        return subprocess.call([str(PY), "-m", "cnnlab.selfcheck", *(args or ["assignments"])], cwd=ROOT, env=env)
    if cmd == "lab":
        env.pop("MPLBACKEND")
        if "--instructor" in args:   # the instructor's preview: the whole course, the full library
            args = [a for a in args if a != "--instructor"]
            folder = ROOT
        else:   # as students get it: the release, and the student edition of cnnlab first on sys.path
            folder = ROOT / "assignments"
            env["PYTHONPATH"] = student_path
        return subprocess.call([str(PY), "-m", "jupyter", "lab", f"--notebook-dir={folder}", *args],
                               cwd=ROOT, env=env)
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
