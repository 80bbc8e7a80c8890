"""What an exercise's answer may not use: the rules file, a static check and a runtime monitor.

Each assignment folder may hold ``rules.toml``::

    [defaults]                        # for every answer of this assignment
    forbid = ["torch", "scipy.signal", "numpy.lib.stride_tricks", "cnnlab"]

    [answers.conv_forward]            # the answer cell's nbgrader grade id
    tests = ["test_conv_forward"]     # the test cells its points come from (default: test_<id>)
    forbid = ["numpy.convolve"]       # added to the defaults
    allow = ["cnnlab.gradcheck"]      # taken out of the defaults (exact entries)

    [answers.challenge]
    names = ["np", "torch", "nn", "F"]  # the only outside names the answer may read (optional)

A forbidden entry is a dotted name: a module forbids everything in it and under it
(``"torch"`` covers ``torch.nn.functional.conv2d``), a function or class forbids itself.
``names`` makes an answer self-contained: besides the built-ins and what the answer defines
itself, it may read only the listed global names (the setup cell's imports, other answers), so
it cannot pick up data that a cell the student added prepared (the open challenge trains on the
images it is handed, nothing else).

Two checks enforce it, with the same messages:

* :func:`check_source` (static, on the answer cell's source and the notebook's imports): names and
  attribute chains are resolved through every import alias of the notebook (``import numpy as
  np`` ... ``np.lib.stride_tricks.sliding_window_view``) and, for the course's own packages, through
  the real objects (``cnnlab.layers.conv.np.lib`` is numpy's ``lib``: reaching a module through
  another module's attributes does not hide it). Imports of a forbidden module are refused, and so
  is every way of computing a name the check cannot read: ``__import__``, ``importlib``,
  ``getattr``/``setattr`` with a computed name, ``eval``/``exec``/``compile``, ``globals()``,
  ``vars()``, ``open()``, frame and code attributes (``__dict__``, ``__globals__``, ``f_back``...)
  and the modules ``sys``, ``gc``, ``inspect``, ``ctypes``, ``pickle``, ``pkgutil``, ``builtins``.
* :class:`Monitor` (runtime, in the process that runs student code): a profile hook sees every
  call made *directly from the answer's code* (functions it defines, at any depth of its own
  calls) and reports a call to a forbidden function, class or module member, whatever name or
  route it was reached by. Methods of objects the tests hand to the answer (a ``ModelSummary``'s
  rows, a model's ``parameters()``) are not calls into a forbidden API and are allowed.

Not covered (documented in autograder/README.md): a forbidden C function called by another C
function without Python in between (``map(torch.conv2d, ...)``) is invisible to the monitor, and
the static check refuses it only when the name is written in the answer; code outside the answer
cells (an extra cell a student adds) is not restricted, but what the answer calls through it is.
"""
from __future__ import annotations

import ast
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["RULES_FILE", "Rule", "RulesError", "load", "check_source", "Monitor", "ALWAYS_FORBIDDEN"]

RULES_FILE = "rules.toml"

#: Modules an answer under rules may never touch: they compute names or reach frames and code.
ALWAYS_FORBIDDEN = ("sys", "gc", "inspect", "ctypes", "importlib", "pkgutil", "builtins", "pickle",
                    "marshal", "copyreg", "runpy", "zipimport", "code", "codeop", "types", "operator",
                    "functools", "threading", "_thread", "os", "io", "pathlib", "subprocess", "signal")
_COMPUTED = {"__import__", "eval", "exec", "compile", "globals", "locals", "vars", "open", "breakpoint",
             "memoryview", "__build_class__", "help", "input"}
_NAMED_ONLY = {"getattr", "hasattr"}     # reading by a computed name (setattr only writes)
_FRAME_ATTRS = {"__dict__", "__globals__", "__builtins__", "__subclasses__", "__import__", "__code__",
                "__closure__", "__getattribute__", "__loader__", "__spec__", "__module__", "__bases__",
                "__mro__", "__base__", "__self__", "__func__", "__wrapped__", "__reduce__", "__reduce_ex__",
                "__class__", "__defaults__", "__kwdefaults__", "__qualname__", "__objclass__",
                "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "tb_frame", "tb_next",
                "gi_frame", "cr_frame", "ag_frame", "gi_code", "co_code", "cell_contents", "_implementation"}
