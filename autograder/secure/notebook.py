"""From an instructor's source notebook and a student's submission to a grading *plan*.

The plan is the instructor's notebook, in the instructor's order, with only the student's code
taken from the submission: the source of solution cells (matched by nbgrader ``grade_id``,
else by position among solution cells) and code cells the student added (run where they stood).
Test cells, hidden tests included, and all other instructor cells always come from the source
notebook. What the submission did to the cells it was given — test cells edited, deleted,
renamed, reordered, points or metadata changed, cells added that carry grading metadata or
outputs — is *reported* (``messages``), never used.

Malformed submissions (not JSON, empty, binary, nbformat 3, missing metadata, wrong name,
non-UTF-8, enormous outputs) are read without raising: :func:`read_submission` returns a message
the student sees and, where anything usable is left, a notebook.
"""
from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

__all__ = ["read_submission", "find_notebook", "build_plan", "MAX_BYTES"]

MAX_BYTES = 200 << 20
_HIDDEN = re.compile(r"^[ \t]*###? BEGIN HIDDEN TESTS.*?^[ \t]*###? END HIDDEN TESTS[^\n]*\n?", re.S | re.M)
_SOLUTION_MARK = re.compile(r"^[ \t]*###? (BEGIN|END) SOLUTION[^\n]*\n?", re.M)


def _meta(cell) -> dict:
    m = cell.get("metadata", {}).get("nbgrader", {})
    return m if isinstance(m, dict) else {}


def _norm(src: str) -> str:
    return "\n".join(line.rstrip() for line in src.strip().splitlines() if line.strip())


def find_notebook(folder: Path, expected: str) -> tuple[Path | None, list[str]]:
    """The submitted notebook in ``folder``: ``expected`` if present, else the one that looks
    most like it. Returns (path or None, messages)."""
    folder = Path(folder)
    if (folder / expected).is_file():
        return folder / expected, []
    cands = sorted(p for p in folder.glob("*") if p.is_file() and p.suffix.lower() in (".ipynb", ".json", ".txt", "")
                   and not p.name.startswith("."))
    nbs = [p for p in cands if p.suffix.lower() == ".ipynb"] or cands
    if not nbs:
        return None, [f"no notebook found: expected {expected} in the submission"]
    stem = Path(expected).stem.lower()
    nbs.sort(key=lambda p: (stem not in p.name.lower(), p.name))
    msg = f"wrong file name: expected {expected}, graded {nbs[0].name}"
    if len(nbs) > 1:
        msg += f" (of {len(nbs)} candidates: {', '.join(p.name for p in nbs[:5])})"
    return nbs[0], [msg]


def read_submission(path: Path) -> tuple[object | None, list[str]]:
    """Read a submitted notebook without raising and without modifying it.

    Returns (nbformat v4 notebook or None, messages). Outputs and attachments are dropped
    (they are never used for grading)."""
    msgs: list[str] = []
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        return None, [f"could not read the submission: {exc}"]
    if not raw.strip():
        return None, ["the submitted notebook is empty"]
    if len(raw) > MAX_BYTES:
        return None, [f"the submitted notebook is {len(raw) >> 20} MiB, over the {MAX_BYTES >> 20} MiB limit"]
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        if b"\x00" in raw[:4096]:
            return None, ["the submission is a binary file, not a notebook"]
        text = raw.decode("utf-8", errors="replace")
        msgs.append("the notebook is not valid UTF-8; undecodable bytes were replaced")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        return None, msgs + [f"the submission is not a valid notebook (invalid JSON: {str(exc)[:120]})"]
    if not isinstance(data, dict) or "cells" not in data and "worksheets" not in data:
        return None, msgs + ["the submission is JSON but not a Jupyter notebook (no cells)"]
    major = data.get("nbformat")
    try:
        if major != 4:
            msgs.append(f"notebook format {major} converted to 4")
            nb = nbformat.reads(json.dumps(data), as_version=4)
        else:
            nb = nbformat.from_dict(data)
    except Exception as exc:  # noqa: BLE001
        return None, msgs + [f"the notebook could not be read (nbformat: {str(exc)[:160]})"]
    cells = []
    for c in nb.get("cells", []) or []:
        if not isinstance(c, dict) or c.get("cell_type") not in ("code", "markdown", "raw"):
            continue
        src = c.get("source", "")
        if isinstance(src, list):
            src = "".join(s for s in src if isinstance(s, str))
        if not isinstance(src, str):
            src = ""
        meta = c.get("metadata", {}) if isinstance(c.get("metadata"), dict) else {}
        had_outputs = bool(c.get("outputs"))
        cells.append(nbformat.from_dict({"cell_type": c["cell_type"], "source": src, "metadata": meta,
                                         "had_outputs": had_outputs}))
    nb["cells"] = cells
    if not any(_meta(c) for c in cells):
        msgs.append("the notebook has no nbgrader metadata (cells were copied into a new notebook?); "
                    "student code was matched by position")
    return nb, msgs


