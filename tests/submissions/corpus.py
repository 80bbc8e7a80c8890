"""A tiny nbgrader assignment and a corpus of honest, adversarial and malformed submissions.

``make_course(root)`` writes ``solutions/tiny/tiny.ipynb`` (the instructor's source: a set-up
cell with a test helper, three solution cells, three test cells worth 2, 3 and 5 points — the
last with hidden tests — and a manually graded answer). ``CASES`` maps a student id to
``(writer, expected_total, expected_message_fragment)``; ``writer(folder, source_nb)`` writes that
student's submission into ``folder`` (``<student>/tiny/``). Expected totals are hand-computed
from the points: 10 is full marks.
"""
from __future__ import annotations

import copy
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

__all__ = ["make_course", "CASES", "ASSIGNMENT", "NOTEBOOK", "solution_source", "MAX"]

ASSIGNMENT, NOTEBOOK, MAX = "tiny", "tiny.ipynb", 10.0


def _nbg(gid, grade=False, solution=False, locked=False, points=None):
    m = {"grade": grade, "grade_id": gid, "locked": locked, "schema_version": 3, "solution": solution,
         "task": False}
    if points is not None:
        m["points"] = points
    return {"nbgrader": m}


SETUP = "import numpy as np\n\ndef check_close(a, b):\n    assert np.allclose(a, b), 'values differ'\n"
SOL = {
    "add": "def add(a, b):\n    ### BEGIN SOLUTION\n    return np.asarray(a) + np.asarray(b)\n    ### END SOLUTION\n",
    "relu": "def relu(x):\n    ### BEGIN SOLUTION\n    return np.maximum(x, 0)\n    ### END SOLUTION\n",
    "norm": "class Scaler:\n    ### BEGIN SOLUTION\n    def __init__(self, k):\n        self.k = k\n\n"
            "    def __call__(self, x):\n        return self.k * np.asarray(x, dtype=float)\n    ### END SOLUTION\n",
}
TESTS = {
    "test_add": ("check_close(add([1, 2], [3, 4]), [4, 6])\nassert add(1, 2) == 3\n", 2),
    "test_relu": ("x = np.array([-1.0, 2.0, -3.0])\nassert np.allclose(relu(x), [0, 2, 0])\n"
                  "assert relu(x).shape == (3,)\n", 3),
    "test_scaler": ("s = Scaler(2)\ncheck_close(s([1, 2]), [2, 4])\n"
                    "### BEGIN HIDDEN TESTS\nassert np.allclose(Scaler(-3)(np.ones(4)), -3 * np.ones(4)), "
                    "'hidden: negative factor'\n### END HIDDEN TESTS\n", 5),
}


def source_notebook():
    cells = [new_markdown_cell("# Tiny assignment"), new_code_cell(SETUP, metadata=_nbg("setup", locked=True))]
    for (sid, src), (tid, (tsrc, pts)) in zip(SOL.items(), TESTS.items()):
        cells.append(new_code_cell(src, metadata=_nbg(sid, solution=True)))
        cells.append(new_code_cell(tsrc, metadata=_nbg(tid, grade=True, locked=True, points=pts)))
    cells.append(new_markdown_cell("YOUR ANSWER HERE", metadata=_nbg("written", grade=True, solution=True, points=1)))
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def solution_source(gid: str) -> str:
    return "\n".join(l for l in SOL[gid].split("\n") if "SOLUTION" not in l)


def make_course(root: Path) -> Path:
    """Write the tiny course (source and a release-like copy) under ``root``; returns root."""
    d = root / "solutions" / ASSIGNMENT
    d.mkdir(parents=True, exist_ok=True)
    nbformat.write(source_notebook(), str(d / NOTEBOOK))
    (root / "autograder").mkdir(exist_ok=True)
    return root


def student_notebook(answers: dict | None = None, hidden=False):
    """The release (hidden tests removed) with solution cells answered (default: correctly)."""
    nb = source_notebook()
    answers = answers if answers is not None else {}
    for c in nb.cells:
        m = c.metadata.get("nbgrader", {})
        gid = m.get("grade_id")
        if m.get("solution") and c.cell_type == "code":
            c.source = answers.get(gid, solution_source(gid))
        elif m.get("grade") and not hidden:
            c.source = c.source.split("### BEGIN HIDDEN TESTS")[0]
    return nb


def _write(nb, name=NOTEBOOK):
    def w(folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(folder / name))
    return w


def _raw(data: bytes, name=NOTEBOOK):
    def w(folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return w


def _edit(fn, answers=None):
    nb = student_notebook(answers)
    fn(nb)
    return _write(nb)


def _cell(nb, gid):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)


def _drop_and_fake_numpy(folder: Path):
    _write(student_notebook({"add": "def add(a, b):\n    return 0\n"}))(folder)
    (folder / "numpy.py").write_text("def allclose(*a, **k):\n    return True\n"
                                     "def asarray(x, *a, **k):\n    return x\narray = asarray\n")


