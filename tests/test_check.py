"""The in-notebook check (``cnnlab.check``) and the test cells' assertions (``cnnlab.expect``).

The course-wide property — ``check_all()`` and ``grade secure`` give the same visible verdict and
message for every test cell of every assignment, on the solution, blank, partial and broken
submissions — is checked in ``tests/test_course_pipeline.py``, where those notebooks are graded
anyway. Here: the pieces, and ``check("...")`` in a real kernel on assignment 1's release.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import numpy as np
import pytest

from cnnlab import check
from cnnlab.expect import expect_array, expect_value

ROOT = Path(__file__).resolve().parents[1]
A1 = ROOT / "assignments" / "01_convolution"

CELL = "x = 1\nassert x == {visible}, 'visible failure'\n### BEGIN HIDDEN TESTS\nassert x == {hidden}, 'hidden failure'\n### END HIDDEN TESTS\n"


def _raised(src: str) -> BaseException:
    try:
        exec(compile(src, "<cell>", "exec"), {})
    except BaseException as exc:  # noqa: BLE001
        return exc
    raise AssertionError("the cell did not raise")


def test_a_failure_is_visible_only_before_the_hidden_marker():
    visible = CELL.format(visible=2, hidden=1)
    hidden = CELL.format(visible=1, hidden=2)
    assert check.failed_visibly(visible, _raised(visible))
    assert not check.failed_visibly(hidden, _raised(hidden))
    plain = "assert False, 'no hidden tests'\n"
    assert check.failed_visibly(plain, _raised(plain))
    # A failure inside a function the cell defines counts where the cell called it.
    nested = "def f():\n    raise ValueError('x')\n### BEGIN HIDDEN TESTS\nf()\n"
    assert not check.failed_visibly(nested, _raised(nested))
    assert check.visible_part(hidden) == "x = 1\nassert x == 1, 'visible failure'\n"
    assert check.error_text(ValueError("bad")) == "ValueError: bad"


def test_outside_a_kernel_check_says_so_and_does_nothing(capsys):
    check.check("conv_forward")
    check.check_all()
    out = capsys.readouterr().out
    assert "nothing to check here" in out and out.count("\n") == 2


def _message(*args, **kw) -> str:
    with pytest.raises(AssertionError) as info:
        expect_array(*args, **kw)
    return str(info.value)


def test_expect_array_messages_name_the_case_the_shapes_the_error_and_a_hint():
    want = np.arange(24.0).reshape(2, 3, 2, 2)
    case = "f(x (2, 3, 2, 2))"
    expect_array("out", want.copy(), want, case=case)                      # passes silently
    assert _message("out", None, want, case=case).startswith(f"{case}: out is None, expected an array of shape (2, 3, 2, 2)")
    m = _message("out", want.transpose(0, 2, 3, 1), want, case=case)
    assert "shape (2, 2, 2, 3), expected (2, 3, 2, 2)" in m and "NCHW" in m
    m = _message("out", want.astype(int), want, case=case)
    assert "dtype int64, expected float64" in m
    bad = want.copy()
    bad[1, 2, 0, 1] += 0.5
    m = _message("out", bad, want, case=case, oracle="conv2d", rtol=1e-9, atol=1e-9, hint="look at the bias")
    assert "differs from conv2d by up to 0.5 at index (1, 2, 0, 1)" in m
    assert "rtol=1e-09, atol=1e-09" in m and m.endswith("hint: look at the bias")
    assert "all zeros" in _message("out", np.zeros_like(want), want, case=case)
    assert "nan or inf" in _message("out", want * np.nan, want, case=case)
    m = _message("cols", np.array([[1, 2], [3, 5]]), np.array([[1, 2], [3, 4]]), case=case, exact=True)
    assert "at 1 of 4 entries, first at index (1, 1): got 5, expected 4" in m


def _value_message(*args, **kw) -> str:
    with pytest.raises(AssertionError) as info:
        expect_value(*args, **kw)
    return str(info.value)


def test_expect_value_messages_name_the_call_what_came_back_what_was_expected_and_a_hint():
    expect_value("f(3)", 7, 7)
    expect_value("f(3)", 7.0, 7)                              # an integral float is the same count
    expect_value("f(3)", [96, 55, 55], (96, 55, 55))          # a list for a tuple
    expect_value("f(3)", 1 / 3 + 1e-12, 1 / 3)                # floats: relative tolerance 1e-9
    expect_value("f(3)", {"params": 34_944, "other": 1}, {"params": 34_944})
    assert _value_message("f(3)", 5, 7, oracle="the lecture", hint="add K - 1 per layer") == \
        "f(3) = 5, expected 7 (the lecture)\n  hint: add K - 1 per layer"
    assert _value_message("f(3)", 105_415_201, 105_415_200) == "f(3) = 105,415,201, expected 105,415,200"
    assert _value_message("f(3)", None, 7).startswith("f(3) returned None, expected 7")
    assert "(a float), expected the int 7" in _value_message("f(3)", 7.5, 7) and "//" in _value_message("f(3)", 7.5, 7)
    assert _value_message("f(3)", "7", 7).startswith("f(3) = '7' (a str), expected the int 7")
    assert _value_message("f(3)", (1, 2), (1, 3)) == "f(3) = (1, 2), expected (1, 3)"
    assert _value_message("f(3)", (1, 2, 3), (1, 2)).startswith("f(3) has 3 values, expected 2")
    assert _value_message("f(3)", 0.3, 1 / 3, rel=1e-6) == "f(3) = 0.3, expected 0.333333"
    assert _value_message("c", {"params": 1, "flops": 2}, {"params": 1, "flops": 3}, hint="h") == \
        "c: flops = 2, expected 3\n  hint: h"
    assert _value_message("c", {"params": 1}, {"flops": 3}).startswith("c: the dict has no key 'flops'")
    assert _value_message("c", [1], {"flops": 3}).startswith("c returned a list, expected a dict")


# A student's session in a real kernel: the release's cells up to conv_forward's check, with a
# wrong answer, a right one, and one that uses a forbidden API.
WRONG = '''def conv_forward_naive(x, w, b, conv_param):
    pad = conv_param.get("pad", 0)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    N, C, H, W = x.shape
    F_, _, HH, WW = w.shape
    out = np.zeros((N, F_, H, W))
    for i in range(H):
        for j in range(W):
            out[:, :, i, j] = np.tensordot(xp[:, :, i:i + HH, j:j + WW], w[:, :, ::-1, ::-1], axes=([1, 2, 3], [1, 2, 3])) + b
    return out, (x, w, b, conv_param)
'''
FORBIDDEN = '''def conv_forward_naive(x, w, b, conv_param):
    out = torch_conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), padding=conv_param.get("pad", 0))
    return out.numpy(), (x, w, b, conv_param)
'''


def solution_source(gid: str) -> str:
    """The instructor's answer ``gid`` of assignment 1, without the nbgrader markers."""
    nb = nbformat.read(next((ROOT / "solutions" / A1.name).glob("*.ipynb")), as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)
    return "\n".join(l for l in cell.source.splitlines() if l.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))


