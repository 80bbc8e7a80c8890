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
