"""The batch's report files under concurrent writers: two ``grade secure`` runs with the same
``--out`` (two graders, two ``--student`` runs) must both keep their students in ``results.json``
and ``grades.csv`` (a read-merge-write without a lock loses one of them), and no reader ever sees
half a file (each file is written whole and renamed into place)."""
from __future__ import annotations

import csv
import json
import multiprocessing as mp
from pathlib import Path

from autograder.secure import batch

ROUNDS = 25


def _result(student: str, points: float) -> dict:
    return {"student": student, "assignment": "tiny", "scores": {"test_a": points}, "max_scores": {"test_a": 2.0},
            "messages": [f"{student} ok"], "notebooks": {}, "total": points, "max_total": 2.0, "isolation": []}


def _writer(out: str, prefix: str, start, rounds: int) -> None:
    start.wait()
    for i in range(rounds):
        batch.write_reports({f"{prefix}{i:02d}": _result(f"{prefix}{i:02d}", float(i % 3))}, Path(out))


def _reader(out: str, start, stop, bad) -> None:
    start.wait()
    path = Path(out) / "results.json"
    while not stop.is_set():
        if path.is_file():
            try:
                json.loads(path.read_text())
            except ValueError:
                bad.value += 1


def test_two_batches_writing_one_folder_keep_every_student(tmp_path):
    ctx = mp.get_context("fork")
    start, stop, bad = ctx.Barrier(3), ctx.Event(), ctx.Value("i", 0)
    writers = [ctx.Process(target=_writer, args=(str(tmp_path), p, start, ROUNDS)) for p in ("ada", "bob")]
    reader = ctx.Process(target=_reader, args=(str(tmp_path), start, stop, bad))
    for p in (*writers, reader):
        p.start()
    for p in writers:
        p.join(120)
        assert p.exitcode == 0
    stop.set()
    reader.join(30)
    expected = {f"{p}{i:02d}" for p in ("ada", "bob") for i in range(ROUNDS)}
    merged = json.loads((tmp_path / "results.json").read_text())
    assert set(merged) == expected, sorted(expected - set(merged))
    assert all(merged[s]["total"] == float(int(s[-2:]) % 3) for s in expected)
    rows = list(csv.DictReader((tmp_path / "grades.csv").open(newline="")))
    assert {r["student"] for r in rows} == expected and len(rows) == 2 * ROUNDS
    assert all((tmp_path / s / "report.json").is_file() for s in expected)
    assert bad.value == 0, f"a reader saw a half-written results.json {bad.value} times"
    assert not list(tmp_path.glob(".*.tmp")), "a temporary file was left behind"