def run_like_jupyterlab(work: Path, notebook: Path, cells: list[tuple[str, str]]) -> list[tuple[str, list]]:
    """Run ``cells`` ([(cell id, source)]) in a fresh kernel started in ``work`` as JupyterLab runs
    them: the session's notebook in ``JPY_SESSION_NAME``, each cell's id in the request's
    metadata. Returns each cell's (printed text, error contents)."""
    import os
    from jupyter_client.manager import start_new_kernel
    env = dict(os.environ, JPY_SESSION_NAME=str(notebook))
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(work), env=env)
    results = []
    try:
        for cell_id, src in cells:
            msg = kc.session.msg("execute_request", {"code": src, "silent": False, "store_history": True,
                                                     "user_expressions": {}, "allow_stdin": False,
                                                     "stop_on_error": False}, metadata={"cellId": cell_id})
            kc.shell_channel.send(msg)
            text, errors = [], []
            while True:
                m = kc.get_iopub_msg(timeout=120)
                if m["parent_header"].get("msg_id") != msg["header"]["msg_id"]:
                    continue
                kind, content = m["msg_type"], m["content"]
                if kind == "stream":
                    text.append(content["text"])
                elif kind == "error":
                    errors.append(content)
                elif kind == "status" and content["execution_state"] == "idle":
                    break
            kc.get_shell_msg(timeout=120)
            results.append(("".join(text), errors))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return results


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    work = tmp_path_factory.mktemp("a1")
    shutil.copytree(A1, work, dirs_exist_ok=True)
    path = next(work.glob("*.ipynb"))
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    upto = [c.get("id") for c in code].index("check-conv-forward")
    answer_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c.get("id") for c in code}
    cells = [(c.get("id"), solution_source("output_size") if c.get("id") == answer_id["output_size"] else c.source)
             for c in code[:upto + 1]]
    again = "check-conv-forward"
    cells += [(answer_id["conv_forward"], WRONG), (again, 'check("conv_forward")'),
              (answer_id["conv_forward"], solution_source("conv_forward")), (again, 'check("conv_forward")'),
              (answer_id["conv_forward"], FORBIDDEN), (again, 'check("conv_forward")'),
              ("scratch", 'check("nope")'), ("scratch", "check_all()")]
    out = run_like_jupyterlab(work, path, cells)
    assert not any(errors for _, errors in out[:upto + 1]), "the release's cells raised"
    return out[-8:]


