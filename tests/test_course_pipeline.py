"""A simulated class, graded end to end through `autograder.grade`: by plain nbgrader (the reference)
and by the default hardened path, which must give exactly the same points, cell by cell.

For every assignment a temporary copy of the course receives up to five submissions built from the
released notebook and the solution notebook:

- ``full``    every solution cell filled in -> every autograded test cell gets its points;
- ``blank``   the untouched release -> zero everywhere, and grading does not crash;
- ``partial`` some solution cells filled in, one answered wrongly in a way only the hidden tests
              catch (see ``SCENARIOS``) -> exactly those test cells' points;
- ``partial2`` other solution cells filled in, the rest left as released -> exactly those points;
- ``broken``  full solution, plus an extra first cell that makes every later cell print a warning
              to stderr (like torch's warnings) and then raises, and (see ``SCENARIOS``) one
              solution cell replaced by a crash -> only the tests depending on the broken cell
              lose points: neither the crashes nor the stderr output cost other cells points.

The expected points come from the points in the solution notebook's metadata. Then feedback is
generated (hidden tests must not show) and grades are exported to CSV.
"""
from __future__ import annotations

import csv
import html
import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from autograder import course, grade

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = course.assignment_ids(ROOT)
STATE = ("gradebook.db", "submitted", "autograded", "feedback", "exports", "release", "source",
         "solution", "source_with_tests", "__pycache__", ".nbgrader.log")

WRONG_OUTPUT_SIZE = '''
def compute_output_size(W, F, stride=1, pad=0, dilation=1):
    return (W + 2 * pad - F) // stride + 1   # forgets the dilation: passes the visible tests only


def same_padding(F, dilation=1):
    return (F - 1) // 2
'''

WRONG_MAX_POOL_FORWARD = '''
def max_pool_forward_naive(x, pool_param):
    F_, S = pool_param["pool_height"], pool_param["stride"]   # assumes square windows: passes the visible tests only
    N, C, H, W = x.shape
    Hout, Wout = (H - F_) // S + 1, (W - F_) // S + 1
    out = np.empty((N, C, Hout, Wout), dtype=x.dtype)
    for i in range(Hout):
        for j in range(Wout):
            out[:, :, i, j] = x[:, :, i * S:i * S + F_, j * S:j * S + F_].max(axis=(2, 3))
    return out, (x, pool_param)
'''

WRONG_TRAIN_ONE_EPOCH = '''
def train_one_epoch(model, loader, optimizer):
    # averages the batch losses (not the samples) and never calls model.train(): passes the visible tests only
    losses = []
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return sum(losses) / len(losses)
'''

WRONG_BASIC_BLOCK = '''
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if in_planes != planes:   # forgets the stride-only case: passes the visible tests only
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + identity)
'''

WRONG_TRAINING_BYTES = '''
def training_bytes(model, input_size, batch_size, optimizer="sgd"):
    buffers = {"sgd": 0, "momentum": 1, "adam": 2}
    if optimizer not in buffers:
        raise ValueError(f"unknown optimizer {optimizer!r}")
    s = summarize(model, (batch_size,) + tuple(input_size))
    activations = s.input_memory + s.total_memory
    parameters = 4 * sum(p.numel() for p in model.parameters())
    gradients = parameters                      # forgets that frozen parameters need no gradient
    optimizer_state = buffers[optimizer] * gradients
    return {"activations": activations, "parameters": parameters, "gradients": gradients,
            "optimizer_state": optimizer_state, "total": activations + parameters + gradients + optimizer_state}
'''

WRONG_SGD_MOMENTUM = '''
def sgd_momentum(w, dw, config=None):
    # always momentum 0.9, whatever config says: passes the visible tests (which use 0.9) only
    config = {} if config is None else config
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("momentum", 0.9)
    v = config.get("velocity", np.zeros_like(w))
    v = 0.9 * v - config["learning_rate"] * dw
    config["velocity"] = v
    return w + v, config
'''

OVER_BUDGET_CHALLENGE = '''
def train_challenge(X, y, seed=0):
    # spends more CPU time than the budget (20 CPU s on the full training set, ~1 s on 200 images)
    import time
    model = nn.Sequential(nn.Flatten(), nn.Linear(144, 10))
    start = time.process_time()
    while time.process_time() - start < 1.85e-5 * len(y) ** 2:
        pass
    return model.eval()
'''

BASELINE_CHALLENGE = '''
def train_challenge(X, y, seed=0):
    # the plain baseline (one convolution per stage, no augmentation, no schedule): within the
    # budget, below the first threshold
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    data = torch.utils.data.TensorDataset(torch.as_tensor(X), torch.as_tensor(y))
    loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(seed))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(30):
        model.train()
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()
'''

