"""The student bundle (``python3 run.py grade bundle``): what it holds, and its two commands run
on a fresh install.

Oracles: the instructors' sources (every hidden-test line and solution line of ``solutions/``,
every line of the library's answer regions must be absent from the bundle), the release itself
(the bundle's notebooks are its bytes), and the bundle's own README commands run from an unzipped
copy in a temporary folder with only python3 — a real virtual environment, a real kernel, a real
JupyterLab: the release fails its visible tests, the instructor's answers pass every one of them
in every assignment with no cell error under the student edition, and an answer key through a
forbidden API is reported with the grader's message before submission.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder import bundle, course, edition

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "lib" / "cnnlab"
ASSIGNMENTS = course.assignment_ids(ROOT)
sys.path.insert(0, str(Path(__file__).parent))
from test_course_pipeline import make_submission  # noqa: E402
from test_jupyterlab import _get, running_lab  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.notebook, pytest.mark.xdist_group("student_bundle")]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return bundle.build(ROOT, out=tmp_path_factory.mktemp("bundle"))


def _text_lines(folder: Path) -> dict[str, set[str]]:
    out = {}
    for f in folder.rglob("*"):
        if f.is_file():
            text = f.read_text(errors="replace")
            if f.suffix == ".ipynb":   # the cells' text, not JSON-escaped
                text = "\n".join(c.source for c in nbformat.reads(text, as_version=4).cells)
            out[f.relative_to(folder).as_posix()] = {l.strip() for l in text.splitlines()}
    return out


def _regions(source: str, begin: str, end: str) -> tuple[list[str], set[str]]:
    """Lines inside ``begin``...``end`` regions and the set of lines outside them."""
    inside, outside, depth = [], set(), False
    for line in source.splitlines():
        s = line.strip()
        if s.startswith(begin):
            depth = True
        elif s.startswith(end):
            depth = False
        elif depth:
            inside.append(s)
        else:
            outside.add(s)
    return inside, outside


def _library_outside_withheld() -> set[str]:
    published = set(edition.published(ROOT))
    withheld = [r for r in edition.regions(ROOT) if r.assignment not in published]
    out = set()
    for path in LIB.rglob("*.py"):
        rel = path.relative_to(LIB.parent).as_posix()
        out |= {l.strip() for i, l in enumerate(path.read_text().splitlines(), 1)
                if not any(q.path == rel and q.start <= i <= q.end for q in withheld)}
    return out


def secrets_of_the_course() -> dict[str, set[str]]:
    """What must never reach a student: ``{origin: distinctive lines}`` — every hidden-test line
    and every solution line of each source notebook, every code line of each withheld library
    region; lines the course also shows outside those regions (notebook or kept library) are not
    secrets."""
    library = _library_outside_withheld()
    sources = {a: "\n".join(c.source for p in (ROOT / "solutions" / a).glob("*.ipynb")
                            for c in nbformat.read(p, as_version=4).cells) for a in ASSIGNMENTS}
    out = {}
    for kind, begin, end in (("hidden tests", "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"),
                             ("solution", "### BEGIN SOLUTION", "### END SOLUTION")):
        split = {a: _regions(src, begin, end) for a, src in sources.items()}
        shown = set().union(*(outside for _, outside in split.values()))   # anywhere in the course
        for a, (inside, _) in split.items():
            out[f"{a} {kind}"] = {l for l in inside if len(l) > 20 and not l.startswith("#")
                                  and l not in shown and l not in library}
    # starter code the release gives (``x, w, b, conv_param = cache``) may match a withheld line
    released = {l.strip() for a in ASSIGNMENTS for p in (ROOT / "assignments" / a).glob("*.ipynb")
                for c in nbformat.read(p, as_version=4).cells for l in c.source.splitlines()}
    published = set(edition.published(ROOT))
    for r in edition.regions(ROOT):
        if r.assignment in published:
            continue
        lines = (LIB.parent / r.path).read_text().splitlines()[r.start:r.end - 1]
        out.setdefault("withheld library code", set()).update(
            l.strip() for l in lines if len(l.strip()) > 24 and not l.strip().startswith(("def ", "class ", "#"))
            and l.strip() not in library and l.strip() not in released)
    return out


def leaks(folder: Path, secrets: dict[str, set[str]]) -> list[str]:
    found = []
    for rel, lines in _text_lines(folder).items():
        for origin, needles in secrets.items():
            found += [f"{rel}: {origin}: {l}" for l in sorted(needles & lines)]
    return found


# -- what the bundle holds --------------------------------------------------------------------
def test_zip_holds_exactly_the_folder(built):
    folder, archive = built
    with zipfile.ZipFile(archive) as z:
        zipped = {n.removeprefix(f"{folder.name}/"): z.read(n) for n in z.namelist()}
    on_disk = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert zipped == on_disk
    assert all(n.startswith(f"{bundle.NAME}/") for n in zipfile.ZipFile(archive).namelist())


def test_bundle_is_the_release_the_student_edition_and_the_two_commands(built, tmp_path):
    folder, _ = built
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "assignments", "course.py", "jupyter",
                                                          "library", "requirements.txt"]
    profile = {p.relative_to(folder / "jupyter"): p.read_bytes() for p in (folder / "jupyter").rglob("*") if p.is_file()}
    assert profile == {p.relative_to(ROOT / "autograder" / "student" / "jupyter"): p.read_bytes()
                       for p in (ROOT / "autograder" / "student" / "jupyter").rglob("*") if p.is_file()}
    assert sorted(p.name for p in (folder / "assignments").iterdir()) == ASSIGNMENTS
    for a in ASSIGNMENTS:
        released = {p.name: p.read_bytes() for p in (ROOT / "assignments" / a).iterdir() if p.is_file()}
        shipped = {p.name: p.read_bytes() for p in (folder / "assignments" / a).iterdir()}
        assert shipped == released and any(n.endswith(".ipynb") for n in shipped), a
    edition.build(ROOT, out=tmp_path)
    fresh = {p.relative_to(tmp_path).as_posix(): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    shipped = {p.relative_to(folder / "library").as_posix(): p.read_bytes()
               for p in (folder / "library").rglob("*") if p.is_file()}
    assert shipped == fresh
    readme = (folder / "README.md").read_text()
    commands = re.findall(r"^python3 course\.py (\w+)", readme, re.M)
    assert commands[:2] == ["lab", "check"], commands
    reqs = (folder / "requirements.txt").read_text()
    assert "torch==2.13.0" in reqs.splitlines() and "jupyterlab>=4.0" in reqs


def test_no_solution_hidden_test_or_withheld_answer_in_the_bundle(built):
    folder, _ = built
    secrets = secrets_of_the_course()
    for a in ASSIGNMENTS:   # every source notebook has hidden tests and solutions to look for
        assert secrets[f"{a} hidden tests"] and secrets[f"{a} solution"], a
    assert len(secrets["withheld library code"]) > 50
    assert leaks(folder, secrets) == []


def test_the_search_finds_a_planted_leak(built, tmp_path):
    folder, _ = built
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    secrets = secrets_of_the_course()
    hidden = sorted(secrets[f"{ASSIGNMENTS[0]} hidden tests"])[0]
    code = sorted(secrets["withheld library code"])[0]
    with open(copy / "library" / "cnnlab" / "__init__.py", "a") as f:
        f.write(f"\n{code}\n")
    nb_path = next((copy / "assignments" / ASSIGNMENTS[1]).glob("*.ipynb"))
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells[-1].source += f"\n    {hidden}"
    nbformat.write(nb, nb_path)
    found = leaks(copy, secrets)
    assert any("withheld library code" in f and code in f for f in found), found
    assert any(f"{ASSIGNMENTS[0]} hidden tests" in f and hidden in f for f in found), found


def test_the_build_refuses_a_release_with_hidden_tests(tmp_path):
    root = tmp_path / "course"
    for name in ("solutions", "assignments", "lib", "pyproject.toml"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copyfile)(ROOT / name, root / name)
    nb_path = next((root / "assignments" / ASSIGNMENTS[0]).glob("*.ipynb"))
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells[-1].source += "\n### BEGIN HIDDEN TESTS\nassert True\n### END HIDDEN TESTS\n"
    nbformat.write(nb, nb_path)
    with pytest.raises(bundle.BundleError, match="BEGIN HIDDEN TESTS"):
        bundle.build(root, out=tmp_path / "out")
    assert not (tmp_path / "out" / bundle.NAME).exists()
    shutil.rmtree(root / "assignments" / ASSIGNMENTS[-1])
    with pytest.raises(bundle.BundleError, match=f"{ASSIGNMENTS[-1]}.*not released"):
        bundle.build(root, out=tmp_path / "out")


# -- the two commands, from scratch --------------------------------------------------------------
def _fresh_env(home: Path) -> dict:
    """The environment of a student's shell: no project virtualenv, no PYTHONPATH."""
    ours = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
           and not k.startswith(("CNNLAB_", "PYTEST_", "COV_"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != ours)
    env["JUPYTER_RUNTIME_DIR"] = str(home / "runtime")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _python3(env) -> str:
    found = shutil.which("python3", path=env["PATH"])
    assert found and not found.startswith(str(ROOT)), found
    return found


def _forbidden_key(assignment: str) -> tuple[dict, str]:
    """The first assignment with conv_forward written as an answer key through PyTorch, its
    output size honest, the rest as released."""
    key = ("import torch\nimport torch.nn.functional as F\n\n"
           "def conv_forward_naive(x, w, b, conv_param):\n"
           "    out = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),\n"
           "                   stride=conv_param['stride'], padding=conv_param['pad']).numpy()\n"
           "    return out, (x, w, b, conv_param)\n")
    return {"conv_forward": key}, "output_size"


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory):
    """The zip unpacked in a fresh folder; first command: `python3 course.py check` on the first
    assignment, with an answer key through a forbidden API (it also creates the environment)."""
    home = tmp_path_factory.mktemp("student")
    with zipfile.ZipFile(built[1]) as z:
        z.extractall(home)
    folder = home / bundle.NAME
    env = _fresh_env(home)
    a = ASSIGNMENTS[0]
    nb_path = next((folder / "assignments" / a).glob("*.ipynb"))
    source = nbformat.read(next((ROOT / "solutions" / a).glob("*.ipynb")), as_version=4)
    answers, honest = _forbidden_key(a)
    nbformat.write(make_submission(nbformat.read(nb_path, as_version=4), source, fill=[honest], answers=answers),
                   nb_path)
    proc = subprocess.run([_python3(env), "course.py", "check", f"assignments/{a}"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=1800)
    return folder, env, proc


def test_check_reports_the_visible_tests_the_rules_and_what_is_left(installed):
    folder, env, proc = installed
    out = proc.stdout
    assert proc.returncode == 1, (proc.returncode, out[-3000:], proc.stderr[-3000:])
    (nb_path,) = (ROOT / "solutions" / "01_convolution").glob("*.ipynb")
    pts = {c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"].get("points", 0))
           for c in nbformat.read(nb_path, as_version=4).cells
           if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")}   # what nbgrader records
    assert re.search(rf"ok +test_output_size +{pts['test_output_size']:g} / {pts['test_output_size']:g}", out), out
    assert re.search(rf"FAIL test_conv_forward +0 / {pts['test_conv_forward']:g} +RuleBroken: answer 'conv_forward' uses "
                     r"(import )?torch.*which this exercise forbids \(torch\): it earns nothing in test_conv_forward", out), out
    assert re.search(rf"FAIL test_conv_backward +0 / {pts['test_conv_backward']:g} +NotImplementedError", out), out
    # every code answer but the two this student wrote (output_size, and conv_forward with torch), in order
    left = [c.metadata["nbgrader"]["grade_id"] for c in nbformat.read(nb_path, as_version=4).cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")
            and c.metadata["nbgrader"]["grade_id"] not in ("output_size", "conv_forward")]
    assert len(left) >= 4 and f"still to write: {', '.join(left)}" in out, out
    assert (f"visible tests: {pts['test_output_size']:g} / {sum(pts.values()):g} points; "
            "2 points of written answers are graded by hand") in out, out
    assert "Hidden tests run when you are graded" in out
    probe = subprocess.run([str(folder / ".venv" / "bin" / "python"), "-c",
                            "import cnnlab, cnnlab.layers.conv as c; print(cnnlab.__file__)"],
                           env=env, capture_output=True, text=True, timeout=120)
    assert probe.stdout.strip() == str(folder / "library" / "cnnlab" / "__init__.py"), probe


def test_instructor_answers_pass_every_visible_test_in_the_student_edition(installed):
    # Every assignment, the release with the instructor's answers: no cell raises under the
    # student edition, no rule is broken, every visible test passes (the check exits 0).
    folder, env, _ = installed
    for a in ASSIGNMENTS:
        nb_path = next((folder / "assignments" / a).glob("*.ipynb"))
        source = nbformat.read(next((ROOT / "solutions" / a).glob("*.ipynb")), as_version=4)
        release = nbformat.read(next((ROOT / "assignments" / a).glob("*.ipynb")), as_version=4)
        nbformat.write(make_submission(release, source), nb_path)
    proc = subprocess.run([_python3(env), "course.py", "check", "--json"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, (proc.stdout[-4000:], proc.stderr[-3000:])
    reports = {Path(r["notebook"]).parent.name: r for r in json.loads(proc.stdout)}
    assert sorted(reports) == ASSIGNMENTS
    for a, r in reports.items():
        source = nbformat.read(next((ROOT / "solutions" / a).glob("*.ipynb")), as_version=4)
        tests = [c.metadata["nbgrader"]["grade_id"] for c in source.cells
                 if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"].get("solution")]
        assert [t["id"] for t in r["tests"]] == tests, a
        assert r["errors"] == [] and r["rules"] == {} and r["not_written"] == [], (a, r)
        assert r["visible_points"] == r["max_points"] > 0, (a, r)


def test_lab_command_opens_the_course(installed):
    folder, env, _ = installed
    with running_lab(folder.parent, launcher=[_python3(env), "course.py", "lab"], cwd=folder, env=env,
                     startup=180) as (base, token):
        listing = json.loads(_get(f"{base}/api/contents", token)[1])
        assert {i["name"] for i in listing["content"]} == set(ASSIGNMENTS)
        specs = json.loads(_get(f"{base}/api/kernelspecs", token)[1])
        assert specs["kernelspecs"]["python3"]["spec"]["display_name"] == "Python 3 (cnnlab)"
        assert Path(specs["kernelspecs"]["python3"]["spec"]["argv"][0]).parent == folder / ".venv" / "bin"
        assert specs["default"] == "python3"
        page = _get(f"{base}/lab", token)[1]
        config = json.loads(re.search(r'<script id="jupyter-config-data"[^>]*>(.*?)</script>', page, re.S).group(1))
        assert {"@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:formgrader"} <= set(config["disabledExtensions"])
