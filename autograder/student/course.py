#!/usr/bin/env python3
"""CNN Lab, the student's copy: open the course and check your work. Needs only python3 (3.11+).

    python3 course.py lab                  # JupyterLab on your assignments
    python3 course.py check [NOTEBOOK ...] # check your work (default: every assignment)

The first call creates a virtual environment in .venv/ (a few minutes: PyTorch, JupyterLab) with
the course library (library/cnnlab, the student edition) on its path; later calls reuse it.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".cnnlab-installed"
USAGE = __doc__


def _fingerprint() -> str:
    h = hashlib.sha256((HERE / "requirements.txt").read_bytes())
    h.update(sys.version.encode())
    return h.hexdigest()


def setup() -> None:
    """Create .venv, install requirements.txt and put library/ on the environment's path."""
    if sys.version_info < (3, 11):
        sys.exit(f"CNN Lab needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not PY.exists():
        print(f"[cnnlab] creating a virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    if STAMP.exists() and STAMP.read_text() == _fingerprint():
        return
    print("[cnnlab] installing the course's packages (first run: a few minutes)", flush=True)
    subprocess.run([str(PY), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "-r", str(HERE / "requirements.txt")], check=True)
    site = subprocess.run([str(PY), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "cnnlab-library.pth").write_text(str(HERE / "library") + "\n")
    subprocess.run([str(PY), "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3",
                    "--display-name", "Python 3 (cnnlab)"], check=True, stdout=subprocess.DEVNULL)
    STAMP.write_text(_fingerprint())


def main(argv: list[str]) -> int:
    cmd, args = (argv[0], argv[1:]) if argv else ("help", [])
    if cmd not in ("lab", "check"):
        print(USAGE)
        return 0 if cmd in ("help", "-h", "--help") else 2
    setup()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(VENV)
    if cmd == "lab":   # the student's profile: no instructor tools, no news prompt, the course's kernel
        env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(filter(None, [str(HERE / "jupyter"), env.get("JUPYTER_CONFIG_PATH")]))
        return subprocess.call([str(PY), "-m", "jupyter", "lab", f"--ServerApp.root_dir={HERE / 'assignments'}",
                                "--MappingKernelManager.default_kernel_name=python3", *args], cwd=HERE, env=env)
    env.setdefault("MPLBACKEND", "Agg")
    paths = [a if a.startswith("-") else str(Path(a).resolve()) for a in args]
    if not any(not a.startswith("-") for a in args):
        paths.append(str(HERE / "assignments"))
    return subprocess.call([str(PY), "-m", "cnnlab.selfcheck", *paths], cwd=HERE, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
