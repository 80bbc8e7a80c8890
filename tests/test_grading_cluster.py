"""Grading on a real Dask cluster (autograder.secure.cluster): a scheduler and two workers started
here as separate processes on loopback, exactly as an instructor starts them
(``python -m autograder scheduler`` / ``worker``), grade a class — the tiny corpus's honest,
adversarial, tampered, malformed and crashing submissions, and two 01_convolution submissions
through the command line — while one worker is SIGKILLed mid-batch. Every student's scores must
equal a serial run's (``workers=1``, no scheduler: the independent oracle) and the corpus's known
totals. A worker whose checkout differs (its course root points at a modified copy) refuses.

Everything runs once, in one module fixture that starts the processes, grades, stops every process
it started (also on failure) and checks that none is left; the tests then check what it recorded.
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

# Its module fixture starts a cluster once: the whole file runs on one xdist worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cluster")]

psutil = pytest.importorskip("psutil")
distributed = pytest.importorskip("distributed")

from autograder.secure import Limits, batch, cluster  # noqa: E402

_spec = importlib.util.spec_from_file_location("grading_corpus", Path(__file__).parent / "submissions" / "corpus.py")
corpus = sys.modules.get("grading_corpus") or importlib.util.module_from_spec(_spec)
if "grading_corpus" not in sys.modules:
    sys.modules["grading_corpus"] = corpus
    _spec.loader.exec_module(corpus)

ROOT = Path(__file__).resolve().parents[1]
CONV = "01_convolution"
TINY = ["honest_full", "honest_partial", "patch_allclose", "redefine_helper", "numpy_beside", "edit_test",
        "bad_json", "binary_file", "wrong_name", "os_exit", "infinite_loop"]
CONV_CLASS = ("conv_full", "conv_half")
STEP = 180   # seconds: the bound of every single wait below


def _hashes(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _strip(source: str) -> str:
    return "\n".join(l for l in source.split("\n") if "BEGIN SOLUTION" not in l and "END SOLUTION" not in l)


def _conv_class(root: Path, subs: Path) -> tuple[float, float]:
    """Two 01_convolution submissions (the release with all or the first half of the answers);
    returns the full marks of the autograded cells and the points of the half's tests."""
    name = next((root / "solutions" / CONV).glob("*.ipynb")).name
    source = nbformat.read(str(root / "solutions" / CONV / name), as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"]: _strip(c.source) for c in source.cells
               if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"}
    half = set(list(answers)[: len(answers) // 2])   # the first answers: later ones build on them
    for student, fill in zip(CONV_CLASS, (set(answers), half)):
        nb = nbformat.read(str(root / "assignments" / CONV / name), as_version=4)
        for c in nb.cells:
            gid = c.metadata.get("nbgrader", {}).get("grade_id")
            if c.metadata.get("nbgrader", {}).get("solution") and gid in fill:
                c.source = answers[gid]
        d = subs / student / CONV
        d.mkdir(parents=True)
        nbformat.write(nb, str(d / name))
    points = {c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"].get("points", 0) or 0)
              for c in source.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")}
    return sum(points.values()), sum(points[f"test_{g}"] for g in half)


def _wait(what: str, cond, timeout: float = STEP, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")


class Processes:
    """Every process this module starts, with its descendants: all are stopped by :meth:`stop`."""

    def __init__(self, logs: Path):
        self.logs, self.procs, self.seen = logs, [], {}
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, argv: list[str], env=None) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")
        p = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        log.close()
        self.procs.append((name, p))
        return p

    def remember(self):
        """Record the descendants of every started process (they may outlive a killed parent)."""
        for _, p in self.procs:
            try:
                for c in psutil.Process(p.pid).children(recursive=True):
                    self.seen[c.pid] = c
            except psutil.NoSuchProcess:
                pass

    def kill(self, p: subprocess.Popen):
        """SIGKILL ``p`` and then each of its descendants, by pid."""
        try:
            kids = psutil.Process(p.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            kids = []
        p.send_signal(signal.SIGKILL)
        p.wait(30)
        for c in kids:
            self.seen[c.pid] = c
            try:
                c.kill()
            except psutil.NoSuchProcess:
                pass

    def stop(self, p: subprocess.Popen):
        """SIGTERM ``p`` (dask closes cleanly), SIGKILL it after 30 s."""
        self.remember()
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(30)

    def stop_all(self) -> list[str]:
        """Stop everything started here (workers first); returns what was still alive after 30 s."""
        for _, p in reversed(self.procs):
            self.stop(p)
        def running():   # is_running() compares creation times: a reused pid is not ours
            out = []
            for c in self.seen.values():
                try:
                    if c.is_running() and c.status() != psutil.STATUS_ZOMBIE:
                        out.append(c)
                except psutil.NoSuchProcess:
                    pass
            return out
        deadline = time.monotonic() + 30
        while running() and time.monotonic() < deadline:
            time.sleep(0.5)
        alive = []
        for c in running():
            try:
                alive.append(" ".join(c.cmdline())[:200])
                c.kill()
            except psutil.NoSuchProcess:
                pass
        return alive + [name for name, p in self.procs if p.poll() is None]

    def log(self, name: str) -> str:
        try:
            return (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""


class Stages:
    """Seconds per stage of the fixture (printed: where the time goes)."""

    def __init__(self):
        self.t, self.times = time.monotonic(), {}

    def __call__(self, name: str):
        now = time.monotonic()
        self.times[name], self.t = round(now - self.t, 1), now


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "autograder", *args]


def _workers(client) -> dict:
    """{pid: address} of the scheduler's workers."""
    return {pid: a for a, pid in client.run(os.getpid).items()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster")
    course = tmp / "course"            # the coordinator's checkout
    corpus.make_course(course)
    for d in ("solutions", "assignments"):
        shutil.copytree(ROOT / d / CONV, course / d / CONV)
    worker_root = tmp / "worker-checkout"   # the workers' checkout: a copy, same files
    shutil.copytree(course, worker_root)
    bad_root = tmp / "modified-checkout"    # one point more for test_add: must be refused
    shutil.copytree(course, bad_root)
    nb = nbformat.read(str(bad_root / "solutions" / "tiny" / "tiny.ipynb"), as_version=4)
    next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_add").metadata["nbgrader"]["points"] = 3
    nbformat.write(nb, str(bad_root / "solutions" / "tiny" / "tiny.ipynb"))
    subs_tiny, subs_conv = tmp / "subs-tiny", tmp / "subs-conv"
    corpus.write_cases(subs_tiny, TINY)
    conv_max, conv_half = _conv_class(course, subs_conv)
    before = {"subs": _hashes(subs_tiny) | _hashes(subs_conv), "worker": _hashes(worker_root)}
    rec = {"tmp": tmp, "course": course, "conv_max": conv_max, "conv_half": conv_half, "expected": batch.checkout_digest(course, "tiny"),
           "bad": batch.checkout_digest(bad_root, "tiny"), "worker_digest": batch.checkout_digest(worker_root, "tiny")}
    small = corpus.small_limits()
    stage = Stages()
    stage("corpora")

    # the oracle: serial, local, no scheduler
    rec["serial_tiny"] = batch.grade_batch("tiny", root=course, submissions=subs_tiny, workers=1, limits=small,
                                           out=tmp / "serial-tiny")
    stage("serial tiny")
    from autograder import grade
    rec["serial_conv"] = grade.autograde_secure(CONV, root=course, workers=1, submissions=subs_conv, gradebook=False,
                                                out=tmp / "serial-conv")
    stage("serial 01_convolution")

    procs = Processes(tmp / "logs")
    sched_file = tmp / "scheduler.json"
    env = dict(os.environ)
    env.pop(batch.ROOT_ENV, None)
    client = None
    try:
        procs.start("scheduler", _cli("scheduler", "--host", "127.0.0.1", "--port", "0", "--scheduler-file",
                                      str(sched_file), "--idle-timeout", "900"), env)
        _wait("the scheduler file", sched_file.is_file)
        address = cluster.resolve_scheduler(sched_file)
        rec["address"] = address

        def worker(name, root):
            return procs.start(name, _cli("worker", address, "--nthreads", "1", "--no-nanny", "--death-timeout", "60",
                                          "--root", str(root)), env)

        a, b = worker("worker-a", worker_root), worker("worker-b", worker_root)
        client = distributed.Client(address, timeout="60s", set_as_default=False)
        client.wait_for_workers(2, timeout=STEP)
        pids = _workers(client)
        assert set(pids) == {a.pid, b.pid}, (pids, a.pid, b.pid)   # `grade worker` execs dask's worker
        stage("cluster start")

        # 1. the tiny corpus on the cluster; worker b is SIGKILLed once it grades a submission
        box = {}

        def run_batch():
            try:
                box["res"] = batch.grade_batch("tiny", root=course, submissions=subs_tiny, limits=small,
                                               out=tmp / "cluster-tiny", scheduler=address)
            except BaseException as exc:  # noqa: BLE001  (re-raised below)
                box["exc"] = exc

        t = threading.Thread(target=run_batch, daemon=True)
        t0 = time.monotonic()
        t.start()

        def grading_on_b():   # b -> its fork server -> the child grading one submission
            procs.remember()
            try:
                return len(psutil.Process(b.pid).children(recursive=True)) >= 2
            except psutil.NoSuchProcess:
                return False
        _wait("worker b to grade a submission", lambda: grading_on_b() or not t.is_alive())
        rec["killed_while_grading"] = t.is_alive() and grading_on_b()
        procs.kill(b)
        rec["killed_after"] = time.monotonic() - t0
        b2 = worker("worker-b2", worker_root)   # a replacement joins mid-batch
        t.join(2 * STEP)
        assert not t.is_alive(), "the cluster batch did not finish"
        if "exc" in box:
            raise box["exc"]
        rec["cluster_tiny"] = box["res"]
        stage("cluster tiny (kill)")
        _wait("the replacement worker", lambda: b2.pid in _workers(client))

        # 2. the 01_convolution class through the command line, exactly as an instructor runs it
        cli = subprocess.run(_cli("secure", CONV, "--root", str(course), "--scheduler", address, "--submissions",
                                  str(subs_conv), "--out", str(tmp / "cluster-conv"), "--no-gradebook"),
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=2 * STEP)
        rec["cli"] = cli
        rec["cluster_conv"] = json.loads((tmp / "cluster-conv" / "results.json").read_text()) if cli.returncode == 0 else None
        stage("cluster 01_convolution (CLI)")

        # 3. a worker with a modified checkout refuses: a job sent to it, then a batch leaves it out
        c = worker("worker-bad", bad_root)
        _wait("the modified worker", lambda: c.pid in _workers(client))
        bad_addr = _workers(client)[c.pid]
        job = batch.make_job("tiny", "tiny.ipynb", subs_tiny / "honest_full" / "tiny", small, rec["expected"])
        rec["job"] = job
        f = client.submit(batch.run_job, job, workers=[_workers(client)[a.pid]], allow_other_workers=False, pure=False)
        rec["text"] = f.result(timeout=STEP)   # what a task returns: the runner's JSON, as text
        f.release()
        f = client.submit(batch.run_job, job, workers=[bad_addr], allow_other_workers=False, pure=False)
        rec["refusal"] = f.exception(timeout=STEP)
        f.release()
        three = ["honest_full", "bad_json"]
        subs3 = tmp / "subs-three"
        corpus.write_cases(subs3, three)
        rec["with_bad"] = batch.grade_batch("tiny", root=course, submissions=subs3, limits=small,
                                            out=tmp / "with-bad", scheduler=address)
        rec["bad_addr"] = bad_addr
        stage("modified worker")

        # 4. only the modified worker left: the batch stops before grading anything
        procs.stop(a)
        procs.stop(b2)
        _wait("only the modified worker", lambda: set(_workers(client)) == {c.pid})
        try:
            batch.grade_batch("tiny", root=course, submissions=subs3, limits=small, out=tmp / "only-bad",
                              scheduler=address)
            rec["only_bad"] = None
        except RuntimeError as exc:
            rec["only_bad"] = str(exc)
        stage("only the modified worker")
    except BaseException:
        for name, _ in procs.procs:
            print(f"--- {name} ---\n{procs.log(name)}")
        raise
    finally:
        if client is not None:
            client.close()
        rec["left_running"] = procs.stop_all()
        rec["address_in_use"] = [p.info["pid"] for p in psutil.process_iter(["pid", "cmdline"])
                                 if rec.get("address") and rec["address"] in " ".join(p.info["cmdline"] or [])]
        stage("stop")
    print(f"cluster test stages (s): {stage.times}; worker b killed {rec.get('killed_after', 0):.0f} s into its batch")
    rec["after"] = {"subs": _hashes(subs_tiny) | _hashes(subs_conv), "worker": _hashes(worker_root)}
    rec["before"] = before
    return rec


def _strip_batch(res: dict) -> dict:
    return {s: {k: v for k, v in r.items() if k != "batch"} for s, r in res.items()}


def test_cluster_scores_equal_serial_and_the_known_totals(runs):
    serial, got = runs["serial_tiny"], runs["cluster_tiny"]
    assert sorted(got) == sorted(serial) == sorted(TINY)
    for name in TINY:
        assert serial[name]["total"] == corpus.CASES[name][1], (name, serial[name]["messages"])
        assert got[name]["scores"] == serial[name]["scores"], name
        assert got[name]["total"] == corpus.CASES[name][1], (name, got[name]["messages"])
        assert got[name]["messages"] == serial[name]["messages"], name
        fragment = corpus.CASES[name][2]
        if fragment:
            assert any(fragment in m for m in got[name]["messages"]), (name, got[name]["messages"])
    # adversarial submissions earn nothing they should not, the honest ones everything
    assert got["patch_allclose"]["scores"]["test_relu"] == 0 and got["honest_full"]["total"] == corpus.MAX
    assert got["honest_full"]["batch"]["scheduler"] == runs["address"]


def test_a_worker_killed_mid_batch_loses_nothing(runs):
    assert runs["killed_while_grading"], "worker b was not grading when it was killed"
    got = runs["cluster_tiny"]
    assert all(got[n]["notebooks"]["tiny.ipynb"]["status"] != "error" for n in TINY)
    assert not any("grader error" in m for n in TINY for m in got[n]["messages"])


def test_reports_written_by_the_coordinator_only(runs):
    tmp = runs["tmp"]
    serial = json.loads((tmp / "serial-tiny" / "results.json").read_text())
    cluster_ = json.loads((tmp / "cluster-tiny" / "results.json").read_text())
    assert cluster_ == serial == _strip_batch(runs["serial_tiny"])   # same files, byte for byte content
    assert (tmp / "cluster-tiny" / "grades.csv").read_text() == (tmp / "serial-tiny" / "grades.csv").read_text()
    assert runs["after"]["worker"] == runs["before"]["worker"], "a worker wrote into its checkout"
    assert runs["after"]["subs"] == runs["before"]["subs"], "a submission was modified"


def test_cli_grades_a_class_on_the_cluster(runs):
    cli = runs["cli"]
    assert cli.returncode == 0, cli.stdout[-2000:] + cli.stderr[-2000:]
    assert f"cluster {runs['address']}" in cli.stdout
    got, serial = runs["cluster_conv"], runs["serial_conv"]
    assert sorted(got) == sorted(CONV_CLASS)
    for s in CONV_CLASS:
        assert got[s]["scores"] == serial[s]["scores"], s
    assert got["conv_full"]["total"] == runs["conv_max"] > 0
    assert 0 < got["conv_half"]["total"] == runs["conv_half"] < runs["conv_max"]


def test_a_worker_with_another_checkout_refuses(runs):
    expected, bad = runs["expected"], runs["bad"]
    assert runs["worker_digest"] == expected   # a copy elsewhere has the same hash
    assert bad["hash"] != expected["hash"]
    assert [k for k in bad["parts"] if bad["parts"][k] != expected["parts"][k]] == ["solutions/tiny"]
    exc = runs["refusal"]
    assert isinstance(exc, batch.CheckoutMismatch), repr(exc)
    assert expected["hash"] in str(exc) and bad["hash"] in str(exc) and "solutions/tiny" in str(exc)
    # a batch leaves it out, names it, and grades as the serial run did
    with_bad = runs["with_bad"]
    info = with_bad["honest_full"]["batch"]
    assert runs["bad_addr"] in info["refused"] and bad["hash"] in info["refused"][runs["bad_addr"]]
    assert runs["bad_addr"] not in info["worker_addresses"]
    for s, r in with_bad.items():
        assert r["scores"] == runs["serial_tiny"][s]["scores"], s
    # with no other worker, nothing is graded and the error names both hashes
    msg = runs["only_bad"]
    assert msg and "may grade tiny" in msg and expected["hash"] in msg and bad["hash"] in msg, msg
    assert not (runs["tmp"] / "only-bad").exists()


def test_everything_started_is_stopped(runs):
    assert runs["left_running"] == []
    assert runs["address_in_use"] == []


def test_jobs_are_plain_data_and_results_json_text(runs):
    """Task arguments hold no object a pickle could rebuild: only dicts, lists, str, bytes, numbers."""
    class NoGlobals(pickle.Unpickler):
        def find_class(self, module, name):
            raise pickle.UnpicklingError(f"{module}.{name}")
    job = runs["job"]
    assert NoGlobals(io.BytesIO(pickle.dumps(job))).load() == job
    assert set(job["files"]) == {"tiny.ipynb"} and isinstance(job["files"]["tiny.ipynb"], bytes)
    assert isinstance(runs["text"], str)
    assert json.loads(runs["text"])["scores"] == runs["serial_tiny"]["honest_full"]["scores"]


# -- clear errors (no cluster needed) -------------------------------------------------------------

def test_scheduler_and_tls_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="--scheduler 'localhost:8786': expected tcp://HOST:PORT"):
        cluster.resolve_scheduler("localhost:8786")
    (tmp_path / "s.json").write_text("{}")
    with pytest.raises(ValueError, match="not a Dask scheduler file"):
        cluster.resolve_scheduler(tmp_path / "s.json")
    (tmp_path / "s.json").write_text(json.dumps({"address": "tcp://10.0.0.1:8786"}))
    assert cluster.resolve_scheduler(tmp_path / "s.json") == "tcp://10.0.0.1:8786"
    with pytest.raises(ValueError, match="--tls-cert, --tls-key missing"):
        cluster.security(tls_ca_file=tmp_path / "s.json")
    with pytest.raises(ValueError, match="DASK_DISTRIBUTED__COMM__TLS__CA_FILE"):
        cluster.connect("tls://127.0.0.1:1")
    with pytest.raises(RuntimeError, match="cannot reach the Dask scheduler tcp://127.0.0.1:1"):
        cluster.connect("tcp://127.0.0.1:1", timeout=2)
    corpus.make_course(tmp_path)
    (tmp_path / "subs").mkdir()
    with pytest.raises(ValueError, match="workers=2 sizes the local pool"):
        batch.grade_batch("tiny", root=tmp_path, submissions=tmp_path / "subs", workers=2,
                          scheduler="tcp://127.0.0.1:1")


def test_a_job_is_checked_before_anything_is_written(tmp_path):
    corpus.make_course(tmp_path)
    job = batch.make_job("tiny", "tiny.ipynb", tmp_path, Limits(), batch.checkout_digest(tmp_path, "tiny"))
    with pytest.raises(ValueError, match=r"job: file name '\.\./evil' is not a plain file name"):
        batch.run_job(dict(job, files={"../evil": b"x"}), root=tmp_path)
    with pytest.raises(ValueError, match="job: file 'tiny.ipynb' must be bytes"):
        batch.run_job(dict(job, files={"tiny.ipynb": "text"}), root=tmp_path)
    with pytest.raises(batch.CheckoutMismatch, match="has hash .* the coordinator's has 0+ "):
        batch.run_job(dict(job, checkout={"hash": "0" * 64, "parts": {}}), root=tmp_path)
