"""What an answer may use (cnnlab.rules and rules.toml): answer-key submissions earn nothing.

Oracles: the instructor's own solutions (they follow every rule and keep full marks), and a
corpus of answer keys on every assignment of the course: each answer cell takes one of the ROUTES
(an import by name or alias, ``importlib`` or ``__import__`` with a computed name, a ``pkgutil``
walk, reading and ``exec``-ing library source, a forbidden module reached through another module's
attributes) in front of its honest code, and for the first assignment also a run-time-only route
(names built with ``eval`` in an extra cell, which no static check can read) — each must lose
exactly the tests its rules name, with a message naming the API or the route.
"""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from autograder import course
from autograder.secure import batch, sandbox
from cnnlab import rules

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = course.assignment_ids(ROOT)
sys.path.insert(0, str(Path(__file__).parent))
from test_course_pipeline import make_submission, strip_markers  # noqa: E402


def _notebook(assignment):
    return nbformat.read(next((ROOT / "solutions" / assignment).glob("*.ipynb")), as_version=4)


def _cells(nb):
    return {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells if c.metadata.get("nbgrader")}


# -- the rules files ------------------------------------------------------------------------------
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_rules_name_real_answers_and_tests_and_the_release_has_them(assignment):
    rule_set = rules.load(ROOT / "solutions" / assignment)
    assert rule_set, f"{assignment} has no rules.toml: every assignment declares what its answers may not use"
    cells = _cells(_notebook(assignment))
    answers = {g for g, c in cells.items() if c.metadata["nbgrader"].get("solution") and c.cell_type == "code"}
    assert set(rule_set) == answers, f"rules.toml must have an entry per code answer: {set(rule_set) ^ answers}"
    for gid, r in rule_set.items():
        assert r.forbid and r.tests, gid
        for t in r.tests:
            assert t in cells and cells[t].metadata["nbgrader"].get("grade"), f"{gid}: {t} is not a test cell"
    released = ROOT / "assignments" / assignment / rules.RULES_FILE
    assert released.read_bytes() == (ROOT / "solutions" / assignment / rules.RULES_FILE).read_bytes()


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_notebook_explains_the_edition_and_its_rules(assignment):
    # the release's own words: the student edition, every default entry of rules.toml, the check
    release = nbformat.read(next((ROOT / "assignments" / assignment).glob("*.ipynb")), as_version=4)
    cell = next((c for c in release.cells if c.get("id") == "library_and_rules"), None)
    assert cell is not None and cell.cell_type == "markdown", f"{assignment}: no 'library_and_rules' cell"
    import tomllib
    forbid = tomllib.loads((ROOT / "solutions" / assignment / rules.RULES_FILE).read_text())["defaults"]["forbid"]
    missing = [f for f in forbid if f"`{f}`" not in cell.source]
    assert not missing, f"{assignment}: the notebook does not name {missing}, which its rules.toml forbids"
    for phrase in ("student edition", "rules.toml", "earns nothing", "python3 course.py check"):
        assert phrase in cell.source, (assignment, phrase)


@pytest.mark.parametrize("text, message", [
    ("[defaults]\nforbid = 'torch'\n", "must be a list of dotted names"),
    ("[answers.a]\nallow = ['torch']\n", "which \\[defaults\\] does not forbid"),
    ("[answer.a]\n", "unknown tables"),
    ("[answers.a]\nforbid = ['torch..nn']\n", "dotted names"),
    ("[answers.a\n", "not valid TOML"),
    ("[answers.a]\nnames = ['np.linalg']\n", "names must be a list of identifiers"),
])
def test_malformed_rules_are_refused_naming_the_file(tmp_path, text, message):
    (tmp_path / rules.RULES_FILE).write_text(text)
    with pytest.raises(rules.RulesError, match=message) as err:
        rules.load(tmp_path)
    assert str(tmp_path / rules.RULES_FILE) in str(err.value)


# -- the static check -----------------------------------------------------------------------------
NUMPY = ["torch", "scipy.signal", "numpy.lib.stride_tricks", "cnnlab.layers"]
ALIASES = {"np": "numpy", "torch": "torch", "F": "torch.nn.functional", "gradcheck": "cnnlab.gradcheck"}


