"""Hidden tests give nothing away: no hidden-test failure message shows an expected value.

For every assignment, every assertion message (``assert ..., msg`` and ``AssertionError(msg)``)
in a hidden-test region, and in every helper function a hidden region calls, is checked: each
``{field}`` of an f-string may show the case (names bound from literals, loop variables over
them, seeded random draws, function parameters), shapes (``.shape``, ``.dtype``, ``len()``) and the
size of an error (``abs(...).max()``), never a value computed by a reference or by the student's
code. A line may state what else it shows with a ``# shows: ...`` comment (say, parameter
names), which a reviewer then sees. The oracle is the taint rule below, and the test is shown
to fail on the messages this project used to have (``got {got}, expected {want}``).
"""
from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

from autograder import course

ROOT = Path(__file__).resolve().parents[1]
SAFE_CALLS = {"int", "float", "tuple", "list", "range", "enumerate", "zip", "sorted", "len", "min", "max",
              "abs", "round", "str", "dict", "set", "bool", "reversed", "isinstance", "type"}
SHAPE_ATTRS = {"shape", "dtype", "ndim", "__name__"}


def _hidden_regions(src: str) -> list[str]:
    out, rest = [], src
    while "### BEGIN HIDDEN TESTS" in rest:
        rest = rest.split("### BEGIN HIDDEN TESTS", 1)[1]
        body, _, rest = rest.partition("### END HIDDEN TESTS")
        out.append(body)
    return out


def _parse(src: str):
    return ast.parse("\n".join(("pass" if l.lstrip().startswith(("%", "!")) else l) for l in src.splitlines()))


def _is_error_size(node) -> bool:
    names = {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)} | \
            {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    return "max" in names and "abs" in names


class _Taint(ast.NodeVisitor):
    """Names that hold values computed by calls other than seeded draws and plain conversions."""

    def __init__(self, params=(), pragma=()):
        self.tainted: set[str] = set()
        self.rngs: set[str] = set()
        self.params, self.pragma, self.leaks = set(params), set(pragma), []

    def expr_tainted(self, node) -> bool:
        if node is None:
            return False
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp)):
            # the elements are what is shown: a filter (`if got[k] != want[k]`) only selects them
            saved = set(self.tainted)
            try:
                for gen in node.generators:
                    self.bind(gen.target, self.expr_tainted(gen.iter))
                return self.expr_tainted(node.elt)
            finally:
                self.tainted = saved
        for n in ast.walk(node):
            if isinstance(n, (ast.ListComp, ast.SetComp, ast.GeneratorExp)) and n is not node:
                if self.expr_tainted(n):
                    return True
                continue
            if isinstance(n, ast.Name) and n.id in self.tainted:
                return True
            if isinstance(n, ast.Call):
                f = n.func
                if isinstance(f, ast.Name) and f.id in SAFE_CALLS:
                    continue
                if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in self.rngs:
                    continue
                if isinstance(f, ast.Attribute) and f.attr in ("default_rng", "Generator", "manual_seed"):
                    continue
                return True
        return False

    def bind(self, target, tainted: bool):
        for n in ast.walk(target):
            if isinstance(n, ast.Name):
                (self.tainted.add if tainted else self.tainted.discard)(n.id)

    def visit_Assign(self, node):
        value = node.value
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr == "default_rng":
            for t in node.targets:
                if isinstance(t, ast.Name):
                    self.rngs.add(t.id)
        tainted = self.expr_tainted(value) and not _is_error_size(value)
        for t in node.targets:
            self.bind(t, tainted)
        self.generic_visit(node)

    def _check(self, node, msg):
        if any(line in self.pragma for line in range(node.lineno, (node.end_lineno or node.lineno) + 1)):
            return
        tainted = self.tainted - self.params
        fields = [n.value for n in ast.walk(msg) if isinstance(n, ast.FormattedValue)]
        if not isinstance(msg, (ast.Constant, ast.JoinedStr)):
            fields.append(msg)
        for f in fields:
            self.leaks += [f"line {node.lineno}: {{{name}}}" for name in _field_leaks(f, tainted)]

    def visit_Assert(self, node):
        if node.msg is not None:
            self._check(node, node.msg)
        self.generic_visit(node)

    def visit_Raise(self, node):
        exc = node.exc
        if isinstance(exc, ast.Call) and exc.args and isinstance(exc.func, ast.Name) and exc.func.id == "AssertionError":
            self._check(node, exc.args[0])
        self.generic_visit(node)

    def visit_For(self, node):
        it = node.iter
        if isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id in ("zip", "enumerate") \
                and isinstance(node.target, ast.Tuple):
            args = it.args if it.func.id == "zip" else [ast.Constant(0), *it.args]
            for t, a in zip(node.target.elts, args):
                self.bind(t, self.expr_tainted(a) if it.func.id == "zip" or a is not args[0] else False)
        else:
            self.bind(node.target, self.expr_tainted(it))
        self.generic_visit(node)


