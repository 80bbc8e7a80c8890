"""Which instructor cells the trusted side must run: a conservative dependency analysis.

Instructor cells (set-up, demos, figures, experiments) run in the student's process, exactly as a
notebook runs them. On the trusted side a cell is needed only if a later trusted cell (a test, or
an instructor cell that is itself needed) could observe what it did: it **binds** a name such a
cell reads, it **may change** an object bound to such a name (the name is the target of an
attribute/item assignment, ``del`` or augmented assignment, the receiver of a method call, or an
argument of a call), or it calls a **global-state** function of a module (``torch.manual_seed``,
``np.random.seed``, ``torch.set_default_dtype``, ``warnings.filterwarnings``...). Names bound to
modules (``np``, ``torch``, ``plt``) and calls of built-ins (``print``, ``len``...) do not count
as changes. A cell that cannot be parsed is always needed.

Skipping the others keeps demos that train networks or time loops from running twice, and keeps
cells that only *show* a student object (``summarize(student_model)``) from failing where the
student's object cannot be used by library code on the trusted side.
"""
from __future__ import annotations

import ast
import functools
import re
import sys

from .agent import MAGIC, transform_magics

__all__ = ["cell_names", "needed_instructor_cells"]

_GLOBAL_STATE = re.compile(r"seed|^set_|^use_|filterwarnings|simplefilter|^rc$|rcParams|default_dtype")
_PURE_BUILTINS = {"print", "len", "repr", "str", "int", "float", "bool", "round", "abs", "min", "max", "sum",
                  "sorted", "list", "tuple", "dict", "set", "range", "enumerate", "zip", "isinstance",
                  "format", "type", "hasattr", "getattr", "any", "all", "id", "hash", "divmod", "pow"}


class CellNames:
    """What one cell does with global names (see module docstring)."""

    def __init__(self, reads: set, binds: set, changes: set, imports: set, global_state: set, ok: bool):
        self.reads, self.binds, self.changes, self.imports = reads, binds, changes, imports
        self.global_state, self.ok = global_state, ok


def _root(node):
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _targets(node, out: set, roots: set):
    """Names bound by an assignment target; roots of attribute/item targets go to ``roots``."""
    if isinstance(node, ast.Name):
        out.add(node.id)
    elif isinstance(node, (ast.Tuple, ast.List)):
        for e in node.elts:
            _targets(e, out, roots)
    elif isinstance(node, ast.Starred):
        _targets(node.value, out, roots)
    else:
        r = _root(node)
        if r:
            roots.add(r)


def _assigned(body) -> set:
    """Names a function body (or comprehension) binds in its own scope, nested scopes excluded."""
    out: set = set()
    todo = list(body)
    while todo:
        n = todo.pop()
        if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            out.add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(n.name)
            todo.extend(n.decorator_list)
            continue
        elif isinstance(n, ast.Lambda):
            continue
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            out.update((a.asname or a.name).split(".")[0] for a in n.names)
        todo.extend(ast.iter_child_nodes(n))
    return out


def _global_loads(node, local: frozenset, out: set) -> None:
    """Names ``node`` reads from the notebook's globals, ``local`` being this scope's own names."""
    if isinstance(node, ast.Name):
        if isinstance(node.ctx, ast.Load) and node.id not in local:
            out.add(node.id)
        return
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        a = node.args
        for d in [*a.defaults, *(x for x in a.kw_defaults if x is not None),
                  *getattr(node, "decorator_list", []), *(getattr(node, "returns", None) and [node.returns] or [])]:
            _global_loads(d, local, out)
        params = {x.arg for x in [*a.posonlyargs, *a.args, *a.kwonlyargs, *(v for v in (a.vararg, a.kwarg) if v)]}
        body = node.body if isinstance(node.body, list) else [node.body]
        declared = {n for b in body for x in ast.walk(b) if isinstance(x, ast.Global) for n in x.names}
        inner = frozenset((params | _assigned(body)) - declared)
        for b in body:
            _global_loads(b, inner, out)
        return
    if isinstance(node, ast.ClassDef):
        for d in [*node.bases, *node.decorator_list, *(k.value for k in node.keywords)]:
            _global_loads(d, local, out)
        inner = frozenset(local | _assigned(node.body))
        for b in node.body:
            _global_loads(b, inner, out)
        return
    if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
        inner = set(local)
        for g in node.generators:
            _global_loads(g.iter, frozenset(inner), out)
            inner |= _assigned([g.target])
            for cond in g.ifs:
                _global_loads(cond, frozenset(inner), out)
        for part in ([node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]):
            _global_loads(part, frozenset(inner), out)
        return
    for child in ast.iter_child_nodes(node):
        _global_loads(child, local, out)


