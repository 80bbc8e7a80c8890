"""Training with PyTorch: the loop, metrics, checkpoints, seeding and transfer learning.

- :mod:`.trainer`     ``Trainer``, ``fit``, ``evaluate`` (tqdm bars, history, AMP, checkpoints)
- :mod:`.metrics`     ``accuracy(output, target, topk=(1, 5))``
- :mod:`.seed`        ``seed_everything`` and RNG state capture/restore
- :mod:`.transfer`    ``freeze``/``unfreeze``, ``replace_head``, ``param_groups``, the strategy table,
  ``transfer_demo``
- :mod:`.budget`      ``epochs_for``/``size_for``: the ``CNNLAB_SCALE`` knob
- :mod:`.experiments` ``small_cnn``, ``digits_run``, ``bn_comparison``
- :mod:`.norm_gap`    ``norm_train_test_gap``: the train/test gap of BN, LN and GN (numpy)
"""
from . import budget, experiments, metrics, norm_gap, seed, trainer, transfer
from .budget import *  # noqa: F401,F403
from .experiments import *  # noqa: F401,F403
from .metrics import *  # noqa: F401,F403
from .norm_gap import *  # noqa: F401,F403
from .seed import *  # noqa: F401,F403
from .trainer import *  # noqa: F401,F403
from .transfer import *  # noqa: F401,F403

__all__ = (budget.__all__ + experiments.__all__ + metrics.__all__ + norm_gap.__all__ + seed.__all__
           + trainer.__all__ + transfer.__all__)
