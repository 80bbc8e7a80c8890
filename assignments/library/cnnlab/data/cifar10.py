"""CIFAR-10 from a local folder in its standard python-pickle format. Nothing is downloaded.

Expected layout (what ``tar -xzf cifar-10-python.tar.gz`` produces)::

    <root>/cifar-10-batches-py/
        data_batch_1 ... data_batch_5   10,000 training images each
        test_batch                      10,000 test images
        batches.meta                    the ten class names

``<root>`` is the ``root`` argument, else ``$CNNLAB_DATA``, else ``~/.cnnlab/data``
(:func:`cnnlab.data.data_root`). Each batch file is a pickle of a dict with ``b"data"``: uint8
array (n, 3072), every row the 1024 red, then 1024 green, then 1024 blue values of a 32x32 image
in row-major order; ``b"labels"``: n ints in 0..9; ``b"batch_label"`` and ``b"filenames"``.

Every file is validated (keys, dtype, shape, label range). Full-size batches (10,000 images, the
real files) are also checked against the md5 sums torchvision lists; pass ``verify=False`` to
skip that check (e.g. for a re-pickled copy).
"""
from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np

from .paths import data_root

__all__ = [
    "CIFAR10_URL", "CIFAR10_TGZ_MD5", "CIFAR10_FOLDER", "CIFAR10_TRAIN_FILES", "CIFAR10_TEST_FILES",
    "CIFAR10_META", "CIFAR10_CLASSES", "CIFAR10_BATCH_SIZE", "CIFAR10ChecksumError",
    "cifar10_folder", "load_cifar10_batch", "load_cifar10", "get_cifar10_data", "write_cifar10_like",
]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_TGZ_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FOLDER = "cifar-10-batches-py"
# (file name, md5) as listed in torchvision/datasets/cifar.py
CIFAR10_TRAIN_FILES = (
    ("data_batch_1", "c99cafc152244af753f735de768cd75f"),
    ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
    ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
    ("data_batch_4", "634d18415352ddfa80567beed471001a"),
    ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
)
CIFAR10_TEST_FILES = (("test_batch", "40351d587109b95175f43aff81a1287e"),)
CIFAR10_META = ("batches.meta", "5ff9c542aee3614f3951f8cda6e48888")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_BATCH_SIZE = 10000  # images per file in the real data set


class CIFAR10ChecksumError(ValueError):
    """A full-size CIFAR-10 batch file whose md5 differs from the published one."""


def _how_to_get(folder: Path) -> str:
    root = folder.parent
    return (f"CIFAR-10 is not downloaded by CNN Lab. To install it:\n"
            f"  1. download {CIFAR10_URL} (163 MB; md5 {CIFAR10_TGZ_MD5})\n"
            f"  2. extract it so that {folder} exists:\n"
            f"       mkdir -p {root} && tar -xzf cifar-10-python.tar.gz -C {root}\n"
            f"  or put it anywhere and pass root=... or set the environment variable CNNLAB_DATA to the "
            f"folder that contains {CIFAR10_FOLDER}/.")


def cifar10_folder(root=None) -> Path:
    """``<root>/cifar-10-batches-py`` after checking that every expected file is there.

    Raises:
        FileNotFoundError: naming the missing files, where to put them and how to get them.
    """
    folder = data_root(root) / CIFAR10_FOLDER
    names = [n for n, _ in CIFAR10_TRAIN_FILES + CIFAR10_TEST_FILES] + [CIFAR10_META[0]]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        what = f"folder {folder} does not exist" if not folder.is_dir() else \
            f"{folder} lacks {', '.join(missing)}"
        raise FileNotFoundError(f"CIFAR-10 not found: {what}.\n{_how_to_get(folder)}")
    return folder