def _defined_names(src: str) -> set[str]:
    """Top-level names a cell defines (def, class, assignment, import)."""
    try:
        tree = ast.parse(_SOLUTION_MARK.sub("", src))
    except SyntaxError:
        return set()
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        out.add(n.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                out.add((a.asname or a.name).split(".")[0])
    return out


def build_plan(source_nb, submission_nb, release_nb=None) -> dict:
    """The cells to run for one submission (see module docstring).

    Returns ``{"steps": [...], "messages": [...], "points": {grade_id: points}}``; a step is
    ``{"kind", "id", "src", ...}`` with kind ``instructor`` (run on both sides), ``student``
    (a solution cell: student side; ``names``: what the instructor's solution defines),
    ``extra`` (a cell the student added), ``test`` (trusted side; ``points``), ``answer``
    (an autograded answer cell: the student's code must run without error; ``points``) or
    ``manual`` (left to the instructor; ``points``)."""
    msgs: list[str] = []
    index = _index_source(source_nb, release_nb)
    found = _read_submission(index, submission_nb, msgs)
    _match_by_position(index, found, submission_nb, msgs)
    _report_deleted_and_reordered(index, found, submission_nb, msgs)
    steps, points = _assemble_steps(index, found)
    return {"steps": steps, "messages": msgs, "points": points}


@dataclass
class _Source:
    """The instructor's notebook, indexed: its cells, cells by grade id, the solution cells' ids,
    the release's cells by id, and the normalized text of every locked cell (-> its id)."""
    cells: list
    by_id: dict
    sol_ids: list
    rel: dict
    locked_srcs: dict


@dataclass
class _Found:
    """What the submission holds: student code per solution id, the cells a student added (by the
    cell they follow), the order of the instructor's cells seen, solution-looking cells not matched."""
    student_src: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)
    seen_order: list = field(default_factory=list)
    unmatched: list = field(default_factory=list)


def _index_source(source_nb, release_nb) -> _Source:
    """Step 1: index the instructor's source notebook (and the release, for its cells' text)."""
    src_cells = list(source_nb.cells)
    rel = {}
    if release_nb is not None:
        rel = {_meta(c).get("grade_id"): c for c in release_nb.cells if _meta(c).get("grade_id")}
    by_id = {}
    for i, c in enumerate(src_cells):
        gid = _meta(c).get("grade_id")
        if gid:
            by_id[gid] = (i, c)
    sol_ids = [_meta(c)["grade_id"] for c in src_cells
               if _meta(c).get("solution") and _meta(c).get("grade_id") and c.cell_type == "code"]
    locked_srcs = {}
    for gid, (_, c) in by_id.items():
        if not _meta(c).get("solution"):
            locked_srcs[_norm(c.source)] = gid
            locked_srcs[_norm(_HIDDEN.sub("", c.source))] = gid
            if gid in rel:
                locked_srcs[_norm(rel[gid].source)] = gid
    # Ordinary instructor cells (no grade id) are recognised by their text too.
    for i, c in enumerate(src_cells):
        if c.cell_type == "code" and not _meta(c).get("grade_id") and c.source.strip():
            locked_srcs.setdefault(_norm(c.source), f"cell-{i}")

    return _Source(src_cells, by_id, sol_ids, rel, locked_srcs)


def _read_submission(index: _Source, submission_nb, msgs: list) -> _Found:
    """Step 2: walk the submission: student code by grade id, tampering with locked cells, the
    cells the student added (anchored after the instructor's cell they follow)."""
    by_id, rel, locked_srcs = index.by_id, index.rel, index.locked_srcs
    student_src: dict[str, str] = {}
    extras: dict[str, list[str]] = {}   # anchor id -> added code cells after it
    seen_order: list[str] = []
    unmatched_solution_cells: list[tuple[int, str]] = []
    anchor = "__start__"
    for j, c in enumerate(submission_nb.cells):
        m = _meta(c)
        gid = m.get("grade_id")
        if gid in by_id:
            si, sc = by_id[gid]
            sm = _meta(sc)
            seen_order.append(gid)
            if sm.get("solution") and sc.cell_type == "code":
                if c.cell_type != "code":
                    msgs.append(f"solution cell {gid!r} was changed to {c.cell_type}; its text was not run")
                elif gid in student_src:
                    msgs.append(f"solution cell {gid!r} appears twice; the first one was graded")
                else:
                    student_src[gid] = c.source
            elif not sm.get("solution"):
                if m.get("grade") and sm.get("grade") and m.get("points") != sm.get("points"):
                    msgs.append(f"tampering: points of test cell {gid!r} changed from {sm.get('points')} "
                                f"to {m.get('points')}; the instructor's points were used")
                if any(m.get(k) != sm.get(k) for k in ("grade", "solution", "locked")):
                    msgs.append(f"tampering: nbgrader metadata of cell {gid!r} changed; ignored")
                candidates = {_norm(sc.source), _norm(_HIDDEN.sub("", sc.source))}
                if gid in rel:
                    candidates.add(_norm(rel[gid].source))
                if c.cell_type == "code" and _norm(c.source) not in candidates:
                    kind = "test" if sm.get("grade") else "read-only"
                    msgs.append(f"tampering: {kind} cell {gid!r} was edited; the instructor's version was run")
            anchor = gid
            continue
        if c.cell_type != "code":
            if m.get("grade") or m.get("grade_id"):
                msgs.append(f"added cell #{j + 1} carries nbgrader metadata ({m.get('grade_id')!r}); ignored")
            continue
        known = locked_srcs.get(_norm(c.source)) if c.source.strip() else None
        if known is not None:
            if gid:
                msgs.append(f"tampering: cell {known!r} was renamed to {gid!r}; the instructor's cell was run")
            elif known in by_id:
                msgs.append(f"cell {known!r} lost its nbgrader metadata; the instructor's cell was run")
            seen_order.append(known)
            anchor = known
            continue
        if m.get("solution") or (gid and gid not in by_id):
            unmatched_solution_cells.append((j, c.source))
            if gid:
                msgs.append(f"cell id {gid!r} is not in the assignment (renamed?)")
            if m.get("grade"):
                msgs.append(f"tampering: cell #{j + 1} ({gid!r}) claims to be a graded cell; ignored as a test")
            anchor_key = anchor
            extras.setdefault(anchor_key, []).append(c.source)
            continue
        if c.get("had_outputs") and not c.source.strip():
            msgs.append(f"added cell #{j + 1} has outputs but no code (imitation of test output?); ignored")
            continue
        if c.source.strip():
            extras.setdefault(anchor, []).append(c.source)

    return _Found(student_src, extras, seen_order, unmatched_solution_cells)