WRONG_ADD = "def add(a, b):\n    return 0\n"
WRONG_RELU = "def relu(x):\n    return x\n"
WRONG_SCALER_HIDDEN = ("class Scaler:\n    def __init__(self, k):\n        self.k = abs(k)\n"
                       "    def __call__(self, x):\n        return self.k * np.asarray(x, dtype=float)\n")


def _v3():
    nb = student_notebook()
    v3 = {"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": [{"cells": [
        {"cell_type": "code", "language": "python", "input": c.source, "outputs": [],
         "metadata": dict(c.metadata)} if c.cell_type == "code" else
        {"cell_type": "markdown", "source": c.source, "metadata": dict(c.metadata)} for c in nb.cells]}]}
    import json
    return json.dumps(v3).encode()


def _no_metadata():
    nb = student_notebook()
    for c in nb.cells:
        c.metadata = {}
    return _write(nb)


def _huge_outputs():
    nb = student_notebook()
    png = "iVBORw0KGgo" + "A" * (2 << 20)  # ~2 MB embedded "image"
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs = [nbformat.v4.new_output("display_data", data={"image/png": png}),
                         nbformat.v4.new_output("stream", name="stdout", text="x" * 100_000)]
    return _write(nb)


def _latin1():
    nb = student_notebook({"add": "def add(a, b):\n    # caf\u00e9\n    return np.asarray(a) + np.asarray(b)\n"})
    text = nbformat.writes(nb).encode("utf-8").replace("caf\u00e9".encode(), b"caf\xe9")
    return _raw(text)


def _mimic():
    nb = student_notebook({"relu": WRONG_RELU})
    fake = new_code_cell("print('All tests passed! 10/10')", metadata=_nbg("test_relu_copy", grade=True, points=50))
    fake.outputs = [nbformat.v4.new_output("stream", name="stdout", text="All tests passed!\n")]
    nb.cells.insert(5, fake)
    return _write(nb)


def _reorder(nb):
    i = nb.cells.index(_cell(nb, "test_add"))
    j = nb.cells.index(_cell(nb, "test_scaler"))
    nb.cells[i], nb.cells[j] = nb.cells[j], nb.cells[i]


