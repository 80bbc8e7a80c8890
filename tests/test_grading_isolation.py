"""Isolation of student code: limits, crashes, fresh directory, no network, hidden course, parallel = serial."""
from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

import pytest

from autograder.secure import sandbox, wire

# Its module/session fixtures are built once: the whole file runs on one xdist worker.
pytestmark = pytest.mark.xdist_group("grading_isolation")

_spec = importlib.util.spec_from_file_location("grading_corpus", Path(__file__).parent / "submissions" / "corpus.py")
corpus = sys.modules.get("grading_corpus") or importlib.util.module_from_spec(_spec)
if "grading_corpus" not in sys.modules:
    sys.modules["grading_corpus"] = corpus
    _spec.loader.exec_module(corpus)

CASES = corpus.LIMITS + ["honest_full", "honest_partial"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    t = time.monotonic()
    res, subs, out = corpus.grade_cases(tmp_path_factory.mktemp("iso"), CASES, workers=2)
    return res, time.monotonic() - t


@pytest.mark.parametrize("name", corpus.LIMITS)
def test_limit_or_crash_keeps_finished_points(graded, name):
    res, _ = graded
    _, total, fragment = corpus.CASES[name]
    r = res[name]
    assert r["total"] == total, (r["scores"], r["messages"])
    if fragment:
        assert any(fragment in m for m in r["messages"]), r["messages"]
    # the batch went on: honest students in the same batch are graded normally
    assert res["honest_full"]["total"] == corpus.MAX and res["honest_partial"]["total"] == 7


def test_nothing_written_outside_and_nothing_left_running(graded):
    res, _ = graded
    if "read-only-fs" in res["write_outside"]["isolation"]:
        assert not Path("/tmp/cnnlab_pwned_by_student").exists()
    else:
        pytest.skip("no mount namespace here: writes outside the directory cannot be blocked")
    out = os.popen("ps -eo args").read()
    assert "time.sleep(300)" not in out and "cnnlab_agent" not in out


def test_parallel_equals_serial(tmp_path, graded):
    res2, _ = graded
    names = ["honest_full", "honest_partial", "os_exit", "memory_bomb"]
    res1, _, _ = corpus.grade_cases(tmp_path, names, workers=1)
    for n in names:
        assert res1[n]["scores"] == res2[n]["scores"], n


def _agent(tmp_path, limits=None, hide=()):
    wd = tmp_path / "work"
    wd.mkdir()
    a = sandbox.start_agent(wd, limits or sandbox.Limits(), list(hide), tmp_path / "log")
    conn = wire.AgentConnection(a.rfd, a.wfd, lambda: time.monotonic() + 30)
    return a, conn


def test_sandbox_environment(tmp_path):
    """Fresh empty cwd, cwd not on sys.path, numpy.py beside it not importable, course hidden, no network."""
    hide = [ROOT / "solutions", ROOT / "autograder"]
    a, conn = _agent(tmp_path, hide=hide)
    try:
        conn.request({"op": "exec", "src": (
            "import os, sys, socket\n"
            "open('numpy.py', 'w').write('FAKE = 1')\n"
            "import numpy\n"
            "fake = hasattr(numpy, 'FAKE')\n"
            "path_has_cwd = any(p in ('', '.', os.getcwd()) for p in sys.path)\n"
            "listing = sorted(os.listdir('.'))\n"
            f"hidden = os.listdir({str(ROOT / 'solutions')!r})\n"
            "try:\n"
            "    socket.create_connection(('8.8.8.8', 53), timeout=2); net = True\n"
            "except OSError:\n"
            "    net = False\n")})
        get = lambda n: conn.value({"op": "get", "name": n})  # noqa: E731
        assert get("fake") is False and get("path_has_cwd") is False
        assert get("listing") == ["numpy.py"]
        assert get("net") is False
        if "hidden-course-dirs" in a.layers:
            assert get("hidden") == []
    finally:
        a.kill()


def test_proxy_round_trip_and_exceptions(tmp_path):
    import numpy as np
    a, conn = _agent(tmp_path)
    try:
        conn.request({"op": "exec", "src": (
            "import numpy as np\n"
            "def f(x, k=2):\n    return np.asarray(x) * k\n"
            "def bad(x):\n    raise ValueError('bad shape ' + str(np.shape(x)))\n"
            "class Layer:\n    def __init__(self):\n        self.w = np.ones((2, 2))\n"
            "    def gen(self):\n        yield from (1, 2, 3)\n")})
        f = conn.value({"op": "get", "name": "f"})
        assert np.array_equal(f(np.arange(3), k=3), [0, 3, 6])
        with pytest.raises(ValueError, match=r"bad shape \(2,\)"):
            conn.value({"op": "get", "name": "bad"})(np.zeros(2))
        layer = conn.value({"op": "get", "name": "Layer"})()
        assert isinstance(layer, wire.RemoteObject) and np.array_equal(layer.w, np.ones((2, 2)))
        assert list(layer.gen()) == [1, 2, 3]
        with pytest.raises(TypeError, match="cannot pass"):
            f(lambda: 0)   # trusted objects cross by value (pickled); a lambda cannot be
    finally:
        a.kill()


def test_isolation_layers_reported():
    caps = sandbox.probe()
    assert set(caps) == {"root", "namespaces", "cgroup"}
    if not caps["root"] and caps["cgroup"] is None:
        pytest.skip("RLIMIT_NPROC only (no pids cgroup)")
