"""The set-up promises of README: two commands, one test entry for CI, consistent installs."""
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _requirement_name(req: str) -> str:
    return re.split(r"[<>=!~\[;\s]", req, maxsplit=1)[0].lower()


def test_torch_pinned_exactly():
    deps = _pyproject()["project"]["dependencies"]
    torch_reqs = [d for d in deps if _requirement_name(d) == "torch"]
    assert torch_reqs == ["torch==2.13.0"], torch_reqs


def test_dev_extra_has_the_tools_the_issue_names():
    proj = _pyproject()["project"]
    names = {_requirement_name(r) for r in proj["dependencies"] + proj["optional-dependencies"]["dev"]}
    for needed in ["numpy", "matplotlib", "jupyterlab", "nbgrader", "nbval", "tqdm",
                   "scikit-learn", "pytest", "hypothesis", "torch"]:
        assert needed in names, f"{needed} missing from pyproject dependencies/dev extra"


def test_environment_yml_matches_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps and "pip" in deps
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    # The conda env installs this very package with the dev extra (so every dependency
    # comes from pyproject) and repeats the exact torch pin so conda users never resolve
    # a CUDA build.
    assert "-e .[dev]" in pip_section
    torch_pins = [p for p in pip_section if _requirement_name(p) == "torch"]
    pyproject_torch = [d for d in _pyproject()["project"]["dependencies"] if _requirement_name(d) == "torch"]
    assert torch_pins == pyproject_torch
    extras = re.findall(r"\.\[([\w,]+)\]", " ".join(pip_section))
    for extra in ",".join(extras).split(","):
        assert extra in _pyproject()["project"]["optional-dependencies"], extra


def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    first_block = re.search(r"```(?:bash)?\n(.*?)```", text, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["python3 run.py lab", "python3 run.py test"]
    # The code block is the first thing after the title.
    assert text.index("```") < text.index("\n## ")


def test_ci_calls_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 run.py test" in ci


def test_run_py_rejects_unknown_command_without_setting_up():
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "no-such-command"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "unknown command" in proc.stderr


def test_run_py_help_lists_every_command():
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_py", ROOT / "run.py")
    run_py = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_py)   # defines functions only; main() is not called
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "help"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    missing = [c for c in run_py.COMMANDS if f"python3 run.py {c}" not in proc.stdout]
    assert not missing, f"run.py --help does not list {missing}"
    grade = subprocess.run([sys.executable, "-m", "autograder", "--help"], cwd=ROOT, capture_output=True, text=True,
                           timeout=60)
    subcommands = grade.stdout.split("{", 1)[1].split("}", 1)[0].split(",")
    assert all(c in proc.stdout for c in subcommands), (subcommands, "every grade command is named in run.py --help")


def test_package_installed_from_lib():
    import cnnlab

    assert Path(cnnlab.__file__).resolve().is_relative_to(ROOT / "lib" / "cnnlab")


def test_scale_knob(monkeypatch):
    import cnnlab

    monkeypatch.delenv("CNNLAB_SCALE", raising=False)
    assert cnnlab.scale() == 1.0
    monkeypatch.setenv("CNNLAB_SCALE", "4")
    assert cnnlab.scale() == 4.0
    for bad in ["0", "-1", "lots"]:
        monkeypatch.setenv("CNNLAB_SCALE", bad)
        with pytest.raises(ValueError, match="CNNLAB_SCALE"):
            cnnlab.scale()


def test_device_helper(monkeypatch):
    import torch

    import cnnlab

    monkeypatch.delenv("CNNLAB_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert cnnlab.device().type == expected
    monkeypatch.setenv("CNNLAB_DEVICE", "cpu")
    assert cnnlab.device() == torch.device("cpu")
