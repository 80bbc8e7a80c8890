"""Shared pytest configuration: deterministic seeds, hypothesis profile, quiet torch threads."""
import os

# Before numpy is imported: one BLAS thread per test worker (see run.py).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings

os.environ.setdefault("MPLBACKEND", "Agg")

settings.register_profile(
    "cnnlab",
    deadline=None,
    derandomize=True,  # the same examples on every run: CI is deterministic
    max_examples=int(os.environ.get("CNNLAB_HYPOTHESIS_EXAMPLES", "25")),
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("cnnlab")

import torch  # noqa: E402

# Tests use tiny tensors: one thread each avoids oversubscription when workers share the cores
# (measured: tiny torch calls ~30x slower with contended threads).
torch.set_num_threads(1)


@pytest.fixture
def rng():
    """A seeded numpy Generator."""
    return np.random.default_rng(0)


# -- one worker per shared fixture ---------------------------------------------------------------
# A file whose tests share an expensive module/session fixture (a graded corpus, a fresh install)
# marks itself `pytestmark = pytest.mark.xdist_group(...)`; run.py passes `--dist loadgroup`. That
# mark only works through the node id, which pytest 9.2 no longer lets pytest-xdist rewrite, so the
# scheduler is ours: every test of a marked file goes to the same worker, other tests one by one.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_GROUPED: dict[str, bool] = {}


def _file_is_grouped(path: str) -> bool:
    if path not in _GROUPED:
        try:
            with open(os.path.join(_ROOT, path), encoding="utf-8") as f:
                _GROUPED[path] = any(line.startswith("pytestmark") and "xdist_group(" in line for line in f)
        except OSError:
            _GROUPED[path] = False
    return _GROUPED[path]


def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FileGroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if _file_is_grouped(path) else nodeid

    return FileGroupScheduling(config, log)
