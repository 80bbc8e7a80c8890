"""The open challenge (assignment 5, Part 7): its data, the CPU-time meter the grader enforces the
budget with, and the claim that a plain baseline misses the first threshold on the held-out set.

The grader's seed and thresholds are read from the hidden test of the instructor's notebook, so
this file checks what students are graded against. That the instructor's design reaches both
thresholds within the budget, that an over-budget answer and the baseline earn nothing, is checked
by grading submissions in tests/test_course_pipeline.py (scenarios of 05_training_transfer).
"""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab import cputime
from cnnlab.data import challenge as C

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "solutions" / "05_training_transfer" / "training_transfer.ipynb"


def _graded_settings():
    """(held-out seed, first threshold, second threshold, budget) from the notebook's test cells."""
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in nbformat.read(NOTEBOOK, 4).cells}
    seed = int(re.search(r"challenge_heldout\(seed=([\d_]+)", cells["test_challenge"]).group(1).replace("_", ""))
    first = float(re.search(r"heldout_acc >= ([\d.]+)", cells["test_challenge"]).group(1))
    second = float(re.search(r"heldout_acc >= ([\d.]+)", cells["test_challenge_strong"]).group(1))
    budget = float(re.search(r"CHALLENGE_BUDGET_S = ([\d.]+)", cells["test_challenge"]).group(1))
    return seed, first, second, budget


def test_notebook_states_the_graded_numbers():
    seed, first, second, budget = _graded_settings()
    intro = next(c.source for c in nbformat.read(NOTEBOOK, 4).cells if c.get("id") == "part7_md")
    assert f"**{first:.2f}**" in intro and f"**{second:.2f}**" in intro and f"**{budget:g} CPU seconds**" in intro
    assert str(seed) not in intro and f"{seed:_}" not in intro, "the held-out seed must stay out of the student's text"
    assert first < second


def test_data_shapes_dtypes_and_determinism():
    d = C.get_challenge_data()
    assert d["X_train"].shape == (1079, 1, 12, 12) and d["X_val"].shape == (359, 1, 12, 12)
    assert d["X_train"].dtype == np.float32 and d["y_train"].dtype == np.int64
    assert sorted(np.unique(d["y_train"])) == list(range(10))
    again = C.get_challenge_data()
    assert all(np.array_equal(d[k], again[k]) for k in d)
    X, y = C.challenge_heldout(seed=5, copies=3)
    assert X.shape == (3 * 359, 1, 12, 12) and y.shape == (3 * 359,)
    X2, _ = C.challenge_heldout(seed=6, copies=3)
    assert not np.array_equal(X, X2), "another seed must give other positions and noise"
    # The three copies of a test digit sit at different places: the copies differ.
    assert not np.array_equal(X[:359], X[359:718])


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(0, 2**31 - 1), st.integers(8, 14))
def test_scatter_pastes_each_digit_once_within_the_canvas(n, seed, canvas):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.05, 1.0, size=(n, 1, 8, 8)).astype(np.float32)   # no zero pixel: the window is unique
    out = C.scatter_digits(X, seed, canvas=canvas, noise=0.0)
    assert out.shape == (n, 1, canvas, canvas) and out.dtype == np.float32
    for i in range(n):
        hits = [(dy, dx) for dy in range(canvas - 7) for dx in range(canvas - 7)
                if np.array_equal(out[i, 0, dy:dy + 8, dx:dx + 8], X[i, 0])]
        assert len(hits) == 1
        dy, dx = hits[0]
        rest = out[i, 0].copy()
        rest[dy:dy + 8, dx:dx + 8] = 0
        assert not rest.any(), "outside the digit the canvas is empty"


def test_noise_has_the_stated_spread():
    out = C.scatter_digits(np.zeros((200, 1, 8, 8), np.float32), 3)
    assert out.std() == pytest.approx(C.NOISE, rel=0.02) and abs(out.mean()) < 0.01


