"""The student edition of cnnlab (assignments/library/): every unpublished answer absent, the rest intact.

Oracles: the exercises' own names in the solution notebooks (a library function or class that
has an exercise's name must be marked as its answer), the full library's results (what the
edition keeps computes the same), and the text of every withheld region (none of it may be in
the edition). Grading imports the edition: the sandboxed student process cannot reach the full
library by any route tried here.
"""
from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

from autograder import course, edition
from cnnlab import rules
from autograder.secure import batch, sandbox, wire

# Its module/session fixtures are built once: the whole file runs on one xdist worker.
pytestmark = pytest.mark.xdist_group("student_edition")

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "lib" / "cnnlab"
EDITION = ROOT / edition.EDITION_DIR


def _exercise_names() -> dict[str, tuple[str, str]]:
    """Top-level names defined by the solution cells: ``{name: (assignment, grade_id)}``."""
    out = {}
    for a in course.assignment_ids(ROOT):
        for path in (ROOT / "solutions" / a).glob("*.ipynb"):
            for cell in nbformat.read(path, as_version=4).cells:
                meta = cell.metadata.get("nbgrader", {})
                if cell.cell_type != "code" or not meta.get("solution"):
                    continue
                src = "\n".join(l for l in cell.source.splitlines() if not l.lstrip().startswith(("%", "!")))
                for node in ast.parse(src).body:
                    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                        out[node.name] = (a, meta["grade_id"])
    return out


def _library_defs() -> dict[str, list[tuple[str, int]]]:
    out = {}
    for path in LIB.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                out.setdefault(node.name, []).append((path.relative_to(LIB.parent).as_posix(), node.lineno))
    return out


def _forbidden_by_rules(name: str, path: str, assignment: str, gid: str) -> bool:
    """Kept in the edition (the course's own models are built from it) but forbidden to the
    exercise's answer by its rules (the runtime and static checks of cnnlab.rules)."""
    rule = rules.load(ROOT / "solutions" / assignment).get(gid)
    dotted = path[:-3].replace("/", ".") + "." + name
    return rule is not None and any(dotted == f or dotted.startswith(f + ".") for f in rule.forbid)


def test_every_library_definition_named_like_an_exercise_is_marked():
    regions = edition.regions(ROOT)
    marked = {(r.path, n) for r in regions for n in r.names}
    defs = _library_defs()
    missing = [(name, where, ex) for name, ex in _exercise_names().items() for where in defs.get(name, [])
               if (where[0], name) not in marked and not _forbidden_by_rules(name, where[0], *ex)]
    assert not missing, (f"library code that answers an exercise is neither marked as its answer nor "
                         f"forbidden by the exercise's rules.toml: {missing}")
    for r in regions:   # and each region names the exercise its code answers, where the names tell
        ex = _exercise_names()
        for n in r.names:
            if n in ex:
                assert ex[n] == (r.assignment, r.exercise), (r, ex[n])