# What the runtime monitor always refuses (builtins such as len() are fine at run time).
_RUNTIME_ALWAYS = ("sys", "gc", "inspect", "ctypes", "importlib", "pkgutil", "pickle", "marshal", "runpy",
                   "zipimport", "_thread", "threading", "os", "signal", "subprocess")
# Packages whose objects the static check may import to follow attribute chains.
_RESOLVABLE = ("numpy", "scipy", "torch", "cnnlab", "math")


class RulesError(ValueError):
    """A malformed rules file (the message names the file, the entry and what is wrong)."""


@dataclass(frozen=True)
class Rule:
    """What one answer cell may not use.

    ``answer``: its grade id; ``tests``: grade ids of the test cells its points come from;
    ``forbid``: dotted names (modules, functions, classes); ``names``: None, or the only global
    names (besides built-ins and its own) the answer may read."""
    answer: str
    tests: tuple[str, ...]
    forbid: tuple[str, ...] = field(default_factory=tuple)
    names: tuple[str, ...] | None = None


def _names(value, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v and all(p.isidentifier() for p in v.split("."))
                                              for v in value):
        raise RulesError(f"{where} must be a list of dotted names like 'torch.nn.functional', got {value!r}")
    return value


def load(folder: str | Path) -> dict[str, Rule]:
    """The rules of one assignment folder, ``{answer grade id: Rule}`` ({} when it has no rules file).

    Raises RulesError naming the file and the entry when the file is malformed."""
    path = Path(folder) / RULES_FILE
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{path}: not valid TOML ({exc})") from None
    unknown = set(data) - {"defaults", "answers"}
    if unknown:
        raise RulesError(f"{path}: unknown tables {sorted(unknown)}; expected [defaults] and [answers.<grade id>]")
    defaults = data.get("defaults", {})
    if set(defaults) - {"forbid"}:
        raise RulesError(f"{path}: [defaults] takes only 'forbid', got {sorted(defaults)}")
    base = _names(defaults.get("forbid", []), f"{path}: [defaults] forbid")
    out = {}
    for gid, entry in data.get("answers", {}).items():
        where = f"{path}: [answers.{gid}]"
        if not isinstance(entry, dict) or set(entry) - {"tests", "forbid", "allow", "names"}:
            raise RulesError(f"{where} takes 'tests', 'forbid', 'allow' and 'names', got {entry!r}")
        allow = _names(entry.get("allow", []), where + " allow")
        missing = [a for a in allow if a not in base]
        if missing:
            raise RulesError(f"{where} allows {missing}, which [defaults] does not forbid")
        forbid = [f for f in base if f not in allow] + _names(entry.get("forbid", []), where + " forbid")
        tests = _names(entry.get("tests", [f"test_{gid}"]), where + " tests")
        names = entry.get("names")
        if names is not None and not (isinstance(names, list) and all(isinstance(n, str) and n.isidentifier()
                                                                      for n in names)):
            raise RulesError(f"{where} names must be a list of identifiers like 'np', got {names!r}")
        out[gid] = Rule(gid, tuple(tests), tuple(dict.fromkeys(forbid)),
                        None if names is None else tuple(names))
    return out


def _match(dotted: str, forbid) -> str | None:
    """The forbidden entry ``dotted`` falls under. ``forbid``: entries, or a mapping from names
    (entries and the names their objects are defined under) to entries."""
    for f in forbid:
        if dotted == f or dotted.startswith(f + "."):
            return forbid[f] if isinstance(forbid, dict) else f
    return None


def _expand(forbid) -> dict[str, str]:
    """Each entry and, where it can be resolved, the name its object is defined under
    (``cnnlab.analysis.training_memory`` is defined as ``cnnlab.analysis.memory.training_memory``)."""
    out = {}
    for f in forbid:
        out[f] = f
        last = None
        for prefix, obj in _Resolver({}).objects(f):
            last = (prefix, obj)
        if last and last[0] == f:
            canon = _canonical(last[1])
            if canon and canon != f:
                out.setdefault(canon, f)
    return out


def _canonical(obj) -> str | None:
    """The dotted name an object is defined under: a module's name, a function's or class's
    ``module.qualname``, a C function's module."""
    t = type(obj)
    if t.__name__ == "module":
        return obj.__name__
    if not callable(obj):
        return None     # a constant (np.pi) or an instance: not an API
    impl = getattr(obj, "_implementation", None)      # numpy's array-function dispatchers
    target = impl if impl is not None else obj
    mod = getattr(target, "__module__", None)
    qual = getattr(target, "__qualname__", None) or getattr(target, "__name__", None)
    if isinstance(mod, str) and isinstance(qual, str):
        return f"{mod}.{qual}"
    if isinstance(mod, str):
        return mod
    return None