def _seq(stmts, bound: set, reads: set) -> set:
    """Walk statements in order: global names loaded before the cell bound them go to ``reads``.
    Returns the names bound after the block. Bodies that may not run (if, for, while, try) bind
    nothing for the statements after them; a ``with`` body always runs."""
    bound = set(bound)

    def expr(node):
        loads: set = set()
        _global_loads(node, frozenset(), loads)
        reads.update(loads - bound)

    for st in stmts:
        if isinstance(st, (ast.For, ast.AsyncFor)):
            expr(st.iter)
            _seq(st.body, bound | _assigned([st.target]), reads)
            _seq(st.orelse, bound, reads)
        elif isinstance(st, (ast.While, ast.If)):
            expr(st.test)
            _seq(st.body, bound, reads)
            _seq(st.orelse, bound, reads)
        elif isinstance(st, (ast.With, ast.AsyncWith)):
            for item in st.items:
                expr(item.context_expr)
                if item.optional_vars is not None:
                    bound |= _assigned([item.optional_vars])
            bound = _seq(st.body, bound, reads)
        elif isinstance(st, ast.Try):
            _seq(st.body, bound, reads)
            for h in st.handlers:
                if h.type is not None:
                    expr(h.type)
                _seq(h.body, bound | ({h.name} if h.name else set()), reads)
            _seq(st.orelse, bound, reads)
            _seq(st.finalbody, bound, reads)
        else:
            expr(st)
            bound |= _assigned([st])
    return bound


def _free_reads(tree) -> set:
    """Global names a cell reads before the cell itself has bound them."""
    reads: set = set()
    _seq(tree.body, set(), reads)
    return reads


@functools.lru_cache(maxsize=4096)
def cell_names(src: str) -> CellNames:
    """Reads, binds and possible changes of global names in one cell's source."""
    try:
        if MAGIC.search(src):
            src = transform_magics(src)   # %magics and !commands, as the kernel sees them
        tree = ast.parse(src)
    except (SyntaxError, ValueError, ImportError):
        return CellNames(set(), set(), set(), set(), set(), False)
    binds, changes, imports, state_calls = set(), set(), set(), set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                name = (a.asname or a.name).split(".")[0]
                binds.add(name)
                if isinstance(node, ast.Import):
                    imports.add(name)
                elif node.module and not node.level and f"{node.module}.{a.name}" in sys.modules:
                    imports.add(name)   # ``from cnnlab import models``: a module
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            binds.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Delete, ast.For, ast.AsyncFor,
                               ast.With, ast.AsyncWith, ast.NamedExpr, ast.comprehension)):
            tgts = (node.targets if isinstance(node, (ast.Assign, ast.Delete)) else
                    [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.For, ast.AsyncFor,
                                                       ast.NamedExpr, ast.comprehension)) else
                    [i.optional_vars for i in node.items if i.optional_vars is not None])
            for t in tgts:
                _targets(t, binds, changes)
            if isinstance(node, (ast.AugAssign, ast.Delete)):
                for t in tgts:
                    r = _root(t)
                    if r:
                        changes.add(r)
        elif isinstance(node, ast.Global):
            binds.update(node.names)
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute):
                r = _root(func.value)
                if r:
                    changes.add(r)
                    if _GLOBAL_STATE.search(func.attr):
                        state_calls.add(r)
            pure = isinstance(func, ast.Name) and func.id in _PURE_BUILTINS
            if not pure:
                for a in [*node.args, *(k.value for k in node.keywords)]:
                    r = _root(a)
                    if r:
                        changes.add(r)
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
            r = _root(node)
            if r:
                changes.add(r)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            r = _root(node)
            if r:
                changes.add(r)
    return CellNames(_free_reads(tree), binds, changes, imports, state_calls, True)


def needed_instructor_cells(steps: list[dict], module_names=frozenset()) -> set[str]:
    """Ids of the ``instructor`` steps the trusted side must run (the others run only in the
    student's process). ``steps`` is a grading plan's list (``kind``, ``id``, ``src``);
    ``module_names``: names known to be bound to modules (their method calls change nothing)."""
    info = {s["id"]: cell_names(s.get("src", "")) for s in steps if s["kind"] in ("instructor", "test")}
    modules = set(module_names)
    for s in steps:
        if s["kind"] == "instructor":
            modules |= info[s["id"]].imports
    needed_names: set[str] = set()
    needed: set[str] = set()
    for s in reversed(steps):
        if s["kind"] == "test":
            needed_names |= info[s["id"]].reads
        elif s["kind"] == "instructor":
            c = info[s["id"]]
            touched = c.binds | (c.changes - modules)
            if not c.ok or c.global_state & modules or touched & needed_names:
                needed.add(s["id"])
                needed_names |= c.reads
    return needed