def test_check_in_a_kernel_says_what_is_wrong_and_what_is_right(session):
    (_, _), (wrong, _), (_, _), (right, _), (_, _), (ruled, _), (unknown, err), (summary, _) = session
    assert 'check("conv_forward"): test_conv_forward FAILED (0 / 3 points)' in wrong
    assert "conv_forward_naive(x (2, 3, 7, 7), w (4, 3, 3, 3), stride 1, pad 1): out differs from PyTorch's conv2d" in wrong
    assert "tolerance rtol=1e-09, atol=1e-09" in wrong and "hint: " in wrong and "not flipped" in wrong
    assert "hidden" not in wrong.lower() or "Hidden tests run when you are graded" in wrong
    assert "(5, 3, 2)" not in wrong and "default_rng(102)" not in wrong     # nothing of the hidden cases
    assert right.startswith('check("conv_forward"): test_conv_forward passed its visible tests (3 / 3 points)')
    assert "Hidden tests run" not in right                                   # said once per session
    assert "RuleBroken" in ruled and "torch" in ruled and "earns nothing in test_conv_forward" in ruled
    assert err and err[0]["ename"] == "ValueError" and "'conv_forward'" in err[0]["evalue"]
    assert summary.startswith("check_all(): convolution.ipynb")
    assert "ok      test_output_size" in summary and "not run test_conv_forward" in summary
    assert "rule: answer 'conv_forward'" in summary        # the answer as it last ran: the forbidden one


def test_a_test_that_needs_a_later_answer_names_it_instead_of_failing():
    # check("three_layer_convnet") in 06_convnet runs test_end_to_end, which also needs train(),
    # written further down: the check names that answer rather than reporting a NameError.
    cells = [check._Cell("three_layer_convnet", "answer", "class ThreeLayerConvNet:\n    pass\n", None, 0.0),
             check._Cell("train", "answer", "def accuracy(m, X, y):\n    pass\n\ndef train(m, d):\n    pass\n", None, 0.0),
             check._Cell("sizes", "answer", "SIZES = [1, 2]\n", None, 0.0)]
    nb = check._Notebook(Path("convnet.ipynb"), cells)
    assert check._defined_by_answer(nb, "NameError: name 'train' is not defined") == ("train", "train")
    assert check._defined_by_answer(nb, "NameError: name 'SIZES' is not defined") == ("SIZES", "sizes")
    assert check._defined_by_answer(nb, "NameError: name 'torch_loss_and_grads' is not defined") is None
    assert check._defined_by_answer(nb, "AssertionError: name 'train' is not defined") is None
