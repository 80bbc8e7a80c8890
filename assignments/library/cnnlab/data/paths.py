"""Where local data sets live: ``root`` argument, else ``$CNNLAB_DATA``, else ``~/.cnnlab/data``.

The default sits outside the repository so that a 170 MB data set is never committed by accident
and is shared by every clone; point ``CNNLAB_DATA`` elsewhere (e.g. ``export CNNLAB_DATA=$PWD/data``)
to keep it beside the project. Nothing in :mod:`cnnlab.data` downloads anything.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DEFAULT_DATA_ROOT", "data_root"]

DEFAULT_DATA_ROOT = "~/.cnnlab/data"


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder that holds local data sets.

    Args:
        root: an explicit folder; wins over everything else.

    Returns:
        pathlib.Path, user-expanded (``~``), not necessarily existing: ``root`` if given, else the
        environment variable ``CNNLAB_DATA`` if set and non-empty, else ``~/.cnnlab/data``.
    """
    if root is None:
        root = os.environ.get("CNNLAB_DATA", "").strip() or DEFAULT_DATA_ROOT
    return Path(root).expanduser()