def _match_by_position(index: _Source, found: _Found, submission_nb, msgs: list) -> None:
    """Step 3: solution cells not found by id take unmatched solution-looking cells, in order."""
    sol_ids, student_src, extras = index.sol_ids, found.student_src, found.extras
    unmatched_solution_cells = found.unmatched
    missing = [g for g in sol_ids if g not in student_src]
    if missing and unmatched_solution_cells:
        pairs = list(zip(missing, unmatched_solution_cells))
        for gid, (j, source) in pairs:
            student_src[gid] = source
            msgs.append(f"solution cell {gid!r} not found by id; cell #{j + 1} was used by position")
            for lst in extras.values():
                if source in lst:
                    lst.remove(source)
        missing = [g for g in sol_ids if g not in student_src]
    for gid in missing:
        if submission_has_metadata(submission_nb):
            msgs.append(f"solution cell {gid!r} is missing from the submission")


def _report_deleted_and_reordered(index: _Source, found: _Found, submission_nb, msgs: list) -> None:
    """Step 4: test cells deleted or renamed, and cells reordered (the instructor's order is run)."""
    by_id, src_cells, seen_order = index.by_id, index.cells, found.seen_order
    for gid, (_, sc) in by_id.items():
        if _meta(sc).get("grade") and not _meta(sc).get("solution") and gid not in seen_order:
            if submission_has_metadata(submission_nb):
                msgs.append(f"tampering: test cell {gid!r} was deleted or renamed; the instructor's test was run")
    order_src = [g for g in (_meta(c).get("grade_id") for c in src_cells) if g in seen_order]
    order_sub = []
    for g in seen_order:
        if g not in order_sub:
            order_sub.append(g)
    if order_sub != order_src and set(order_sub) == set(order_src):
        msgs.append("tampering: cells were reordered; the instructor's order was used")


def _assemble_steps(index: _Source, found: _Found) -> tuple[list, dict]:
    """Step 5: the steps in the instructor's order, each added cell after the cell it followed."""
    src_cells, student_src, extras = index.cells, found.student_src, found.extras
    steps: list[dict] = []
    points: dict[str, float] = {}

    def add_extras(key):
        for k, s in enumerate(extras.pop(key, [])):
            steps.append({"kind": "extra", "id": f"added-after-{key}-{k + 1}", "src": s})

    add_extras("__start__")
    for i, c in enumerate(src_cells):
        m = _meta(c)
        gid = m.get("grade_id") or f"cell-{i}"
        if m.get("grade"):
            points[gid] = float(m.get("points", 0) or 0)
        if c.cell_type != "code":
            if m.get("grade"):
                steps.append({"kind": "manual", "id": gid, "points": points[gid]})
            add_extras(gid)
            continue
        if m.get("solution"):
            src = student_src.get(gid, "")
            kind = "answer" if m.get("grade") else "student"
            step = {"kind": kind, "id": gid, "src": src, "names": sorted(_defined_names(c.source))}
            if kind == "answer":
                step["points"] = points[gid]
            steps.append(step)
        elif m.get("grade"):
            steps.append({"kind": "test", "id": gid, "src": c.source, "points": points[gid]})
        else:
            steps.append({"kind": "instructor", "id": gid, "src": c.source})
        add_extras(gid)
    for key in list(extras):
        add_extras(key)
    return steps, points


def submission_has_metadata(nb) -> bool:
    return any(_meta(c) for c in nb.cells)