def test_committed_edition_is_in_sync(tmp_path):
    manifest = edition.build(ROOT, out=tmp_path)
    fresh = {p.relative_to(tmp_path).as_posix(): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    committed = {p.relative_to(EDITION).as_posix(): p.read_bytes() for p in EDITION.rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts}
    assert sorted(committed) == sorted(fresh), "run `python3 run.py grade release` and commit assignments/library"
    stale = [k for k in fresh if committed[k] != fresh[k]]
    assert not stale, f"assignments/library is out of date ({stale[:5]}): run `python3 run.py grade release`"
    assert manifest["published"] == edition.published(ROOT)


def test_withheld_code_is_absent():
    published = set(edition.published(ROOT))
    text = {l.strip() for p in EDITION.rglob("*.py") for l in p.read_text().splitlines()}
    withheld = [r for r in edition.regions(ROOT) if r.assignment not in published]
    assert withheld, "nothing is withheld: the test proves nothing"
    outside = set()   # lines the library also has outside every withheld region may stay
    for path in LIB.rglob("*.py"):
        rel = path.relative_to(LIB.parent).as_posix()
        outside |= {l.strip() for i, l in enumerate(path.read_text().splitlines(), 1)
                    if not any(q.path == rel and q.start <= i <= q.end for q in withheld)}
    for r in withheld:
        lines = (LIB.parent / r.path).read_text().splitlines()[r.start:r.end - 1]
        body = [l.strip() for l in lines if len(l.strip()) > 24 and not l.strip().startswith(("def ", "class ", "#"))]
        assert body, r
        leaked = [l for l in body if l in text and l not in outside]
        assert not leaked, f"{r.path}:{r.start} ({r.exercise}) leaks into the edition: {leaked[:3]}"


_PROBE = r'''
import importlib, inspect, json, pkgutil, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import cnnlab
assert cnnlab.__file__.startswith(sys.argv[1]), cnnlab.__file__
for m in pkgutil.walk_packages(cnnlab.__path__, "cnnlab."):
    importlib.import_module(m.name)
out = {}
for w in json.loads(sys.argv[2]):
    obj = getattr(importlib.import_module(w["module"]), w["name"])
    try:
        obj(*([None] * 4)) if inspect.isfunction(obj) else obj(1, 1)
        out[w["module"] + ":" + w["name"]] = "no error"
    except NotImplementedError as exc:
        out[w["module"] + ":" + w["name"]] = str(exc)
rng = np.random.default_rng(0)
x, w, b = rng.standard_normal((2, 3, 7, 7)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
from cnnlab.layers import conv_forward_im2col, max_pool_forward_fast
from cnnlab.shapes import conv_output_size
from cnnlab import models
kept = {"conv": conv_forward_im2col(x, w, b, {"stride": 2, "pad": 1})[0].tolist(),
        "pool": max_pool_forward_fast(x, {"pool_height": 2, "pool_width": 2, "stride": 2})[0].tolist(),
        "size": conv_output_size(227, 11, 4, 0),
        "alexnet": sum(p.numel() for p in models.alexnet().parameters())}
print(json.dumps({"withheld": out, "kept": kept}))
'''


def _probe(library: Path) -> dict:
    manifest = json.loads((library / "WITHHELD.json").read_text())
    proc = subprocess.run([sys.executable, "-I", "-c", _PROBE, str(library), json.dumps(manifest["withheld"])],
                          capture_output=True, text=True, timeout=300, cwd=library)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def probed():
    return _probe(EDITION)


def test_withheld_names_raise_and_name_the_exercise(probed):
    manifest = json.loads((EDITION / "WITHHELD.json").read_text())
    for w in manifest["withheld"]:
        msg = probed["withheld"][f"{w['module']}:{w['name']}"]
        assert w["exercise"] in msg and f"assignments/{w['assignment']}/{w['notebook']}" in msg, (w, msg)


def test_what_the_edition_keeps_computes_as_the_full_library(probed):
    import numpy as np

    from cnnlab import models
    from cnnlab.layers import conv_forward_im2col, max_pool_forward_fast
    from cnnlab.shapes import conv_output_size
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 3, 7, 7)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    kept = probed["kept"]
    np.testing.assert_array_equal(kept["conv"], conv_forward_im2col(x, w, b, {"stride": 2, "pad": 1})[0])
    np.testing.assert_array_equal(kept["pool"], max_pool_forward_fast(x, {"pool_height": 2, "pool_width": 2,
                                                                          "stride": 2})[0])
    assert kept["size"] == conv_output_size(227, 11, 4, 0) == 55
    assert kept["alexnet"] == sum(p.numel() for p in models.alexnet().parameters())