def _read_pickle(path: Path):
    raw = path.read_bytes()
    try:
        # latin1: the real files were written by Python 2; bytes keys of Python 3 files stay bytes.
        obj = pickle.loads(raw, encoding="latin1")
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise ValueError(f"{path} is not a CIFAR-10 pickle file ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path} must hold a pickled dict, got {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}, raw


def _check_md5(path: Path, raw: bytes, expected: str) -> None:
    got = hashlib.md5(raw).hexdigest()
    if got != expected:
        raise CIFAR10ChecksumError(
            f"checksum mismatch for {path}: md5 is {got}, expected {expected} (torchvision's list for the "
            f"original CIFAR-10). The file is corrupt or not the original: extract {CIFAR10_URL} again, or pass "
            f"verify=False to skip the check.")


def load_cifar10_batch(path, expected_md5: str | None = None, verify: bool = True):
    """Read and validate one batch file.

    Args:
        path: a file such as ``.../cifar-10-batches-py/data_batch_1``.
        expected_md5: the published md5; checked when ``verify`` and the file holds a full
            batch of 10,000 images.
        verify: set False to skip the md5 check (shapes, dtypes and labels are always checked).

    Returns:
        (X, y): X uint8 (n, 3, 32, 32) NCHW (R, G, B channels); y int64 (n,) in 0..9.

    Raises:
        ValueError: for a missing key, a wrong dtype/shape, or labels outside 0..9.
        CIFAR10ChecksumError: (a ValueError) for an md5 mismatch.
    """
    path = Path(path)
    d, raw = _read_pickle(path)
    for key in ("data", "labels"):
        if key not in d:
            raise ValueError(f"{path}: missing key b'{key}' (keys present: {sorted(map(str, d))})")
    data = d["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        dtype = getattr(data, "dtype", type(data).__name__)
        raise ValueError(f"{path}: b'data' must be a uint8 array of shape (n, 3072) = (n, 3*32*32), "
                         f"got dtype {dtype} and shape {shape}")
    labels = np.asarray(d["labels"])
    if labels.ndim != 1 or labels.shape[0] != data.shape[0]:
        raise ValueError(f"{path}: b'labels' must list one label per image: {data.shape[0]} images but "
                         f"labels of shape {labels.shape}")
    if labels.size and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels must be integers in 0..9, got dtype {labels.dtype}, "
                         f"range {labels.min()}..{labels.max()}")
    if verify and expected_md5 is not None and data.shape[0] == CIFAR10_BATCH_SIZE:
        _check_md5(path, raw, expected_md5)
    return data.reshape(-1, 3, 32, 32).copy(), labels.astype(np.int64)


def _load_meta(folder: Path, verify: bool):
    path = folder / CIFAR10_META[0]
    d, raw = _read_pickle(path)
    names = d.get("label_names")
    if names is None or len(names) != 10:
        raise ValueError(f"{path}: b'label_names' must list 10 class names, got {names!r}")
    if verify:
        _check_md5(path, raw, CIFAR10_META[1])
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def load_cifar10(root=None, *, verify: bool = True, as_float: bool = True) -> dict:
    """Load all of CIFAR-10 from ``<root>/cifar-10-batches-py``.

    Args:
        root: folder containing ``cifar-10-batches-py/`` (default: ``$CNNLAB_DATA`` or
            ``~/.cnnlab/data``).
        verify: check the md5 sums of the real (full-size) files.
        as_float: return float32 images in [0, 1] (``uint8 / 255``); otherwise the raw uint8.

    Returns:
        dict with ``X_train`` (50000, 3, 32, 32), ``y_train`` (50000,) int64, ``X_test``
        (10000, 3, 32, 32), ``y_test`` (10000,) int64 and ``classes`` (10 names). Smaller
        files in the same format give correspondingly fewer images.

    Raises:
        FileNotFoundError: when the folder or a file is missing, with instructions.
        ValueError / CIFAR10ChecksumError: for malformed or corrupt files.
    """
    folder = cifar10_folder(root)
    train = [load_cifar10_batch(folder / n, md5, verify) for n, md5 in CIFAR10_TRAIN_FILES]
    test = [load_cifar10_batch(folder / n, md5, verify) for n, md5 in CIFAR10_TEST_FILES]
    full_size = all(len(y) == CIFAR10_BATCH_SIZE for _, y in train + test)
    classes = _load_meta(folder, verify and full_size)
    X_train = np.concatenate([x for x, _ in train])
    X_test = np.concatenate([x for x, _ in test])
    if as_float:
        X_train = X_train.astype(np.float32) / 255.0
        X_test = X_test.astype(np.float32) / 255.0
    return {"X_train": X_train, "y_train": np.concatenate([y for _, y in train]),
            "X_test": X_test, "y_test": np.concatenate([y for _, y in test]), "classes": classes}


def get_cifar10_data(root=None, num_training: int | None = None, num_validation: int = 1000,
                     num_test: int | None = None, *, normalize: bool = True, verify: bool = True) -> dict:
    """CIFAR-10 prepared like CS231n's ``get_CIFAR10_data``, in NCHW.

    The validation set is the ``num_validation`` training images that follow the first
    ``num_training`` ones (the defaults: 49,000 train, the last 1,000 as validation, the whole
    test set). With ``normalize=True`` images are standardized per channel with the mean/std of
    the training split only.

    Returns:
        dict ``X_train, y_train, X_val, y_val, X_test, y_test`` (X float32 (n, 3, 32, 32), y int64)
        plus ``classes`` and, when normalized, ``mean``/``std`` (float32, shape (3,)).
    """
    from .splits import normalize_splits

    raw = load_cifar10(root, verify=verify)
    n_avail, t_avail = len(raw["y_train"]), len(raw["y_test"])
    if num_training is None:
        num_training = n_avail - num_validation
    if num_test is None:
        num_test = t_avail
    if num_training < 1 or num_validation < 0 or num_training + num_validation > n_avail:
        raise ValueError(f"num_training={num_training} + num_validation={num_validation} must be between 1 and "
                         f"the {n_avail} training images available")
    if not 0 <= num_test <= t_avail:
        raise ValueError(f"num_test={num_test} must be between 0 and the {t_avail} test images available")
    X, y = raw["X_train"], raw["y_train"]
    data = {"X_train": X[:num_training], "y_train": y[:num_training],
            "X_val": X[num_training:num_training + num_validation],
            "y_val": y[num_training:num_training + num_validation],
            "X_test": raw["X_test"][:num_test], "y_test": raw["y_test"][:num_test]}
    if normalize:
        data = normalize_splits(data)
    data["classes"] = raw["classes"]
    return data


def write_cifar10_like(root, n_per_batch: int = 100, n_test: int | None = None, *, seed: int = 0) -> Path:
    """Write a small stand-in data set in exactly CIFAR-10's file format (for CI and tests).

    Images are class-coloured noise (each class has its own mean colour), so a network can learn
    them; labels are balanced. Files are pickled dicts with bytes keys, protocol 2, like the
    originals.

    Returns:
        the created ``<root>/cifar-10-batches-py`` folder.
    """
    from ..shapes import check_int

    n_per_batch = check_int("n_per_batch", n_per_batch, 1)
    n_test = n_per_batch if n_test is None else check_int("n_test", n_test, 1)
    folder = Path(root) / CIFAR10_FOLDER
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    palette = rng.uniform(40, 215, size=(10, 3))
    files = [(n, n_per_batch, f"training batch {i + 1} of 5") for i, (n, _) in enumerate(CIFAR10_TRAIN_FILES)]
    files.append((CIFAR10_TEST_FILES[0][0], n_test, "testing batch 1 of 1"))
    for name, n, batch_label in files:
        labels = rng.permutation(np.arange(n) % 10)
        img = palette[labels][:, :, None] + rng.normal(0, 40, size=(n, 3, 1024))
        data = np.clip(img, 0, 255).astype(np.uint8).reshape(n, 3072)
        entry = {b"batch_label": batch_label.encode(), b"labels": [int(v) for v in labels], b"data": data,
                 b"filenames": [f"fake_{name}_{i}.png".encode() for i in range(n)]}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)
    meta = {b"num_cases_per_batch": n_per_batch, b"label_names": [c.encode() for c in CIFAR10_CLASSES],
            b"num_vis": 3072}
    with open(folder / CIFAR10_META[0], "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return folder