def _violation(what: str, forbidden: str) -> str:
    if forbidden in ALWAYS_FORBIDDEN:
        return f"uses {what}: answers under rules may not use the module {forbidden!r}"
    return f"uses {what}, which this exercise forbids ({forbidden})"


class _Resolver:
    """Follows ``alias.attr.attr`` through the real objects where that is safe."""

    def __init__(self, aliases: dict[str, str]):
        self.aliases = aliases

    def objects(self, dotted: str):
        """(prefix, object) for each resolvable prefix of ``dotted``; nothing for other packages."""
        parts = dotted.split(".")
        if parts[0] not in _RESOLVABLE:
            return
        import importlib
        obj, k = None, 0
        for k in range(len(parts), 0, -1):            # the longest importable module prefix
            name = ".".join(parts[:k])
            try:
                obj = importlib.import_module(name)
                break
            except Exception:  # noqa: BLE001
                continue
        if obj is None:
            return
        yield ".".join(parts[:k]), obj
        for i in range(k, len(parts)):
            try:
                obj = getattr(obj, parts[i])
            except Exception:  # noqa: BLE001
                return
            yield ".".join(parts[:i + 1]), obj


def _imports(tree) -> dict[str, str]:
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                out[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                if a.name != "*":
                    out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _parse(src: str):
    lines = [("pass  # " + l) if l.lstrip().startswith(("%", "!")) else l for l in src.splitlines()]
    return ast.parse("\n".join(lines))


def notebook_aliases(sources) -> dict[str, str]:
    """Import aliases bound by the notebook's cells (``{"np": "numpy", "F": "torch.nn.functional"}``)."""
    out = {}
    for src in sources:
        try:
            out.update(_imports(_parse(src)))
        except SyntaxError:
            continue
    return out


def _chain(node) -> tuple[str, list[str]] | None:
    attrs = []
    while isinstance(node, ast.Attribute):
        attrs.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return node.id, attrs[::-1]
    return None


def _free_globals(tree) -> list[str]:
    """Names the code reads but never binds itself (not counting built-ins), in order of use."""
    bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del))}
    bound |= {n.arg for n in ast.walk(tree) if isinstance(n, ast.arg)}
    bound |= {n.name for n in ast.walk(tree)
              if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.ExceptHandler)) and n.name}
    bound |= set(_imports(tree))
    bound |= {a.asname or a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
              for a in n.names}
    builtin = set(dir(__builtins__) if not isinstance(__builtins__, dict) else __builtins__)
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id not in bound | builtin and n.id not in out:
            out.append(n.id)
    return out


def check_source(src: str, forbid, aliases: dict[str, str] | None = None, names=None) -> list[str]:
    """Static check of one answer cell: the list of violations (empty when it follows the rules).

    Args:
        src: the answer cell's source (str).
        forbid: the rule's forbidden dotted names (iterable of str).
        aliases: import aliases of the rest of the notebook (:func:`notebook_aliases`).
        names: None, or the only global names (iterable of str) the answer may read besides
            built-ins and the names it binds itself (the rule's ``names``).
    """
    forbid = _expand(tuple(forbid) + ALWAYS_FORBIDDEN)
    allowed = None if names is None else set(names)
    try:
        tree = _parse(src)
    except SyntaxError:
        return []    # it cannot run: it earns nothing anyway
    names = dict(aliases or {})
    names.update(_imports(tree))
    assigned = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del))}
    assigned |= {n.arg for n in ast.walk(tree) if isinstance(n, ast.arg)}
    resolver = _Resolver(names)
    found: dict[str, str] = {}     # one message per forbidden entry (the first use)

    def report(msg, key=None):
        found.setdefault(key or msg, msg)

    def dotted_check(dotted: str, shown: str):
        hit = _match(dotted, forbid)
        if hit:
            return report(_violation(shown, hit), hit)
        for prefix, obj in resolver.objects(dotted):
            canon = _canonical(obj)
            hit = canon and _match(canon, forbid)
            if hit:
                return report(_violation(f"{shown} (that is {canon})" if canon != dotted else shown, hit), hit)

    if allowed is not None:
        for name in _free_globals(tree):
            if name not in allowed:
                report(f"reads the global name {name!r}, which it does not define and the exercise does not "
                       f"list (it may read {', '.join(sorted(allowed))}, the built-ins and its own names)", "names")
                break
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                dotted_check(a.name, f"import {a.name}")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                report("uses a relative import")
                continue
            for a in node.names:
                dotted_check(f"{node.module}.{a.name}" if a.name != "*" else node.module,
                             f"from {node.module} import {a.name}")
        elif isinstance(node, ast.Attribute):
            if node.attr in _FRAME_ATTRS:
                report(f"uses the attribute {node.attr!r}: answers under rules may not reach frames, "
                       "code or namespaces")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            fn = node.func.id
            if fn in _COMPUTED and fn not in assigned:
                report(f"calls {fn}(): answers under rules may not compute names or run code from text")
            elif fn in _NAMED_ONLY and fn not in assigned:
                if len(node.args) < 2 or not isinstance(node.args[1], ast.Constant) or \
                        not isinstance(node.args[1].value, str):
                    report(f"calls {fn}() with a computed attribute name")
                elif node.args[1].value in _FRAME_ATTRS:
                    report(f"uses the attribute {node.args[1].value!r} through {fn}()")
        if isinstance(node, (ast.Attribute, ast.Name)) and isinstance(getattr(node, "ctx", None), ast.Load):
            chain = _chain(node)
            if chain is None:
                continue
            root, attrs = chain
            if root in names and (root not in assigned or root in _imports(tree)):
                dotted_check(".".join([names[root], *attrs]), ".".join([root, *attrs]))
    return list(found.values())