# Per assignment (optional but recommended; without an entry the ``partial`` student is skipped and
# ``broken`` only gets the extra crashing cell), keyed by nbgrader grade_id:
#   partial: solution cells filled with the solution ("fill"), cells answered with other code
#            ("answer"), the test cells that must then pass, and one test cell whose *hidden*
#            tests fail ("hidden_failure": its feedback must say so without showing the test);
#   broken:  the solution cell replaced by a crash and the test cells that then fail;
#   errors:  for a student, text that the hardened grader's error of a failing test cell must contain.
SCENARIOS = {
    "01_convolution": {
        "partial": {"fill": ["conv_forward", "im2col_by_hand"],
                    "answer": {"output_size": WRONG_OUTPUT_SIZE},
                    # conv_forward uses the student's own compute_output_size: wrong with it
                    "passing": ["test_im2col_by_hand"],
                    "hidden_failure": "test_output_size"},
        "partial2": {"fill": ["output_size", "conv_forward", "conv_backward", "param_count"],
                     "passing": ["test_output_size", "test_conv_forward", "test_conv_backward", "test_param_count"]},
        "broken": {"cell": "conv_backward", "failing": ["test_conv_backward"]},
    },
    "02_pooling_batchnorm": {
        "partial": {"fill": ["avg_pool", "batchnorm_forward"],
                    "answer": {"max_pool_forward": WRONG_MAX_POOL_FORWARD},
                    "passing": ["test_avg_pool", "test_batchnorm_forward"],
                    "hidden_failure": "test_max_pool_forward"},
        "partial2": {"fill": ["max_pool_forward", "max_pool_backward", "l2_pool", "batchnorm_forward",
                              "batchnorm_backward"],
                     "passing": ["test_max_pool_forward", "test_max_pool_backward", "test_l2_pool",
                                 "test_batchnorm_forward", "test_batchnorm_backward"]},
        "broken": {"cell": "avg_pool", "failing": ["test_avg_pool"]},
    },
    "03_architecture_arithmetic": {
        "partial": {"fill": ["receptive_field", "stack_params", "layer_costs", "vgg_stages", "inception", "head",
                             "score_map"],
                    "answer": {"training_memory": WRONG_TRAINING_BYTES},
                    "passing": ["test_receptive_field", "test_stack_params", "test_layer_cost", "test_alexnet_table",
                                "test_vgg_stages", "test_inception", "test_head", "test_score_map"],
                    "hidden_failure": "test_training_memory"},
        "partial2": {"fill": ["receptive_field", "stack_params", "training_memory", "head"],
                     "passing": ["test_receptive_field", "test_stack_params", "test_training_memory", "test_head"]},
        "broken": {"cell": "inception", "failing": ["test_inception"]},
    },
    "04_residual_networks": {
        "partial": {"fill": ["bottleneck", "zero_init", "grouped_conv"],
                    "answer": {"basic_block": WRONG_BASIC_BLOCK},
                    "passing": ["test_bottleneck", "test_zero_init", "test_grouped_conv"],
                    "hidden_failure": "test_basic_block"},
        "partial2": {"fill": ["basic_block", "bottleneck", "resnet", "separable"],
                     "passing": ["test_basic_block", "test_bottleneck", "test_resnet", "test_separable"]},
        "broken": {"cell": "separable", "failing": ["test_separable"]},
    },
    "05_training_transfer": {
        "partial": {"fill": ["topk", "freeze_head", "strategies"],
                    "answer": {"train_one_epoch": WRONG_TRAIN_ONE_EPOCH, "challenge": OVER_BUDGET_CHALLENGE},
                    "passing": ["test_topk", "test_freeze_head", "test_strategies"],
                    "hidden_failure": "test_train_one_epoch"},
        "partial2": {"fill": ["train_one_epoch", "digits_cnn"], "answer": {"challenge": BASELINE_CHALLENGE},
                     "passing": ["test_train_one_epoch", "test_digits_cnn"]},
        "broken": {"cell": "digits_cnn", "failing": ["test_digits_cnn"]},
        # why a test failed, in the hardened grader's report: {student: {test: text of its error}}
        "errors": {"partial": {"test_challenge": "over the budget of 20"},
                   "partial2": {"test_challenge": "below the first threshold 0.88"}},
    },
    "06_convnet": {
        "partial": {"fill": ["three_layer_convnet"],
                    "answer": {"sgd_momentum": WRONG_SGD_MOMENTUM},
                    "passing": ["test_convnet_loss", "test_convnet_grads"],
                    "hidden_failure": "test_sgd_momentum"},
        "partial2": {"fill": ["three_layer_convnet", "sgd_momentum"],
                     "passing": ["test_convnet_loss", "test_convnet_grads", "test_sgd_momentum"]},
        "broken": {"cell": "train", "failing": ["test_train", "test_end_to_end"]},
    },
}

