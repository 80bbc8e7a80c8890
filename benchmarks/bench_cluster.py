"""Throughput of grading on a Dask cluster vs the local pool, and the cluster path's overhead.

    python3 run.py bench cluster [--n 6] [--assignment 01_convolution|tiny]

In a temporary copy of the course, ``n`` honest submissions (the release with every answer cell
filled in from the solution; ``tiny``: the test corpus's assignment) are graded by the hardened
grader with 1 and with 2 local workers, then on a loopback cluster — a scheduler and 2 workers
(``--nthreads 1``) started as separate processes exactly as ``python3 run.py grade scheduler`` /
``grade worker`` start them — twice: a cold batch (each worker starts its fork server, as the
local pool does in every batch) and a warm one (the workers keep their fork servers). Every run
must give the same scores. Printed and saved to ``benchmarks/results/cluster-<time>.{json,md}``:

- seconds and submissions/minute of each run, and the cluster's start-up (scheduler + workers
  registered), which is not part of any batch;
- per-submission cost in worker-seconds (seconds x workers / n) and the cluster path's overhead
  per submission: cost(cluster) - cost(2 local workers);
- the transport alone: one job's bytes to a worker and back (``len`` of the job as the task),
  median round trip of n sequential tasks.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograder.secure import Limits, batch, cluster, grade_batch, probe  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def _strip(source: str) -> str:
    return "\n".join(l for l in source.split("\n") if "BEGIN SOLUTION" not in l and "END SOLUTION" not in l)


def _course(tmp: Path, assignment: str, n: int) -> tuple[Path, Path]:
    """A course root with ``assignment`` and ``n`` honest submissions; returns (root, submissions)."""
    root, subs = tmp / "course", tmp / "subs"
    if assignment == "tiny":
        import importlib.util
        spec = importlib.util.spec_from_file_location("grading_corpus", ROOT / "tests" / "submissions" / "corpus.py")
        corpus = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(corpus)
        corpus.make_course(root)
        name, release = corpus.NOTEBOOK, corpus.student_notebook()
    else:
        for d in ("solutions", "assignments"):
            shutil.copytree(ROOT / d / assignment, root / d / assignment)
        (root / "autograder").mkdir()
        name = next((root / "solutions" / assignment).glob("*.ipynb")).name
        source = nbformat.read(str(root / "solutions" / assignment / name), as_version=4)
        release = nbformat.read(str(root / "assignments" / assignment / name), as_version=4)
        answers = {c.metadata["nbgrader"]["grade_id"]: _strip(c.source) for c in source.cells
                   if c.metadata.get("nbgrader", {}).get("solution")}
        for c in release.cells:
            if c.metadata.get("nbgrader", {}).get("solution"):
                c.source = answers[c.metadata["nbgrader"]["grade_id"]]
    for i in range(n):
        d = subs / f"s{i:03d}" / assignment
        d.mkdir(parents=True)
        nbformat.write(release, str(d / name))
    return root, subs


def _start_cluster(tmp: Path, root: Path, workers: int):
    """Scheduler + ``workers`` single-threaded workers on loopback; returns (procs, address, seconds)."""
    env = dict(os.environ)
    env.pop(batch.ROOT_ENV, None)
    sched_file = tmp / "scheduler.json"
    cli = [sys.executable, "-m", "autograder"]
    t = time.perf_counter()
    procs = [subprocess.Popen(cli + ["scheduler", "--host", "127.0.0.1", "--port", "0", "--scheduler-file",
                                     str(sched_file), "--idle-timeout", "3600"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    deadline = time.monotonic() + 120
    while not sched_file.is_file():
        if time.monotonic() > deadline:
            raise TimeoutError("the scheduler did not start within 120 s")
        time.sleep(0.1)
    address = cluster.resolve_scheduler(sched_file)
    for _ in range(workers):
        procs.append(subprocess.Popen(cli + ["worker", address, "--nthreads", "1", "--no-nanny", "--death-timeout",
                                             "60", "--root", str(root)], cwd=ROOT, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
    import distributed
    with distributed.Client(address, timeout="60s", set_as_default=False) as client:
        client.wait_for_workers(workers, timeout=180)
    return procs, address, time.perf_counter() - t


def _stop(procs):
    for p in reversed(procs):
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(30)


def _transport(address: str, job: dict, n: int) -> float:
    """Median seconds of a task that carries one job to a worker and returns a number."""
    import distributed
    times = []
    with distributed.Client(address, timeout="60s", set_as_default=False) as client:
        for _ in range(n):
            t = time.perf_counter()
            client.submit(len, job, pure=False).result(timeout=60)
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=6, help="submissions (default 6)")
    p.add_argument("--assignment", default="01_convolution", help="an assignment id or tiny (default 01_convolution)")
    a = p.parse_args(argv)
    if a.n < 1:
        p.error("--n must be at least 1")
    limits = Limits(cell_timeout=120, notebook_timeout=600, cpu_seconds=600, memory_mb=4096)
    rows, scores = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root, subs = _course(tmp, a.assignment, a.n)
        print(f"isolation: {probe()}")
        print(f"{a.assignment}: {a.n} honest submissions, {os.cpu_count()} cores, load average "
              f"{os.getloadavg()[0]:.1f}", flush=True)

        def timed(label, threads, **kw):
            t = time.perf_counter()
            res = grade_batch(a.assignment, root=root, submissions=subs, limits=limits, out=tmp / f"out{len(rows)}", **kw)
            dt = time.perf_counter() - t
            scores[label] = {s: r["scores"] for s, r in res.items()}
            rows.append({"run": label, "seconds": round(dt, 1), "per_min": round(60 * a.n / dt, 1),
                         "worker_s_per_sub": round(dt * threads / a.n, 2)})
            print(f"  {label:<40} {dt:7.1f} s  {60 * a.n / dt:5.1f} submissions/min  "
                  f"{dt * threads / a.n:5.2f} worker-s/submission", flush=True)

        timed("local, 1 worker", 1, workers=1)
        timed("local, 2 workers", 2, workers=2)
        procs, address, startup = _start_cluster(tmp, root, 2)
        try:
            print(f"  cluster start-up (scheduler + 2 workers registered): {startup:.1f} s", flush=True)
            timed("cluster, 2 workers (cold fork servers)", 2, scheduler=address)
            timed("cluster, 2 workers (warm)", 2, scheduler=address)
            job = batch.make_job(a.assignment, next((root / "solutions" / a.assignment).glob("*.ipynb")).name,
                                 next(subs.iterdir()) / a.assignment, limits, batch.checkout_digest(root, a.assignment))
            size = sum(len(b) for b in job["files"].values())
            transport = _transport(address, job, max(a.n, 5))
        finally:
            _stop(procs)
        first = next(iter(scores.values()))
        for label, got in scores.items():
            assert got == first, f"{label}: scores differ from the first run's"
    local2 = rows[1]["worker_s_per_sub"]
    overhead = {r["run"]: round(r["worker_s_per_sub"] - local2, 2) for r in rows[2:]}
    print(f"cluster overhead per submission vs 2 local workers (worker-seconds): {overhead}")
    print(f"transport of one job ({size / 1024:.0f} KiB of notebook) to a worker and back: {1000 * transport:.1f} ms")
    print("all runs gave the same scores")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {"assignment": a.assignment, "n": a.n, "cores": os.cpu_count(), "rows": rows, "startup_s": round(startup, 1),
              "overhead_worker_s_per_sub": overhead, "transport_ms": round(1000 * transport, 1),
              "job_kib": round(size / 1024, 1)}
    (RESULTS / f"cluster-{stamp}.json").write_text(json.dumps(record, indent=1))
    md = ["| run | seconds | submissions/min | worker-s/submission |", "| --- | --- | --- | --- |"]
    md += [f"| {r['run']} | {r['seconds']} | {r['per_min']} | {r['worker_s_per_sub']} |" for r in rows]
    (RESULTS / f"cluster-{stamp}.md").write_text("\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