def check_answers(answers: dict[str, str], forbid: dict[str, list[str]], sources=(), names=None) -> dict[str, str]:
    """Static check of a whole notebook: ``{answer grade id: its first violation}``.

    The one static check both ``grade secure`` and the student's own check (:mod:`cnnlab.selfcheck`)
    apply, so they agree on every answer.

    Args:
        answers: ``{grade id: source}`` of the notebook's answer cells (str -> str).
        forbid: ``{grade id: forbidden dotted names}`` (a :func:`load` result's ``forbid`` lists).
        sources: the source of every code cell of the notebook (iterable of str), for import aliases.
        names: ``{grade id: the rule's names, or None}`` (default: no answer restricted).
    """
    aliases = notebook_aliases(sources)
    names = names or {}
    out = {}
    for gid, src in answers.items():
        if gid in forbid:
            found = check_source(src, forbid[gid], aliases, names.get(gid))
            if found:
                out[gid] = found[0]
    return out


def broken_message(answer: str, violation: str, tests) -> str:
    """The message for an answer that broke its rules, the same in grading and in the self-check:
    ``answer 'conv_forward' uses torch, which this exercise forbids (torch): it earns nothing in
    test_conv_forward``."""
    tests = list(tests)
    return f"answer {answer!r} {violation}: it earns nothing in {', '.join(tests) or 'its tests'}"


class Monitor:
    """Runtime check in the process that runs student code: calls made from answer code.

    ``rules``: ``{answer grade id: forbidden dotted names}``. Answer cells must be compiled with
    :meth:`filename` as their file name. ``violations`` maps an answer to its first violation."""

    PREFIX = "<answer "

    def __init__(self, rules: dict[str, list[str]]):
        self.rules = {gid: _expand(tuple(f) + _RUNTIME_ALWAYS) for gid, f in rules.items()}
        self.violations: dict[str, str] = {}
        self._seen: dict = {}

    @classmethod
    def filename(cls, gid: str) -> str:
        """The file name to compile answer ``gid`` under."""
        return f"{cls.PREFIX}{gid}>"

    def _answer(self, code) -> str | None:
        fn = code.co_filename
        if fn.startswith(self.PREFIX):
            return fn[len(self.PREFIX):-1]
        return None

    def _check(self, gid: str, key, describe):
        cached = self._seen.get((gid, key))
        if cached is None:
            canon = describe()
            hit = _match(canon, self.rules[gid]) if canon else None
            cached = (hit, canon)
            self._seen[(gid, key)] = cached
        hit, canon = cached
        if hit and gid not in self.violations:
            self.violations[gid] = _violation(f"{canon} (called at run time)", hit)

    def profile(self, frame, event, arg):
        """The ``sys.setprofile`` hook."""
        if event == "c_call":
            gid = self._answer(frame.f_code)
            if gid is None or gid not in self.rules:
                return
            owner = getattr(arg, "__self__", None)
            if owner is not None and type(owner).__name__ != "module" and not isinstance(owner, type):
                return    # a method of an object the answer was handed (or made)
            self._check(gid, id(arg), lambda: _canonical(arg))
        elif event == "call":
            back = frame.f_back
            if back is None:
                return
            gid = self._answer(back.f_code)
            if gid is None or gid not in self.rules or self._answer(frame.f_code):
                return
            code = frame.f_code
            parts = code.co_qualname.split(".")
            if len(parts) >= 2 and parts[-2] != "<locals>" and parts[-1] not in ("__init__", "__new__"):
                return    # a method: the object was handed to the answer; constructing a class is not
            if _called_inside_c(back, code):
                return    # a C function the answer called runs its own Python helper
            self._check(gid, code, lambda: _code_owner(frame, code))