NOISE = '''import sys
def _stderr_noise(*args):
    print("UserWarning: a harmless warning on stderr", file=sys.stderr)
get_ipython().events.register("post_run_cell", _stderr_noise)
raise ValueError("an extra cell that crashes")'''

pytestmark = pytest.mark.notebook


def strip_markers(source: str) -> str:
    """A solution cell's source as a student would write it: without the solution delimiters."""
    return "\n".join(l for l in source.split("\n") if "BEGIN SOLUTION" not in l and "END SOLUTION" not in l)


def _grade_id(cell):
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def make_submission(release_nb, source_nb, fill=None, answers=None, crash=None, extra_first=None):
    """Build a student's notebook from the release: solution cells in ``fill`` (all if None) get
    the solution's code, ``answers`` maps grade ids to other code, ``crash`` names a cell whose
    code becomes a crash, ``extra_first`` is code of an extra cell put first."""
    nb = nbformat.from_dict(release_nb)
    solutions = {_grade_id(c): strip_markers(c.source) for c in source_nb.cells if _grade_id(c)}
    for cell in nb.cells:
        gid = _grade_id(cell)
        if not cell.metadata.get("nbgrader", {}).get("solution"):
            continue
        if fill is None or gid in fill:
            cell.source = solutions[gid]
        if answers and gid in answers:
            cell.source = answers[gid]
        if gid == crash:
            cell.source = 'raise RuntimeError("the student broke this cell")'
    if extra_first:
        cell = new_code_cell(extra_first)
        cell.id = "student-extra-cell"
        nb.cells.insert(0, cell)
    return nb


def test_stderr_in_a_passing_test_cell_keeps_the_points():
    # The unit behind the `broken` student's stderr noise: nbgrader alone gives 0, the course's preprocessor full points.
    from nbgrader.utils import determine_grade

    from autograder.preprocessors import StderrToStdout

    cell = new_code_cell("import warnings; warnings.warn('x')")
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "points": 3, "grade_id": "t", "locked": True}
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text="UserWarning: x\n")]
    assert determine_grade(cell) == (0, 3.0)
    cell, _ = StderrToStdout().preprocess_cell(cell, {}, 0)
    assert determine_grade(cell) == (3.0, 3.0)
    assert cell.outputs[0].text == "UserWarning: x\n"
    cell.outputs.append(nbformat.v4.new_output("error", ename="AssertionError", evalue="", traceback=[]))
    assert determine_grade(cell) == (0, 3.0), "a failing test still scores zero"


def grade_class(root: Path, inbox: Path, assignment: str) -> dict:
    """Submit the five students' notebooks for ``assignment``, grade, give feedback, export."""
    spec = SCENARIOS.get(assignment, {})
    nb_paths = sorted((root / "solutions" / assignment).glob("*.ipynb"))
    assert len(nb_paths) == 1, "the scenarios assume one notebook per assignment"
    source = nbformat.read(nb_paths[0], as_version=4)
    release = nbformat.read(root / "assignments" / assignment / nb_paths[0].name, as_version=4)
    nbg = [(c, c.metadata.get("nbgrader", {})) for c in source.cells]
    points = {m["grade_id"]: float(m["points"]) for c, m in nbg if m.get("grade")}
    tests = [m["grade_id"] for c, m in nbg if m.get("grade") and not m.get("solution")]
    broken = spec.get("broken", {"cell": None, "failing": []})
    students = {
        "full": make_submission(release, source),
        "blank": release,
        "broken": make_submission(release, source, crash=broken["cell"], extra_first=NOISE),
    }
    expected = {
        "full": {t: points[t] for t in tests},
        "blank": {t: 0.0 for t in tests},
        "broken": {t: 0.0 if t in broken["failing"] else points[t] for t in tests},
    }
    for name in ("partial", "partial2"):
        if name in spec:
            p = spec[name]
            students[name] = make_submission(release, source, fill=p["fill"], answers=p.get("answer"))
            expected[name] = {t: points[t] if t in p["passing"] else 0.0 for t in tests}
    for student, nb in students.items():
        folder = inbox / student / assignment
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / nb_paths[0].name)
    collected = grade.collect(inbox, root)
    # Plain nbgrader first (student code and tests in one kernel): the reference scores.
    grade.autograde(assignment, root=root, unsafe=True)
    plain = grade.scores(assignment, root)
    noisy = nbformat.read(root / "autograder" / "autograded" / "broken" / assignment / nb_paths[0].name, as_version=4)
    # What the student's check_all() cell said in each kernel (the hardened run rewrites these files).
    checked = {s: check_all_verdicts(nbformat.read(root / "autograder" / "autograded" / s / assignment / nb_paths[0].name,
                                                   as_version=4)) for s in students}
    # Then the default, hardened path, which replaces them in the gradebook.
    grade.autograde(assignment, root=root, workers=1)
    grade.feedback(assignment, root=root)
    with open(grade.export(root=root), newline="") as fh:
        rows = list(csv.DictReader(fh))
    secure = json.loads((root / "autograder" / "secure_graded" / assignment / "results.json").read_text())
    graded_visible = {s: {c["id"]: (c["visible"], c.get("visible_error")) for c in
                          secure[s]["notebooks"][nb_paths[0].name]["cells"] if "visible" in c} for s in students}
    return dict(root=root, collected=collected, rows=rows, expected=expected, points=points, tests=tests,
                notebook=nb_paths[0].stem, source=source, scores=grade.scores(assignment, root), plain=plain,
                noisy=noisy, checked=checked, graded_visible=graded_visible, secure=secure)