def _course_copy(tmp_path: Path) -> Path:
    root = tmp_path / "course"
    shutil.copytree(ROOT / "lib" / "cnnlab", root / "lib" / "cnnlab", ignore=shutil.ignore_patterns("__pycache__"))
    for a in course.assignment_ids(ROOT):
        (root / "solutions" / a).mkdir(parents=True)
        for nb in (ROOT / "solutions" / a).glob("*.ipynb"):
            shutil.copyfile(nb, root / "solutions" / a / nb.name)
    return root


def test_publishing_an_assignment_puts_its_answers_back(tmp_path):
    root = _course_copy(tmp_path)
    assert edition.publish("01_convolution", root) == ["01_convolution"]
    assert edition.published(root) == ["01_convolution"]
    out = tmp_path / "edition"
    manifest = edition.build(root, out=out)
    assert {w["assignment"] for w in manifest["withheld"]} == \
        {r.assignment for r in edition.regions(root)} - {"01_convolution"}
    probe = _probe(out)
    assert "cnnlab.layers.conv:conv_forward_naive" not in probe["withheld"]
    code = textwrap.dedent('''
        import sys, numpy as np
        sys.path.insert(0, sys.argv[1])
        from cnnlab.layers import conv_forward_naive
        rng = np.random.default_rng(1)
        x, w, b = rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
        print(np.abs(conv_forward_naive(x, w, b, {"stride": 1, "pad": 1})[0]).sum())''')
    got = subprocess.run([sys.executable, "-I", "-c", code, str(out)], capture_output=True, text=True, cwd=out)
    import numpy as np

    from cnnlab.layers import conv_forward_naive
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
    assert float(got.stdout) == pytest.approx(np.abs(conv_forward_naive(x, w, b, {"stride": 1, "pad": 1})[0]).sum())
    with pytest.raises(edition.EditionError, match="unknown assignment"):
        edition.publish("99_nothing", root)


@pytest.mark.parametrize("source, message", [
    ("# BEGIN ANSWER 01_convolution no_such_cell\ndef f():\n    pass\n# END ANSWER\n", "has no exercise"),
    ("# BEGIN ANSWER 77_x conv_forward\ndef f():\n    pass\n# END ANSWER\n", "unknown assignment"),
    ("# BEGIN ANSWER 01_convolution conv_forward\ndef f():\n    pass\n", "without END ANSWER"),
    ("def f():\n    pass\n# END ANSWER\n", "without BEGIN ANSWER"),
    ("# BEGIN ANSWER 01_convolution conv_forward\nX = 1\n# END ANSWER\n", "only def and class"),
    ("# BEGIN ANSWER 01_convolution conv_forward\n# END ANSWER\n", "empty answer region"),
    ("class A:\n    # BEGIN ANSWER 01_convolution conv_forward\n    def f(self):\n        pass\n"
     "    # END ANSWER\n", "must start the line"),
])
def test_malformed_markers_are_refused(tmp_path, source, message):
    root = _course_copy(tmp_path)
    (root / "lib" / "cnnlab" / "broken.py").write_text(source)
    with pytest.raises(edition.EditionError, match=message) as err:
        edition.regions(root)
    assert "cnnlab/broken.py:" in str(err.value)


_ESCAPES = r'''
import importlib, importlib.util, os, pkgutil, sys
res = {}
def full(path):   # only the full library has the answer markers
    try:
        return "# BEGIN ANSWER" in open(path).read()
    except OSError:
        return False
from cnnlab.layers import conv_forward_naive
try:
    conv_forward_naive(None, None, None, None); res["by name"] = "answer"
except NotImplementedError:
    res["by name"] = "stub"
alias = importlib.import_module("cnnlab.layers." + "co" + "nv")
res["importlib"] = "answer" if full(alias.__file__) else "stub"
cn = __import__("cnn" + "lab")
res["walk"] = [m.name for m in pkgutil.walk_packages(cn.__path__, "cnnlab.")
               if full(importlib.util.find_spec(m.name).origin or "")]
res["files"] = [p for p in list(sys.path) + [os.path.dirname(LIB)]
                if full(os.path.join(p, "cnnlab", "layers", "conv.py"))]
try:
    spec = importlib.util.spec_from_file_location("c2", os.path.join(LIB, "layers", "conv.py"))
    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); res["file spec"] = "answer"
except (OSError, ImportError) as exc:
    res["file spec"] = type(exc).__name__
sys.path.insert(0, os.path.dirname(LIB))
for k in [k for k in sys.modules if k.startswith("cnnlab")]:
    del sys.modules[k]
import cnnlab.layers.conv as again
res["sys.path edit"] = "answer" if full(again.__file__) else "stub"
'''