# student -> (writer, expected total, fragment expected in one of the messages or None)
CASES = {
    # honest
    "honest_full": (_write(student_notebook()), 10.0, None),
    "honest_blank": (_write(student_notebook({g: "raise NotImplementedError()" for g in SOL})), 0.0, None),
    "honest_partial": (_write(student_notebook({"relu": WRONG_RELU})), 7.0, None),
    "honest_hidden_fail": (_write(student_notebook({"norm": WRONG_SCALER_HIDDEN})), 5.0, None),
    "honest_helper_cell": (_edit(lambda nb: nb.cells.insert(2, new_code_cell("def _helper(x):\n    return np.maximum(x, 0)\n")),
                                 {"relu": "def relu(x):\n    return _helper(x)\n"}), 10.0, None),
    "honest_stderr": (_write(student_notebook({"add": "import sys\ndef add(a, b):\n    print('warn', file=sys.stderr)\n"
                                                      "    return np.asarray(a) + np.asarray(b)\n"})), 10.0, None),
    # monkeypatching the tests' tools (all with a wrong relu: 7 points at most)
    "patch_allclose": (_write(student_notebook({"relu": "np.allclose = lambda *a, **k: True\n" + WRONG_RELU})), 7.0, None),
    "patch_builtins": (_write(student_notebook({"relu": "import builtins\nbuiltins.AssertionError = type('X', (BaseException,), {})\n"
                                                        "__builtins__.__dict__['all'] = lambda *a: True\n" + WRONG_RELU})), 7.0, None),
    "patch_sys_modules": (_write(student_notebook({"relu": "import sys, types\nm = types.ModuleType('numpy')\n"
                                                           "m.allclose = lambda *a, **k: True\nsys.modules['numpy'] = m\n" + WRONG_RELU})), 7.0, None),
    "redefine_helper": (_write(student_notebook({"add": "def check_close(a, b):\n    pass\n\n" + WRONG_ADD})), 8.0,
                        "which the assignment defines"),
    "eq_always_true": (_write(student_notebook({"add": "class T:\n    def __eq__(self, o): return True\n    def __bool__(self): return True\n"
                                                       "    def __array__(self, *a, **k):\n        import numpy\n        return numpy.array([4, 6])\n"
                                                       "def add(a, b):\n    return T()\n"})), 8.0, None),
    "redefine_assert": (_write(student_notebook({"relu": "def isinstance(*a): return True\nAssertionError = Exception\n" + WRONG_RELU})), 7.0,
                        "built-in"),
    "numpy_beside": (_drop_and_fake_numpy, 8.0, None),
    "print_fake_output": (_mimic(), 7.0, "test_relu_copy"),
    # tampering with test cells
    "edit_test": (_edit(lambda nb: setattr(_cell(nb, "test_relu"), "source", "pass"), {"relu": WRONG_RELU}), 7.0,
                  "'test_relu' was edited"),
    "delete_test": (_edit(lambda nb: nb.cells.remove(_cell(nb, "test_relu")), {"relu": WRONG_RELU}), 7.0,
                    "'test_relu' was deleted"),
    "rename_test": (_edit(lambda nb: _cell(nb, "test_relu").metadata["nbgrader"].update(grade_id="mine"), {"relu": WRONG_RELU}), 7.0,
                    "renamed"),
    "change_points": (_edit(lambda nb: _cell(nb, "test_add").metadata["nbgrader"].update(points=100)), 10.0,
                      "points of test cell 'test_add' changed"),
    "reorder_tests": (_edit(_reorder), 10.0, "reordered"),
    "rename_solution": (_edit(lambda nb: _cell(nb, "relu").metadata["nbgrader"].update(grade_id="my_relu")), 10.0,
                        "by position"),
    # limits and crashes (finished cells keep their points)
    "infinite_loop": (_write(student_notebook({"norm": "while True:\n    pass\n"})), 5.0, "time limit"),
    "hang_in_call": (_write(student_notebook({"norm": "import time\nclass Scaler:\n    def __init__(self, k):\n"
                                                      "        time.sleep(1000)\n"})), 5.0, "time limit"),
    "memory_bomb": (_write(student_notebook({"norm": "x = bytearray(10 ** 10)\n" + WRONG_SCALER_HIDDEN})), 5.0, "memory limit"),
    "os_exit": (_write(student_notebook({"relu": "import os\nos._exit(3)\n"})), 2.0, "exited"),
    "ctypes_crash": (_write(student_notebook({"relu": "import ctypes\nctypes.string_at(0)\n"})), 2.0, "crashed"),
    "sys_exit": (_write(student_notebook({"relu": "import sys\nsys.exit(0)\n" + WRONG_RELU})), 7.0, "sys.exit"),
    "write_outside": (_write(student_notebook({"relu": "open('/tmp/cnnlab_pwned_by_student', 'w').write('x')\n" + WRONG_RELU})), 7.0, None),
    "fork_bounded": (_write(student_notebook({"relu": "import os, time\npids = []\nfor _ in range(200):\n"
                                                      "    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
                                                      "    if pid == 0:\n        time.sleep(300)\n        os._exit(0)\n"
                                                      "    pids.append(pid)\n" + WRONG_RELU})), 7.0, None),
    # malformed input
    "bad_json": (_raw(b'{"cells": [ this is not json'), 0.0, "invalid JSON"),
    "empty_file": (_raw(b""), 0.0, "empty"),
    "binary_file": (_raw(bytes(range(256)) * 40), 0.0, "binary"),
    "nbformat3": (_raw(_v3()), 10.0, "format 3"),
    "no_metadata": (_no_metadata(), 10.0, "no nbgrader metadata"),
    "wrong_name": (_write(student_notebook(), name="tiny (1).ipynb"), 10.0, "wrong file name"),
    "huge_outputs": (_huge_outputs(), 10.0, None),
    "latin1": (_latin1(), 10.0, "not valid UTF-8"),
    "not_a_notebook": (_raw(b'[1, 2, 3]'), 0.0, "not a Jupyter notebook"),
}


HONEST = [n for n in CASES if n.startswith("honest_")]
ADVERSARIAL = ["patch_allclose", "patch_builtins", "patch_sys_modules", "redefine_helper", "eq_always_true",
               "redefine_assert", "numpy_beside", "print_fake_output"]
TAMPERING = ["edit_test", "delete_test", "rename_test", "change_points", "reorder_tests", "rename_solution"]
LIMITS = ["infinite_loop", "hang_in_call", "memory_bomb", "os_exit", "ctypes_crash", "sys_exit",
          "write_outside", "fork_bounded"]
MALFORMED = ["bad_json", "empty_file", "binary_file", "nbformat3", "no_metadata", "wrong_name", "huge_outputs",
             "latin1", "not_a_notebook"]


def small_limits():
    """Small limits so the slow cases (hangs, memory) stay fast in the test suite."""
    from autograder.secure import Limits
    return Limits(cell_timeout=3, notebook_timeout=30, cpu_seconds=30, memory_mb=1024, max_processes=32)


def write_cases(subs: Path, names) -> None:
    for n in names:
        CASES[n][0](subs / n / ASSIGNMENT)


def grade_cases(root: Path, names, workers: int = 2, out=None):
    """Make the tiny course under ``root``, write the ``names`` submissions, grade them.
    Returns (results, submissions folder, reports folder)."""
    from autograder.secure import grade_batch
    make_course(root)
    subs = root / "subs"
    write_cases(subs, names)
    out = out or root / "out"
    res = grade_batch(ASSIGNMENT, root=root, submissions=subs, workers=workers, limits=small_limits(), out=out)
    return res, subs, out