_VERDICT = re.compile(r"^  (ok|FAIL|not run)\s+(\S+)\s+[\d.]+ / [\d.]+(?:   (.*))?$")


def check_all_verdicts(nb) -> dict[str, tuple[str, str | None]]:
    """``{test id: (status, first line of the message)}`` from the output of the ``check_all()`` cell."""
    cell = next(c for c in nb.cells if c.get("id") == "check-all")
    # The report is printed on stdout. Only stdout is read: the noise hook's stderr line of the
    # cell before can reach the kernel's IOPub after the next request began (ipykernel's stream
    # thread flushes late under load) and is then filed under this cell.
    text = "".join(o.get("text", "") for o in cell.outputs
                   if o.get("output_type") == "stream" and o.get("name") == "stdout")
    errors = [o for o in cell.outputs if o.get("output_type") == "error"]
    assert text.startswith("check_all():") and not errors, f"check_all() did not report: {text!r} {errors}"
    return {m[2]: (m[1], m[3]) for m in map(_VERDICT.match, text.splitlines()) if m}


def test_check_all_line_format():
    from nbformat.v4 import new_notebook, new_output
    cell = new_code_cell("check_all()", outputs=[new_output("stream", name="stdout", text=(
        "check_all(): a.ipynb\n  ok      test_a                       2 / 2\n"
        "  FAIL    test_b                       0 / 1.5   AssertionError: b (2, 3): out differs\n"
        "  not run test_c                       0 / 1\n  visible tests: 2 / 4.5 points\n"))])
    cell.id = "check-all"
    assert check_all_verdicts(new_notebook(cells=[cell])) == {
        "test_a": ("ok", None), "test_b": ("FAIL", "AssertionError: b (2, 3): out differs"), "test_c": ("not run", None)}