_CALLABLE_LOADS = ("LOAD_NAME", "LOAD_GLOBAL", "LOAD_FAST", "LOAD_DEREF", "LOAD_ATTR", "LOAD_METHOD")


def _called_object(frame):
    """The object the instruction at ``frame.f_lasti`` (a CALL) calls, when the answer's code names
    it by a plain name or a chain of module attributes (``np.random.default_rng``); else None."""
    import dis
    import types

    try:
        ins = list(dis.get_instructions(frame.f_code))
        i = next(k for k, x in enumerate(ins) if x.offset == frame.f_lasti)
    except (StopIteration, TypeError, ValueError):
        return None
    if ins[i].opname != "CALL" or not isinstance(ins[i].arg, int):
        return None
    need, j = ins[i].arg, i - 1
    while j >= 0 and need > 0:          # walk back over the argument values
        x = ins[j]
        if x.opname in ("PRECALL", "KW_NAMES", "CACHE"):
            j -= 1
            continue
        if x.is_jump_target or "JUMP" in x.opname or x.opname.startswith("POP_JUMP"):
            return None
        try:
            need -= dis.stack_effect(x.opcode, x.arg, jump=False) if x.opcode >= dis.HAVE_ARGUMENT \
                else dis.stack_effect(x.opcode, jump=False)
        except ValueError:
            return None
        j -= 1
    while j >= 0 and ins[j].opname in ("PRECALL", "KW_NAMES", "CACHE"):
        j -= 1
    if need != 0 or j < 0:
        return None
    chain, k = [], j                    # the callable: a name and the module attributes after it
    while k >= 0 and ins[k].opname in ("LOAD_ATTR", "LOAD_METHOD"):
        chain.insert(0, ins[k].argval)
        k -= 1
    if k < 0 or ins[k].opname not in _CALLABLE_LOADS[:4] or ins[k].is_jump_target:
        return None
    name = ins[k].argval
    ns = [frame.f_locals, frame.f_globals, getattr(frame.f_globals.get("__builtins__"), "__dict__",
                                                   frame.f_globals.get("__builtins__") or {})]
    obj = next((d[name] for d in ns if isinstance(d, dict) and name in d), None)
    for attr in chain:                  # only through real modules: no code of an object runs here
        if type(obj) is not types.ModuleType:
            return None
        obj = obj.__dict__.get(attr)
    return obj


def _called_inside_c(back, code) -> bool:
    """Whether the Python function of ``code`` was called by a compiled library function that the
    answer's frame ``back`` called (numpy's Cython ``default_rng`` calling ``threading.RLock``),
    not by the answer itself. Only types are inspected (no attribute of a student's object is
    read here, where no call is monitored): a Python function, a class, a wrapper such as
    ``functools.partial``, a builtin handed a callable (``sorted``, ``map``) or a call that cannot
    be read all count as the answer's own call."""
    import types

    obj = _called_object(back)
    if obj is None or isinstance(obj, (types.FunctionType, types.MethodType, type)):
        return False
    kind = type(obj)
    if kind.__name__ not in _COMPILED_FUNCTIONS or not (kind.__module__ == "builtins"
                                                        or kind.__module__.startswith("_cython")):
        return False
    return obj.__module__ not in (None, "builtins")


#: Types of compiled library functions (CPython builtins, Cython) whose own Python helpers are theirs.
_COMPILED_FUNCTIONS = ("builtin_function_or_method", "cython_function_or_method", "fused_cython_function")


def _code_owner(frame, code) -> str | None:
    mod = frame.f_globals.get("__name__")
    if not isinstance(mod, str):
        return None
    qual = code.co_qualname
    if qual.endswith((".__init__", ".__new__")):
        qual = qual.rsplit(".", 1)[0]
    return f"{mod}.{qual}"
