"""The student's own check of an assignment notebook: ``python -m cnnlab.selfcheck [NOTEBOOK ...]``.

For each notebook (a path, or a folder: every notebook under it) it

1. applies the assignment's ``rules.toml`` (beside the notebook) to every answer cell with the same
   static check ``grade secure`` applies (:func:`cnnlab.rules.check_answers`): an answer that uses
   an API its exercise forbids is reported with the message the grader gives, and its tests count
   for nothing;
2. runs a copy of the notebook from top to bottom in a fresh kernel (the student's file is never
   written) and reports every visible test cell (passed or the error), every answer still to write
   (``NotImplementedError``) and every other cell that raised.

It prints one line per test cell and a summary, or with ``--json`` a list of reports (one dict per
notebook: ``notebook``, ``tests`` [{id, points, passed, error}], ``rules`` {answer: message},
``not_written`` [answer ids], ``errors`` [{cell, id, error}], ``visible_points``, ``max_points``,
``manual_points``). Exit status 0 when every visible test passes and no rule is broken, 1
otherwise, 2 for a bad argument.

The verdict is on the *visible* tests: graded test cells also hold hidden tests, run only by the
grader. ``grade secure`` additionally watches forbidden calls at run time (names computed in a way
no static check can read); this check reports what the static check sees.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import rules

_STUB = "raise NotImplementedError()"   # what the release puts where an answer goes
TIMEOUT = 600   # seconds per cell (the longest training cell of the course takes about a minute)


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _error(outputs) -> str | None:
    """``'Name: first line of the message'`` of a cell's error output, or None when it ran."""
    for out in outputs:
        if out.get("output_type") == "error":
            value = (out.get("evalue") or "").strip().splitlines()
            return f"{out.get('ename', 'Error')}: {value[0][:300] if value else ''}".rstrip(": ")
    return None


def static_report(nb, folder: Path) -> dict[str, str]:
    """``{answer grade id: message}`` for every answer cell that breaks the assignment's rules.

    Args:
        nb: the notebook (an ``nbformat`` NotebookNode, version 4).
        folder: the assignment folder holding ``rules.toml``.
    """
    rule_set = rules.load(folder)
    code = [c for c in nb.cells if c.cell_type == "code"]
    answers = {_meta(c)["grade_id"]: c.source for c in code if _meta(c).get("solution") and _meta(c).get("grade_id")}
    broke = rules.check_answers(answers, {g: r.forbid for g, r in rule_set.items()}, (c.source for c in code),
                                {g: r.names for g, r in rule_set.items()})
    return {gid: rules.broken_message(gid, msg, rule_set[gid].tests) for gid, msg in broke.items()}


def _execute(nb, folder: Path, timeout: float):
    import subprocess

    import nbclient   # comes with JupyterLab (nbconvert)
    client = nbclient.NotebookClient(nb, timeout=timeout, allow_errors=True, kernel_name="python3",
                                     resources={"metadata": {"path": str(folder)}})
    # the kernel's own stderr (not the cells': those are outputs) holds only its start-up chatter
    client.execute(stderr=subprocess.DEVNULL)
    return nb


def check_notebook(path: str | Path, timeout: float = TIMEOUT) -> dict:
    """Check one notebook (see the module docstring for the report's keys).

    Args:
        path: the student's notebook (``.ipynb``); it is read, never written.
        timeout: seconds each cell may run.
    """
    import nbformat
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    folder = path.resolve().parent
    broken = static_report(nb, folder)
    spoiled = {t for gid in broken for t in rules.load(folder)[gid].tests}
    nb = _execute(nb, folder, timeout)
    report = {"notebook": str(path), "tests": [], "rules": broken, "errors": [], "manual_points": 0.0,
              "not_written": [_meta(c)["grade_id"] for c in nb.cells if c.cell_type == "code"
                              and _meta(c).get("solution") and _STUB in c.source]}
    for index, cell in enumerate(nb.cells):
        meta = _meta(cell)
        gid = meta.get("grade_id")
        if meta.get("grade") and meta.get("solution"):
            report["manual_points"] += float(meta.get("points", 0))
            continue
        if cell.cell_type != "code":
            continue
        err = _error(cell.get("outputs", []))
        if meta.get("grade"):
            if err is None and gid in spoiled:
                err = "RuleBroken: " + next(m for g, m in broken.items() if gid in rules.load(folder)[g].tests)
            report["tests"].append({"id": gid, "points": float(meta.get("points", 0)), "passed": err is None,
                                    "error": err})
        elif err is not None and not (report["not_written"] and err.startswith("NotImplementedError")):
            report["errors"].append({"cell": index, "id": gid, "error": err})
    report["visible_points"] = sum(t["points"] for t in report["tests"] if t["passed"])
    report["max_points"] = sum(t["points"] for t in report["tests"])
    return report


def _notebooks(args: list[str]) -> list[Path]:
    out = []
    for a in args:
        p = Path(a)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in q.parts)
            if not found:
                raise FileNotFoundError(f"NOTEBOOK {a!r}: the folder holds no notebook (.ipynb)")
            out += found
        elif p.is_file() and p.suffix == ".ipynb":
            out.append(p)
        else:
            raise FileNotFoundError(f"NOTEBOOK {a!r}: expected a notebook (.ipynb) or a folder of notebooks")
    return out


def format_report(r: dict) -> str:
    """The report as the lines a student reads."""
    lines = [r["notebook"]]
    for t in r["tests"]:
        mark = "ok  " if t["passed"] else "FAIL"
        lines.append(f"  {mark} {t['id']:<28} {t['points'] if t['passed'] else 0:g} / {t['points']:g}"
                     + ("" if t["passed"] else f"   {t['error']}"))
    for gid, msg in r["rules"].items():
        lines.append(f"  rule: {msg}")
    if r["not_written"]:
        lines.append(f"  still to write: {', '.join(r['not_written'])} (cells that use them raise NotImplementedError)")
    for e in r["errors"]:
        lines.append(f"  cell {e['cell']}{' (' + e['id'] + ')' if e['id'] else ''} raised {e['error']}")
    lines.append(f"  visible tests: {r['visible_points']:g} / {r['max_points']:g} points"
                 + (f"; {r['manual_points']:g} points of written answers are graded by hand" if r["manual_points"] else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """The command line (``argv``: list of str, default ``sys.argv[1:]``); returns the exit status."""
    p = argparse.ArgumentParser(prog="check", description="Check your assignment notebooks before submitting.")
    p.add_argument("notebooks", nargs="*", default=["assignments"], metavar="NOTEBOOK",
                   help="notebooks or folders of notebooks (default: assignments)")
    p.add_argument("--json", action="store_true", help="print the reports as JSON")
    p.add_argument("--timeout", type=float, default=TIMEOUT, help=f"seconds per cell (default {TIMEOUT})")
    a = p.parse_args(argv)
    try:
        paths = _notebooks(a.notebooks)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    reports = []
    for path in paths:
        try:
            reports.append(check_notebook(path, a.timeout))
        except rules.RulesError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if not a.json:
            print(format_report(reports[-1]), flush=True)
    if a.json:
        print(json.dumps(reports, indent=1))
    else:
        print("Hidden tests run when you are graded: passing the visible tests is not yet full marks.")
    good = all(t["passed"] for r in reports for t in r["tests"]) and not any(r["rules"] for r in reports)
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