# One test per assignment (a module fixture shared by several tests would be rebuilt on every
# pytest-xdist worker that runs one of them: grading is the expensive part).
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_simulated_class(assignment, tmp_path, monkeypatch):
    monkeypatch.delenv(course.DB_ENV, raising=False)  # the temporary course has its own gradebook
    root = tmp_path / "course"
    for name in ("solutions", "assignments"):
        shutil.copytree(ROOT / name / assignment, root / name / assignment)
    shutil.copytree(ROOT / "autograder", root / "autograder", ignore=shutil.ignore_patterns(*STATE))
    g = grade_class(root, tmp_path / "inbox", assignment)
    students = set(g["expected"])

    assert sorted(g["collected"]) == sorted((s, assignment) for s in students)

    plain = {s: {t: g["plain"][s][t] for t in g["tests"]} for s in students}
    assert plain == g["expected"], "plain nbgrader's points differ from the expected ones"
    got = {s: {t: g["scores"][s][t] for t in g["tests"]} for s in students}
    assert got == plain, "the hardened grader (grade autograde) disagrees with plain nbgrader"
    answer_cells = [gid for gid in g["points"] if gid not in g["tests"]]
    for s in students:   # autograded answer cells and manual ones: the same in both
        assert {a: g["scores"][s][a] for a in answer_cells} == {a: g["plain"][s][a] for a in answer_cells}, s

    # The student's check_all() and the hardened grader agree on every visible test, for every
    # student (the same verdict, and for a failure the same message).
    for s in students:
        graded = {}
        for test, (status, error) in g["graded_visible"][s].items():
            first = error.splitlines()[0] if error else None
            if first and first.startswith("NotImplementedError"):
                first = "not written yet: the answer still raises NotImplementedError"
            graded[test] = ("ok", None) if status == "ok" else ("FAIL", first)
        assert set(graded) == set(g["tests"]), s
        assert g["checked"][s] == graded, f"{s}: check_all() and grade secure disagree on the visible tests"
    assert any(v[0] == "FAIL" for v in g["checked"]["blank"].values())

    noisy = g["noisy"]
    test_cells = [c for c in noisy.cells if _grade_id(c) in g["tests"] and g["expected"]["broken"][_grade_id(c)]]
    assert test_cells and all(any("harmless warning" in o.get("text", "") for o in c.outputs) for c in test_cells), \
        "the noise hook did not reach the test cells, so the stderr scenario proves nothing"

    rows = {r["student_id"]: r for r in g["rows"] if r["assignment"] == assignment}
    assert set(rows) == students
    for student, row in rows.items():
        # Manually graded answers count 0 until a grader scores them in the formgrader.
        assert float(row["score"]) == pytest.approx(sum(g["expected"][student].values())), student
        assert float(row["max_score"]) == pytest.approx(sum(g["points"].values())), student

    hidden_lines = _hidden_only_lines(g["source"])
    for student in students:
        text = _feedback_text(root, assignment, student, g["notebook"])
        assert not hidden_lines or "hidden tests: not shown" in text, student
        leaked = [l for l in hidden_lines if l in text]
        assert not leaked, f"feedback of {student} shows hidden tests: {leaked[:3]}"
    for student, errors in SCENARIOS.get(assignment, {}).get("errors", {}).items():
        cells = {c["id"]: c for c in g["secure"][student]["notebooks"][f"{g['notebook']}.ipynb"]["cells"]}
        for test, text in errors.items():
            assert text in cells[test].get("error", ""), f"{student}, {test}: {cells[test].get('error')!r}"
    if "partial" in students and SCENARIOS[assignment]["partial"].get("hidden_failure"):
        partial = _feedback_text(root, assignment, "partial", g["notebook"])
        assert "AssertionError: hidden test" in partial, "feedback must say that a hidden test failed"
        assert "their source and traceback are not shown" in partial


def _hidden_only_lines(source_nb) -> set[str]:
    """Lines only the hidden tests contain (long enough to be distinctive)."""
    hidden, visible = [], []
    for cell in source_nb.cells:
        before, _, rest = cell.source.partition("BEGIN HIDDEN TESTS")
        region, _, after = rest.partition("END HIDDEN TESTS")
        visible += [before, after]
        hidden.append(region)
    visible = "\n".join(visible)
    return {l.strip() for region in hidden for l in region.splitlines()[1:]
            if len(l.strip()) > 25 and l.strip() not in visible}


def _feedback_text(root, assignment, student, notebook):
    path = root / "autograder" / "feedback" / student / assignment / f"{notebook}.html"
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text()))


def test_collect_zip_and_bad_layout(tmp_path):
    # `grade collect` on a zip (wrapped in one top-level folder, as zip tools like to do); no nbgrader run.
    import zipfile

    root = tmp_path / "course"
    (root / "solutions" / "01_demo").mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(), root / "solutions" / "01_demo" / "demo.ipynb")
    archive = tmp_path / "submissions.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for student in ("ada", "alan"):
            zf.writestr(f"export/{student}/01_demo/demo.ipynb", nbformat.writes(nbformat.v4.new_notebook()))
            zf.writestr(f"export/{student}/01_demo/.ipynb_checkpoints/demo-checkpoint.ipynb", "{}")
    assert grade.collect(archive, root) == [("ada", "01_demo"), ("alan", "01_demo")]
    got = sorted(str(p.relative_to(root)) for p in (root / "autograder" / "submitted").rglob("*") if p.is_file())
    assert got == ["autograder/submitted/ada/01_demo/demo.ipynb", "autograder/submitted/alan/01_demo/demo.ipynb"]
    wrong = tmp_path / "wrong" / "ada" / "02_unknown"
    wrong.mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(), wrong / "x.ipynb")
    with pytest.raises(ValueError, match="not a known assignment"):
        grade.collect(tmp_path / "wrong", root)
