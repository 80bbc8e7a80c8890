"""Smoke test of `python3 run.py lab`: JupyterLab serves assignments/ with nbgrader enabled.

Starts a real server on a free loopback port with a token, asks its REST API for the released
assignment and for nbgrader's server extensions (assignment list, formgrader) and lab extension,
then shuts it down (always killed in `finally`).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbgrader
import pytest

from autograder import course

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str, timeout: float = 10):
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, resp.read().decode()


@contextlib.contextmanager
def running_lab(home: Path, launcher: list[str] | None = None, cwd: Path = ROOT, env: dict | None = None,
                startup: float = 90):
    """Start JupyterLab; yields (base URL, token); always stops it.

    ``launcher``: the command that starts it (default ``python -m jupyter lab --ServerApp.root_dir=
    assignments/``); the server options (loopback, free port, token) are appended."""
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ if env is None else env, JUPYTER_RUNTIME_DIR=str(home / "runtime"), MPLBACKEND="Agg")
    launcher = launcher or [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={ROOT / 'assignments'}"]
    cmd = [*launcher, "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", "--allow-root"]
    log = open(home / "server.log", "w")
    # Its own process group: a launcher that runs JupyterLab as a child (the bundle's `course.py lab`)
    # is stopped together with that child.
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited ({proc.returncode}):\n{(home / 'server.log').read_text()}")
            try:
                if _get(f"{base}/api/status", token, timeout=2)[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"jupyter lab did not answer within {startup:g} s:\n{(home / 'server.log').read_text()}")
            time.sleep(0.5)
        yield base, token
    finally:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait(timeout=15)
        deadline = time.monotonic() + 15       # the launcher's children (JupyterLab itself) too
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        _signal_group(proc, signal.SIGKILL)
        log.close()


def _signal_group(proc, sig) -> None:
    """Send ``sig`` to the process group ``proc`` leads (gone already: nothing to do)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def test_lab_serves_assignments_with_nbgrader(tmp_path):
    # One test, one server (a shared fixture would start a server on every xdist worker).
    with running_lab(tmp_path) as (base, token):
        released = course.assignment_ids(ROOT)
        status, body = _get(f"{base}/api/contents", token)
        assert status == 200
        assert released and set(released) <= {item["name"] for item in json.loads(body)["content"]}
        for assignment in released:
            status, body = _get(f"{base}/api/contents/{assignment}", token)
            names = {item["name"] for item in json.loads(body)["content"]}
            expected = {p.name for p in (ROOT / "assignments" / assignment).glob("*.ipynb")}
            assert expected and expected <= names

        with pytest.raises(urllib.error.HTTPError) as err:
            _get(f"{base}/api/contents", "wrong-token")
        assert err.value.code == 403

        # assignment_list / course_list server extensions answer the lab extension's version handshake.
        status, body = _get(f"{base}/nbgrader_version?version={nbgrader.__version__}", token)
        assert status == 200 and json.loads(body)["success"] is True
        # formgrader server extension.
        status, _ = _get(f"{base}/formgrader", token, timeout=30)
        assert status == 200
        # The nbgrader lab extension (menus, validate button, formgrader panel) is in the page config.
        status, page = _get(f"{base}/lab", token)
        match = re.search(r'<script id="jupyter-config-data"[^>]*>(.*?)</script>', page, re.S)
        assert match, "no page config in /lab"
        config = json.loads(match.group(1))
        assert "@jupyter/nbgrader" in {ext["name"] for ext in config["federated_extensions"]}
        assert not any(d.startswith("@jupyter/nbgrader") for d in config.get("disabledExtensions", []))