@pytest.mark.parametrize("bad, match", [
    (dict(X=np.zeros((2, 8, 8))), r"X must have shape \(N, 1, 8, 8\), got \(2, 8, 8\)"),
    (dict(X=np.zeros((2, 1, 8, 8)), canvas=7), "canvas must be an integer >= 8"),
    (dict(X=np.zeros((2, 1, 8, 8)), noise=-1.0), "noise must be >= 0"),
    (dict(X=np.zeros((2, 1, 8, 8)), seed=-1), "seed must be an integer >= 0"),
])
def test_bad_arguments_are_named(bad, match):
    kwargs = {"seed": 0, **bad}
    with pytest.raises(ValueError, match=match):
        C.scatter_digits(**kwargs)


def test_heldout_digits_are_not_training_or_validation_digits():
    from cnnlab.data import load_digits
    train = {x.tobytes() for x in load_digits(8, "train", seed=0)[0]}
    val = {x.tobytes() for x in load_digits(8, "val", seed=0)[0]}
    test = [x.tobytes() for x in load_digits(8, "test", seed=0)[0]]
    assert len(test) == 359
    assert not [t for t in test if t in train | val], "a held-out digit is also a training or validation image"


def test_plain_baseline_misses_the_first_threshold():
    # The notebook's claim "a plain baseline falls short": the library's small_cnn is the
    # architecture of the student's DigitsCNN; trained as the notebook's baseline (SGD 0.05,
    # momentum 0.9, batches of 64), for 30 epochs and for twice as long.
    import torch

    from cnnlab.data import make_loaders
    from cnnlab.train import Trainer, seed_everything, small_cnn

    seed, first, _, _ = _graded_settings()
    d = C.get_challenge_data()
    X, y = C.challenge_heldout(seed=seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for epochs in (30, 60):
            seed_everything(0)
            model = small_cnn(1, 10)
            loaders = make_loaders({"X_train": d["X_train"], "y_train": d["y_train"], "X_test": X, "y_test": y},
                                   batch_size=64, seed=0)
            trainer = Trainer(model, optimizer="sgd", lr=0.05, momentum=0.9, device="cpu", progress=False)
            trainer.fit(loaders["train"], None, epochs)
            acc = trainer.evaluate(loaders["test"])["acc"]
            print(f"baseline, {epochs} epochs: held-out accuracy {acc:.3f}")
            assert 0.5 < acc < first, f"baseline, {epochs} epochs: held-out accuracy {acc:.3f}"
    finally:
        torch.set_num_threads(threads)


_BUSY = r"""
import os, subprocess, sys, threading, time
def spin(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass
child = subprocess.Popen([sys.executable, "-c", "import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end: pass\nprint(time.process_time(), flush=True)\ntime.sleep(60)"], stdout=subprocess.PIPE, text=True)
threads = [threading.Thread(target=spin, args=(0.4,)) for _ in range(2)]
for t in threads: t.start()
spin(0.4)
for t in threads: t.join()
grandchild = float(child.stdout.readline())
t = os.times()
print(t.user + t.system + grandchild, flush=True)
time.sleep(60)
"""


def test_grader_meter_counts_threads_and_children_of_the_student_process():
    # The meter the hardened runner installs reads /proc of the student's process group; the
    # oracle is what the processes report about themselves (os.times / process_time).
    from autograder.secure.sandbox import AgentProcess

    proc = subprocess.Popen([sys.executable, "-c", _BUSY], stdout=subprocess.PIPE, text=True, start_new_session=True)
    agent = AgentProcess(proc, -1, -1, None, Path("."), [])
    try:
        reported = float(proc.stdout.readline())
        measured = agent.cpu_seconds()
        assert reported >= 1.7      # 3 threads x 0.4 s + a child's 0.6 s
        assert measured == pytest.approx(reported, abs=0.15)
    finally:
        agent.kill()


def test_default_meter_is_this_process_and_a_meter_can_be_installed():
    _, used, wall = cputime.cpu_seconds_of(lambda: sum(i * i for i in range(300_000)))
    assert 0 < used < 5 and wall > 0
    cputime.use_meter(lambda: 42.0)
    try:
        assert cputime.student_cpu_seconds() == 42.0
    finally:
        cputime.use_meter(None)
    with pytest.raises(TypeError, match="meter must be callable"):
        cputime.use_meter(3)
    assert cputime.student_cpu_seconds() < 1e6
