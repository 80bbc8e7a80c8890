"""The student edition of ``cnnlab``: the course library with every unpublished answer cut out.

The library code that answers an exercise is marked where it lives, the way nbgrader marks a
solution region in a notebook::

    # BEGIN ANSWER 01_convolution conv_forward
    def conv_forward_naive(x, w, b, conv_param):
        ...
    # END ANSWER

(``<assignment> <grade_id of the exercise's solution cell>``; top-level functions and classes only.)
:func:`build` copies ``lib/cnnlab`` to ``assignments/library/cnnlab`` and replaces each region of
an assignment that is not published (``solutions/published.toml``) by stubs with the same names:
calling a withheld function or instantiating a withheld class raises ``NotImplementedError``
naming the exercise and the notebook where the student writes it. The answer's code is absent
from the edition, not hidden behind a flag. A withheld class keeps its bases and its constant
class attributes (so a library model that contains it can still be unpickled and inspected) but
no method. ``assignments/library/WITHHELD.json`` lists what was withheld.

:func:`publish` adds an assignment to ``solutions/published.toml`` (after its deadline): later
builds of the edition include its answers, so later assignments can build on them.
"""
from __future__ import annotations

import ast
import json
import re
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .course import DIRECTORIES, assignment_ids, default_root

__all__ = ["Region", "EditionError", "regions", "published", "publish", "build", "EDITION_DIR",
           "PUBLISHED_FILE"]

#: The student edition, relative to the course root (``import cnnlab`` from here).
EDITION_DIR = Path(DIRECTORIES["release_directory"]) / "library"
#: Which assignments' answers are published, relative to the course root.
PUBLISHED_FILE = Path(DIRECTORIES["source_directory"]) / "published.toml"

_BEGIN = re.compile(r"^# BEGIN ANSWER (?P<assignment>\S+) (?P<exercise>\S+)\s*$")
_END = re.compile(r"^# END ANSWER\s*$")


class EditionError(ValueError):
    """A malformed answer region or publication file (names the file and line)."""


@dataclass(frozen=True)
class Region:
    """One marked answer: ``path`` (relative to the library's parent), lines ``start``..``end``
    (1-based, the marker lines included), the exercise, and the names it defines."""

    path: str
    start: int
    end: int
    assignment: str
    exercise: str
    names: tuple[str, ...]


def _exercises(root: Path) -> dict[str, dict[str, str]]:
    """``{assignment: {grade_id of a solution cell: notebook file name}}``."""
    out = {}
    for a in assignment_ids(root):
        ids = {}
        for nb_path in sorted((root / DIRECTORIES["source_directory"] / a).glob("*.ipynb")):
            for cell in nbformat.read(nb_path, as_version=4).cells:
                meta = cell.metadata.get("nbgrader", {})
                if meta.get("solution") and meta.get("grade_id"):
                    ids[meta["grade_id"]] = nb_path.name
        out[a] = ids
    return out


