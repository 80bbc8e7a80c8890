"""cnnlab.data.cifar10 on small files written here in CIFAR-10's exact pickle format."""
import hashlib
import pickle

import numpy as np
import pytest

from cnnlab.data import cifar10 as C

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FILES = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]


def write_batch(path, images_nhwc, labels, batch_label=b"training batch"):
    """Write like the original: dict with bytes keys, b'data' uint8 (n, 3072) = R plane, G plane,
    B plane of each 32x32 image in row-major order; protocol 2."""
    n = len(labels)
    data = images_nhwc.transpose(0, 3, 1, 2).reshape(n, 3072)  # independent of the loader's reshape
    entry = {b"batch_label": batch_label, b"labels": [int(v) for v in labels], b"data": data,
             b"filenames": [b"img_%d.png" % i for i in range(n)]}
    with open(path, "wb") as f:
        pickle.dump(entry, f, protocol=2)


@pytest.fixture
def cifar_root(tmp_path):
    """A CIFAR-10-format folder with 300 training images per batch and 200 test images."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    truth = {}
    for name in FILES:
        n = 200 if name == "test_batch" else 300
        imgs = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)  # HWC like an image file
        labels = rng.integers(0, 10, size=n)
        write_batch(folder / name, imgs, labels)
        truth[name] = (imgs, labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"num_cases_per_batch": 300, b"label_names": [s.encode() for s in NAMES], b"num_vis": 3072},
                    f, protocol=2)
    return tmp_path, truth


def test_load_cifar10_values_and_layout(cifar_root):
    root, truth = cifar_root
    d = C.load_cifar10(root, as_float=False)
    assert d["X_train"].shape == (1500, 3, 32, 32) and d["X_train"].dtype == np.uint8
    assert d["X_test"].shape == (200, 3, 32, 32) and d["y_test"].dtype == np.int64
    assert d["classes"] == NAMES
    imgs, labels = truth["data_batch_2"]
    # pixel (row 5, col 7) of image 3 of batch 2, red/green/blue channel
    for c in range(3):
        assert d["X_train"][300 + 3, c, 5, 7] == imgs[3, 5, 7, c]
    np.testing.assert_array_equal(d["X_train"][300:600].transpose(0, 2, 3, 1), imgs)
    np.testing.assert_array_equal(d["y_train"][300:600], labels)
    f = C.load_cifar10(root)
    assert f["X_train"].dtype == np.float32
    np.testing.assert_allclose(f["X_test"] * 255, d["X_test"], atol=1e-3)


def test_env_var_root(cifar_root, monkeypatch):
    root, _ = cifar_root
    monkeypatch.setenv("CNNLAB_DATA", str(root))
    assert C.load_cifar10()["X_test"].shape[0] == 200


def test_get_cifar10_data_splits(cifar_root):
    root, truth = cifar_root
    d = C.get_cifar10_data(root, num_training=1400, num_validation=100, num_test=150, normalize=False)
    assert [len(d[f"y_{s}"]) for s in ("train", "val", "test")] == [1400, 100, 150]
    np.testing.assert_array_equal(d["y_val"], truth["data_batch_5"][1][200:300])  # the last 100 training images
    n = C.get_cifar10_data(root, num_training=1400, num_validation=100)
    for c in range(3):
        np.testing.assert_allclose(n["mean"][c], d["X_train"][:, c].mean(), rtol=1e-5)
    np.testing.assert_allclose(n["X_train"].mean(axis=(0, 2, 3)), 0, atol=1e-4)
    with pytest.raises(ValueError, match="num_training"):
        C.get_cifar10_data(root, num_training=1500, num_validation=100)


def test_missing_folder_message(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        C.load_cifar10(tmp_path)
    msg = str(info.value)
    assert str(tmp_path / "cifar-10-batches-py") in msg
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in msg
    assert "c58f30108f718f92721af3b95e74349a" in msg and "CNNLAB_DATA" in msg and "tar -xzf" in msg


def test_missing_file_message(cifar_root):
    root, _ = cifar_root
    (root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="lacks data_batch_3"):
        C.load_cifar10(root)


@pytest.mark.parametrize("entry, match", [
    ({b"labels": [0]}, "missing key b'data'"),
    ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "uint8"),
    ({b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}, "3072"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "one label per image"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "0..9"),
])
def test_malformed_batch(tmp_path, entry, match):
    path = tmp_path / "data_batch_1"
    with open(path, "wb") as f:
        pickle.dump(entry, f, protocol=2)
    with pytest.raises(ValueError, match=match):
        C.load_cifar10_batch(path)


def test_not_a_pickle(tmp_path):
    path = tmp_path / "test_batch"
    path.write_bytes(b"this is not a pickle")
    with pytest.raises(ValueError, match="not a CIFAR-10 pickle"):
        C.load_cifar10_batch(path)


def test_checksum_of_full_size_batch(tmp_path):
    """A 10,000-image batch is treated as an original file: its md5 must match torchvision's."""
    path = tmp_path / "data_batch_1"
    write_batch(path, np.zeros((10000, 32, 32, 3), np.uint8), np.arange(10000) % 10)
    real_md5 = dict(C.CIFAR10_TRAIN_FILES)["data_batch_1"]
    assert real_md5 == "c99cafc152244af753f735de768cd75f"
    with pytest.raises(C.CIFAR10ChecksumError, match="checksum mismatch.*verify=False"):
        C.load_cifar10_batch(path, real_md5)
    X, y = C.load_cifar10_batch(path, real_md5, verify=False)
    assert X.shape == (10000, 3, 32, 32)
    own = hashlib.md5(path.read_bytes()).hexdigest()  # a matching md5 passes
    assert C.load_cifar10_batch(path, own)[0].shape == (10000, 3, 32, 32)


def test_small_batches_skip_md5(cifar_root):
    root, _ = cifar_root
    X, _ = C.load_cifar10_batch(root / "cifar-10-batches-py" / "data_batch_1", "0" * 32)
    assert X.shape == (300, 3, 32, 32)


def test_write_cifar10_like_roundtrip(tmp_path):
    folder = C.write_cifar10_like(tmp_path, n_per_batch=20, n_test=30, seed=0)
    assert folder == tmp_path / "cifar-10-batches-py"
    with open(folder / "data_batch_1", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    assert set(raw) == {b"batch_label", b"labels", b"data", b"filenames"} and raw[b"data"].shape == (20, 3072)
    d = C.load_cifar10(tmp_path)
    assert d["X_train"].shape == (100, 3, 32, 32) and d["X_test"].shape == (30, 3, 32, 32)
    assert np.bincount(d["y_test"]).tolist() == [3] * 10