def _field_leaks(field, tainted: set[str]) -> list[str]:
    if _is_error_size(field):
        return []
    leaks = []

    def walk(n, shielded=False):
        if isinstance(n, ast.Attribute) and n.attr in SHAPE_ATTRS:
            shielded = True
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in ("len", "type"):
            shielded = True
        if isinstance(n, ast.Name) and n.id in tainted and not shielded:
            leaks.append(n.id)
        for c in ast.iter_child_nodes(n):
            walk(c, shielded)
    walk(field)
    return leaks


def leaks_in(code: str, params: tuple = ()) -> list[str]:
    """'line N: {name}' for every message field of ``code`` that may show a computed value
    (names bound in order: a message sees the names as they are at that point)."""
    pragma = {i + 1 for i, l in enumerate(code.splitlines()) if "# shows:" in l}
    taint = _Taint(params, pragma)
    taint.visit(_parse(code))
    return taint.leaks


def _functions(nb) -> dict[str, ast.FunctionDef]:
    out = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or meta.get("solution"):
            continue
        try:
            tree = _parse(cell.source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                out[node.name] = (node, cell.source)
    return out


def _cases():
    for a in course.assignment_ids(ROOT):
        for path in sorted((ROOT / "solutions" / a).glob("*.ipynb")):
            yield pytest.param(path, id=f"{a}/{path.name}")


@pytest.mark.parametrize("path", list(_cases()))
def test_no_hidden_message_shows_an_expected_value(path):
    nb = nbformat.read(path, as_version=4)
    helpers = _functions(nb)
    found, checked = [], 0
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        for region in _hidden_regions(cell.source):
            checked += 1
            found += [f"{gid} (hidden) {x}" for x in leaks_in(region)]
            called = {n.func.id for n in ast.walk(_parse(region)) if isinstance(n, ast.Call)
                      and isinstance(n.func, ast.Name)}
            for name in sorted(called & set(helpers)):
                node, src = helpers[name]
                code = "\n".join(src.splitlines()[node.lineno - 1:node.end_lineno])
                body = "\n".join(l[4:] if l.startswith("    ") else l for l in code.splitlines()[1:])
                params = tuple(a.arg for a in node.args.args + node.args.kwonlyargs)
                found += [f"{gid}: helper {name}() {x}" for x in leaks_in(body, params=params)]
    assert checked, f"{path.name} has no hidden tests"
    assert not found, f"hidden-test messages that may show expected values: {found}"


@pytest.mark.parametrize("code, leaky", [
    ('got, want = f(W_), g(W_)\nassert got == want, f"hidden test: W={W_}: got {got}, expected {want}"', True),
    ('ref = lib(C_)\nassert mine(C_) == ref["conv"], f"hidden test: C={C_}, output {ref[\'size\']}"', True),
    ('for k, want in [(1, 2)]:\n    assert f(k) == want, f"k={k}"', False),
    ('rng = np.random.default_rng(1)\nW_ = int(rng.integers(1, 5))\nexpected = torch_conv(W_)\n'
     'assert out.shape == expected.shape, f"W={W_}: shape {out.shape}, expected {expected.shape}"', False),
    ('expected = ref(x)\nassert ok, f"differs by up to {np.abs(out - expected).max():.3g}"', False),
    ('for name, got, want in zip(("dx", "dw"), mine(), ref()):\n    assert ok, f"hidden test: wrong {name}"', False),
    ('for name, got, want in zip(("dx", "dw"), mine(), ref()):\n    assert ok, f"hidden test: {name} = {want}"', True),
])
def test_the_leak_rule_itself(code, leaky):
    assert bool(leaks_in(code)) == leaky, leaks_in(code)