@pytest.mark.parametrize("src, needle", [
    ("def f(x):\n    return F.conv2d(x, x)", "F.conv2d"),                                   # setup alias
    ("import torch.nn.functional as G\ndef f(x):\n    return G.conv2d(x, x)", "torch.nn.functional"),
    ("from scipy.signal import correlate2d as c\n", "scipy.signal"),
    ("def f(x):\n    return np.lib.stride_tricks.sliding_window_view(x, 3)", "sliding_window_view"),
    # reaching numpy's stride tricks through an allowed module's attributes
    ("def f(x):\n    return gradcheck.np.lib.stride_tricks.sliding_window_view(x, 3)", "numpy.lib.stride_tricks"),
    ("from cnnlab.layers.conv import conv_forward_naive\n", "cnnlab.layers"),
    ("def f(x):\n    return getattr(np, 'co' + 'nvolve')(x, x)", "computed attribute name"),
    ("def f():\n    return __import__('tor' + 'ch')", "__import__"),
    ("import importlib\nm = importlib.import_module('torch')", "importlib"),
    ("import pkgutil\n", "pkgutil"),
    ("def f():\n    return eval('1')", "eval"),
    ("def f(g):\n    return g.__globals__", "__globals__"),
    ("def f():\n    return open('/x').read()", "open"),
    ("import sys\nsys.modules['cnnlab.layers']", "sys"),
])
def test_static_check_finds_the_forbidden_use(src, needle):
    found = rules.check_source(src, NUMPY, ALIASES)
    assert found and needle in found[0], found


@pytest.mark.parametrize("src", [
    "def f(x, w):\n    out = np.zeros((2, 2)) + np.pi\n    return out.shape, np.sum(x * w), x.T @ w",
    "def f(m, name):\n    setattr(m, name, 1)\n    return getattr(m, 'weight')",
    "def f(x):\n    return gradcheck.rel_error(x, x)",
    "%timeit 1\ndef f(x):\n    np = 3\n    return np",
])
def test_static_check_passes_honest_code(src):
    assert rules.check_source(src, NUMPY, ALIASES) == []


SELF_CONTAINED = ("np", "train_one_epoch")


@pytest.mark.parametrize("src, offender", [
    ("def f(X, y):\n    return np.concatenate([X, EXTRA_X])", "EXTRA_X"),      # data an added cell prepared
    ("def f(X):\n    return helper(X)", "helper"),                            # a function an added cell defined
    ("model = make()\n", "make"),
])
def test_self_contained_answer_reads_only_the_listed_names(src, offender):
    found = rules.check_source(src, NUMPY, ALIASES, names=SELF_CONTAINED)
    assert found and f"reads the global name {offender!r}" in found[0] and "np, train_one_epoch" in found[0], found
    assert rules.check_source(src, NUMPY, ALIASES) == [], "without names the rule does not apply"


@pytest.mark.parametrize("src", [
    "def f(X, y, seed=0):\n    import math\n    g = [math.sqrt(v) for v in range(3)]\n    return train_one_epoch(X, y, g)",
    "class Net:\n    pass\ndef f(X):\n    try:\n        return Net(), np.zeros(1), len(X)\n    except ValueError as e:\n        print(e)",
    "def f(X, y):\n    for a, b in zip(X, y):\n        total = a + b\n    return (lambda k: k + total)(1)",
])
def test_self_contained_answer_may_use_its_own_names_and_builtins(src):
    assert rules.check_source(src, NUMPY, ALIASES, names=SELF_CONTAINED) == []


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_instructor_solutions_follow_their_rules(assignment):
    nb = _notebook(assignment)
    aliases = rules.notebook_aliases(c.source for c in nb.cells if c.cell_type == "code")
    for gid, r in rules.load(ROOT / "solutions" / assignment).items():
        assert rules.check_source(strip_markers(_cells(nb)[gid].source), r.forbid, aliases, r.names) == [], gid


# -- the runtime monitor --------------------------------------------------------------------------
def test_monitor_sees_calls_from_answer_code_whatever_the_route():
    import numpy as np
    import torch
    monitor = rules.Monitor({"conv": ["torch", "numpy.lib.stride_tricks"], "ok": ["torch"]})
    ns = {"__name__": "__main__", "np": np}
    ns["helper"] = eval("__import__('tor' + 'ch').from_numpy")        # noqa: S307 (built at run time)
    ns["window"] = getattr(np.lib, "stride_" + "tricks").sliding_window_view
    exec(compile(textwrap.dedent("""
        def conv(x):
            t = helper(x)                      # a torch builtin reached by a computed name
            return window(x, 2), t
        """), monitor.filename("conv"), "exec"), ns)
    exec(compile(textwrap.dedent("""
        def ok(x, t):
            return len(x), np.sum(x), t.sum(), t.shape   # methods of a tensor it was handed: fine
        """), monitor.filename("ok"), "exec"), ns)
    sys.setprofile(monitor.profile)
    try:
        ns["conv"](np.arange(4.0))
        ns["ok"](np.arange(4.0), torch.ones(3))
    finally:
        sys.setprofile(None)
    assert set(monitor.violations) == {"conv"}, monitor.violations
    assert "torch" in monitor.violations["conv"] and "called at run time" in monitor.violations["conv"]


# -- graded answer keys: every assignment ---------------------------------------------------------
def _import_line(forbidden: str) -> str:
    module, _, name = forbidden.rpartition(".")
    return f"import {forbidden} as _answer_key" if not module else f"from {module} import {name} as _answer_key"


def _through_attributes(rule) -> tuple[str, tuple[str, ...]]:
    """A forbidden module reached as an attribute of an allowed one (``np.lib.stride_tricks``,
    ``cnnlab.models``); the first forbidden import by name where every forbidden entry's package is."""
    for f in rule.forbid:
        top, _, rest = f.partition(".")
        if rest and top not in rule.forbid:
            return f"import {top} as _k_top\n_answer_key = _k_top.{rest}", (f,)
    return _import_line(rule.forbid[0]), (rule.forbid[0],)


# The routes an answer key takes to the library or a forbidden API: (name, code put before the
# honest answer, fragments one of which the message must name). Each is harmless when it runs, so
# only the rules can take the points away.
ROUTES = [
    ("import by name", lambda r: (_import_line(r.forbid[0]), (r.forbid[0],))),
    ("importlib with a computed name", lambda r: (
        'import importlib as _k_il\n_answer_key = _k_il.import_module("ma" + "th")', ("importlib",))),
    ("__import__ with a computed name", lambda r: ('_answer_key = __import__("ma" + "th")', ("__import__",))),
    ("pkgutil walk", lambda r: ("import pkgutil as _k_pk\n_answer_key = [m.name for m in _k_pk.iter_modules()]",
                                ("pkgutil",))),
    ("reading and exec-ing library source", lambda r: (
        'import cnnlab as _k_pkg\n_answer_key = {}\n'
        'exec(open(_k_pkg.__path__[0] + "/shapes.py").read(), _answer_key)', ("exec", "open", "forbids (cnnlab)"))),
    ("through another module's attributes", _through_attributes),
]


def answer_key_routes(assignment: str, rule_set: dict) -> dict[str, tuple[str, str, tuple[str, ...]]]:
    """``{answer: (route name, code, fragments)}``: the answers take the routes in turn (shifted per
    assignment, so every assignment sees at least five routes and every route four assignments)."""
    shift = ASSIGNMENTS.index(assignment)
    out = {}
    for i, (gid, r) in enumerate(rule_set.items()):
        name, make = ROUTES[(i + shift) % len(ROUTES)]
        out[gid] = (name, *make(r))
    return out


@pytest.fixture(scope="session")
def graded_keys(tmp_path_factory):
    """Each assignment graded once: the instructor's answers each taking one of the ROUTES to an
    answer key (plus, for the first assignment, run-time-only routes). The instructor's answers
    alone get full marks under the same rules in tests/test_course_pipeline.py (student "full")."""
    out = {}
    for assignment in ASSIGNMENTS:
        d = tmp_path_factory.mktemp(f"keys-{assignment}")
        src = next((ROOT / "solutions" / assignment).glob("*.ipynb"))
        release = nbformat.read(ROOT / "assignments" / assignment / src.name, as_version=4)
        source = _notebook(assignment)
        rule_set = rules.load(ROOT / "solutions" / assignment)
        cells = _cells(source)
        routes = answer_key_routes(assignment, rule_set)
        keyed = {gid: f"{code}\n{strip_markers(cells[gid].source)}" for gid, (_, code, _) in routes.items()}
        subs = {"keys": make_submission(release, source, answers=keyed)}
        if assignment == ASSIGNMENTS[0]:   # a key no static check can read: built by eval in an extra cell
            subs["run-time"] = make_submission(
                release, source, extra_first='key = eval("__imp" + "ort__")("tor" + "ch").from_numpy',
                answers={gid: strip_markers(cells[gid].source) + "\nimport numpy as _NP\n_ = key(_NP.zeros(1))\n"
                         for gid in rule_set})
        if "challenge" in rule_set:   # the held-out digits loaded by an added cell, read by the answer
            cheat = strip_markers(cells["challenge"].source).replace(
                "    torch.manual_seed(seed)\n",
                "    X, y = np.concatenate([X, LEAKED_X]), np.concatenate([y, LEAKED_Y])\n    torch.manual_seed(seed)\n", 1)
            assert "LEAKED_X" in cheat
            subs["added-cell-data"] = make_submission(
                release, source, fill=[], answers={"challenge": cheat},
                extra_first="from cnnlab.data import challenge_heldout\nLEAKED_X, LEAKED_Y = challenge_heldout(seed=1)")
        for name, nb in subs.items():
            (d / "in" / name / assignment).mkdir(parents=True)
            nbformat.write(nb, d / "in" / name / assignment / src.name)
        # generous limits: the suite runs this beside other tests on 2 cores (A4 trains a network)
        limits = sandbox.Limits(cell_timeout=300, notebook_timeout=1800)
        out[assignment] = (rule_set, routes, batch.grade_batch(assignment, root=ROOT, submissions=d / "in", workers=2,
                                                       out=d / "out", limits=limits))
    return out


# graded_keys is built once: the whole file runs on one xdist worker.
pytestmark = [pytest.mark.notebook, pytest.mark.xdist_group("answer_keys")]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_answer_keys_earn_nothing(graded_keys, assignment):
    rule_set, routes, results = graded_keys[assignment]
    keys = results["keys"]
    unruled = {t for t, v in keys["max_scores"].items() if keys["scores"].get(t) is not None} - {
        t for r in rule_set.values() for t in r.tests} - set(rule_set)
    # the honest code behind each route runs: tests no rule names keep their marks
    assert all(keys["scores"][t] == keys["max_scores"][t] for t in unruled), {t: keys["scores"][t] for t in unruled}
    ruled = {t for r in rule_set.values() for t in r.tests}
    assert all(keys["scores"][t] == 0 for t in ruled), {t: keys["scores"][t] for t in ruled}
    for gid, (route, _, fragments) in routes.items():
        assert any(m.startswith(f"answer {gid!r} ") and "it earns nothing in" in m and any(f in m for f in fragments)
                   for m in keys["messages"]), (
            gid, route, fragments, keys["messages"])
    if "added-cell-data" in results:
        leak = results["added-cell-data"]
        tests = rule_set["challenge"].tests
        assert all(leak["scores"][t] == 0 for t in tests), {t: leak["scores"][t] for t in tests}
        assert any(m.startswith("answer 'challenge' reads the global name 'LEAKED_X'") for m in leak["messages"]), \
            leak["messages"]
    if "run-time" in results:
        rt = results["run-time"]
        assert all(rt["scores"][t] == 0 for t in ruled), {t: rt["scores"][t] for t in ruled}
        assert sum("called at run time" in m for m in rt["messages"]) == len(rule_set), rt["messages"]