def test_graded_student_code_cannot_reach_the_full_library(tmp_path):
    if not sandbox.probe()["namespaces"]:
        pytest.skip("no mount namespaces here: the full library's files cannot be hidden (documented)")
    library, withheld = batch.student_library(ROOT)
    assert "cnnlab.layers.conv:conv_forward_naive" in withheld
    wd = tmp_path / "work"
    wd.mkdir()
    agent = sandbox.start_agent(wd, sandbox.Limits(), sorted(batch._full_library_dirs(ROOT)), tmp_path / "log",
                                library=library)
    conn = wire.AgentConnection(agent.rfd, agent.wfd, lambda: time.monotonic() + 60)
    try:
        reply, _ = conn.request({"op": "exec", "src": f"LIB = {str(LIB)!r}\n" + _ESCAPES})
        assert reply.get("ok") is True, reply
        res = conn.value({"op": "get", "name": "res"})
    finally:
        agent.kill()
    assert res == {"by name": "stub", "importlib": "stub", "walk": [], "files": [],
                   "file spec": "FileNotFoundError", "sys.path edit": "stub"}, res


def test_withheld_classes_cross_only_as_the_graders_own(tmp_path, monkeypatch):
    """A trusted model made of withheld blocks can be handed to student code and comes back
    changed in place; a block the student builds from the edition's stub is refused."""
    import torch

    from cnnlab.models.cifar import CifarResNet
    library, withheld = batch.student_library(ROOT)
    # The course keeps BasicBlock in the edition (its models are built from it; the exercise's
    # rules forbid it instead): withhold it here to check the boundary's rule for withheld classes.
    monkeypatch.setattr(wire, "WITHHELD", frozenset(withheld) | {"cnnlab.models.resnet:BasicBlock"})
    wd = tmp_path / "work"
    wd.mkdir()
    agent = sandbox.start_agent(wd, sandbox.Limits(), sorted(batch._full_library_dirs(ROOT)), tmp_path / "log",
                                library=library)
    conn = wire.AgentConnection(agent.rfd, agent.wfd, lambda: time.monotonic() + 60)
    try:
        reply, _ = conn.request({"op": "exec", "src": (
            "import torch\nfrom torch import nn\nfrom cnnlab.models.resnet import BasicBlock\n"
            "def zero_init_residual_(model):\n"
            "    for m in model.modules():\n"
            "        if type(m).__name__ == 'BasicBlock':\n"
            "            nn.init.zeros_(m.bn2.weight)\n"
            "    return model\n"
            "def forge():\n"
            "    b = BasicBlock.__new__(BasicBlock)\n"
            "    nn.Module.__init__(b)\n"
            "    b.conv1 = nn.Conv2d(4, 4, 3, padding=1, bias=False)\n"
            "    return b\n")})
        assert reply.get("ok") is True, reply
        torch.manual_seed(0)
        net = CifarResNet(depth=8)
        block = net.layer1[0]
        assert conn.value({"op": "get", "name": "zero_init_residual_"})(net) is net
        assert net.layer1[0] is block and float(block.bn2.weight.detach().abs().sum()) == 0.0
        assert net(torch.zeros(2, 3, 32, 32)).shape[0] == 2   # still the real blocks here
        with pytest.raises(wire.ProtocolError, match="withheld from the student edition"):
            conn.value({"op": "get", "name": "forge"})()
    finally:
        agent.kill()