def regions(root=None, library: Path | None = None) -> list[Region]:
    """Every marked answer region of the library (``lib/cnnlab`` by default), validated: known
    assignment and exercise, markers paired, only top-level ``def``/``class`` statements inside."""
    root = Path(root) if root is not None else default_root()
    library = Path(library) if library is not None else root / "lib" / "cnnlab"
    known = _exercises(root)
    found = []
    for path in sorted(library.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        rel = path.relative_to(library.parent).as_posix()
        lines = path.read_text().splitlines()
        tree = None
        open_at = None
        for no, line in enumerate(lines, 1):
            if line.lstrip().startswith("# BEGIN ANSWER") or line.lstrip().startswith("# END ANSWER"):
                if line != line.lstrip():
                    raise EditionError(f"{rel}:{no}: answer markers must start the line (top level only)")
            m = _BEGIN.match(line)
            if m:
                if open_at is not None:
                    raise EditionError(f"{rel}:{no}: BEGIN ANSWER inside the region opened at line {open_at[0]}")
                a, e = m["assignment"], m["exercise"]
                if a not in known:
                    raise EditionError(f"{rel}:{no}: unknown assignment {a!r} (known: {', '.join(known)})")
                if e not in known[a]:
                    raise EditionError(f"{rel}:{no}: {a} has no exercise (solution cell) {e!r}; "
                                       f"its exercises: {', '.join(known[a])}")
                open_at = (no, a, e)
            elif _END.match(line):
                if open_at is None:
                    raise EditionError(f"{rel}:{no}: END ANSWER without BEGIN ANSWER")
                if tree is None:
                    tree = ast.parse("\n".join(lines), filename=rel)
                start = open_at[0]
                inside = [n for n in tree.body if start < n.lineno <= no]
                for n in inside:
                    first = min([n.lineno] + [d.lineno for d in getattr(n, "decorator_list", [])])
                    if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                        raise EditionError(f"{rel}:{n.lineno}: only def and class statements may be "
                                           f"inside an answer region")
                    if first <= start or n.end_lineno >= no:
                        raise EditionError(f"{rel}:{n.lineno}: {n.name} crosses the answer markers")
                if not inside:
                    raise EditionError(f"{rel}:{start}: empty answer region")
                found.append(Region(rel, start, no, open_at[1], open_at[2], tuple(n.name for n in inside)))
                open_at = None
        if open_at is not None:
            raise EditionError(f"{rel}:{open_at[0]}: BEGIN ANSWER without END ANSWER")
    return found


def published(root=None) -> list[str]:
    """The assignments whose answers are published (``solutions/published.toml``; none if absent)."""
    root = Path(root) if root is not None else default_root()
    path = root / PUBLISHED_FILE
    if not path.is_file():
        return []
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise EditionError(f"{PUBLISHED_FILE}: {exc}") from None
    names = data.get("published", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise EditionError(f"{PUBLISHED_FILE}: 'published' must be a list of assignment names, got {names!r}")
    unknown = sorted(set(names) - set(assignment_ids(root)))
    if unknown:
        raise EditionError(f"{PUBLISHED_FILE}: unknown assignments {unknown}")
    return sorted(names)


def publish(assignment: str, root=None) -> list[str]:
    """Publish ``assignment``'s answers (add it to ``solutions/published.toml``); returns the list.
    Run :func:`build` (``grade release``) afterwards to give students the new edition."""
    root = Path(root) if root is not None else default_root()
    if assignment not in assignment_ids(root):
        raise EditionError(f"publish: unknown assignment {assignment!r} (known: {', '.join(assignment_ids(root))})")
    names = sorted(set(published(root)) | {assignment})
    (root / PUBLISHED_FILE).write_text(_PUBLISHED_HEADER + "published = [" + ", ".join(json.dumps(n) for n in names) + "]\n")
    return names


_PUBLISHED_HEADER = """\
# Assignments whose answers are published (add one after its deadline, or run
# `python3 run.py grade publish ASSIGNMENT`). The student edition of cnnlab
# (assignments/library/, rebuilt by `python3 run.py grade release`) includes the library code
# marked `# BEGIN ANSWER <assignment> <exercise>` only for these assignments.
"""


def _message(name: str, kind: str, r: Region, notebook: str) -> str:
    where = f"{DIRECTORIES['release_directory']}/{r.assignment}/{notebook}"
    return (f"{name} is not in the student edition of cnnlab: it is exercise {r.exercise!r} of assignment "
            f"{r.assignment}. Write {'it' if kind == 'def' else 'the class'} yourself in {where}.")


def _stub(node, r: Region, lines: list[str], notebook: str) -> list[str]:
    msg = _message(node.name, "class" if isinstance(node, ast.ClassDef) else "def", r, notebook)
    doc = f'    """Withheld from the student edition: exercise ``{r.exercise}`` of {r.assignment}."""'
    if not isinstance(node, ast.ClassDef):
        return [f"def {node.name}(*args, **kwargs):", doc, f"    raise NotImplementedError({msg!r})", ""]
    bases = ", ".join(ast.get_source_segment("\n".join(lines), b) for b in node.bases)
    out = [f"class {node.name}({bases}):" if bases else f"class {node.name}:", doc]
    for stmt in node.body:   # constant class attributes (``expansion = 4``) stay: they are no answer
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and isinstance(stmt.value, ast.Constant):
            out.append("    " + ast.get_source_segment("\n".join(lines), stmt))
    out += ["", "    def __init__(self, *args, **kwargs):", f"        raise NotImplementedError({msg!r})", "",
            "    def forward(self, *args, **kwargs):", f"        raise NotImplementedError({msg!r})", ""]
    return out


def _withhold(text: str, cut: list[Region], notebooks: dict) -> str:
    lines = text.splitlines()
    tree = ast.parse(text)
    out, i = [], 0
    for r in sorted(cut, key=lambda r: r.start):
        out += lines[i:r.start - 1]
        out.append(f"# (withheld from the student edition: exercise {r.exercise} of {r.assignment})")
        for node in tree.body:
            if r.start < node.lineno < r.end:
                out += _stub(node, r, lines, notebooks[r.assignment][r.exercise])
        i = r.end
    out += lines[i:]
    return "\n".join(out) + "\n"


def build(root=None, out: Path | None = None, publish_also: list[str] | None = None) -> dict:
    """Write the student edition (default ``assignments/library/``): ``cnnlab/`` and
    ``WITHHELD.json``. ``publish_also``: assignments to treat as published in this build (on top
    of ``solutions/published.toml``). Returns the manifest ``{"published": [...],
    "withheld": [{"module", "name", "assignment", "exercise", "notebook"}, ...]}``."""
    root = Path(root) if root is not None else default_root()
    library = root / "lib" / "cnnlab"
    out = Path(out) if out is not None else root / EDITION_DIR
    pub = sorted(set(published(root)) | set(publish_also or []))
    notebooks = _exercises(root)
    cut = [r for r in regions(root, library) if r.assignment not in pub]
    by_file: dict[str, list[Region]] = {}
    for r in cut:
        by_file.setdefault(r.path, []).append(r)
    target = out / "cnnlab"
    if target.exists():
        shutil.rmtree(target)
    for src in sorted(library.rglob("*")):
        if "__pycache__" in src.parts or src.is_dir() or src.suffix in (".pyc", ".pyo"):
            continue
        rel = src.relative_to(library.parent).as_posix()
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if rel in by_file:
            dest.write_text(_withhold(src.read_text(), by_file[rel], notebooks))
        else:
            shutil.copyfile(src, dest)
    manifest = {"published": pub, "withheld": [
        {"module": r.path[:-3].replace("/", ".").removesuffix(".__init__"), "name": n, "assignment": r.assignment,
         "exercise": r.exercise, "notebook": notebooks[r.assignment][r.exercise]}
        for r in cut for n in r.names]}
    (out / "WITHHELD.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest
