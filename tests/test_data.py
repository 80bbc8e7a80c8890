"""cnnlab.data: digits, synthetic images, splits, normalization, augmentation, loaders."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from sklearn.datasets import load_digits as sk_load_digits

from cnnlab import data as D


# ----------------------------------------------------------------------------- digits
def test_digits_8x8_matches_sklearn():
    X, y = D.load_digits(8)
    bunch = sk_load_digits()
    assert X.shape == (1797, 1, 8, 8) and X.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    np.testing.assert_allclose(X[:, 0] * 16, bunch.images, atol=1e-5)  # 0..16 scaled to [0, 1]
    np.testing.assert_array_equal(y, bunch.target)


@pytest.mark.parametrize("size", [16, 32])
def test_digits_upsampled_bilinear(size):
    X, y = D.load_digits(size)
    assert X.shape == (1797, 1, size, size) and X.dtype == np.float32
    assert X.min() >= 0.0 and X.max() <= 1.0
    # Independent oracle: bilinear with align_corners=False maps the 8x8 pixel centres to an
    # average of 2x2 (or 4x4) output pixels only approximately, but the image mean is preserved
    # within a small tolerance and the result correlates almost perfectly with the average-pooled image.
    X8 = sk_load_digits().images.astype(np.float32)[:, None] / 16
    pooled = F.avg_pool2d(torch.from_numpy(X), size // 8).numpy()
    assert np.corrcoef(pooled.ravel(), X8.ravel())[0, 1] > 0.97
    np.testing.assert_allclose(X.mean(axis=(1, 2, 3)), X8.mean(axis=(1, 2, 3)), atol=0.03)


def test_digits_bad_arguments():
    with pytest.raises(ValueError, match="size"):
        D.load_digits(12)
    with pytest.raises(ValueError, match="split"):
        D.load_digits(8, "training")


def test_digits_splits_partition_and_classes():
    parts = [D.load_digits(8, s, seed=3) for s in ("train", "val", "test")]
    n = [len(y) for _, y in parts]
    assert sum(n) == 1797
    assert abs(n[1] - 0.2 * 1797) <= 10 and abs(n[2] - 0.2 * 1797) <= 10
    # No image appears in two splits (rows are distinct images up to exact duplicates in sklearn).
    rows = [set(map(bytes, X.reshape(len(X), -1))) for X, _ in parts]
    all_rows = set(map(bytes, D.load_digits(8)[0].reshape(1797, -1)))
    assert len(rows[0] | rows[1] | rows[2]) == len(all_rows)
    X, y = D.load_digits(8, classes=(5, 6, 7, 8, 9))
    target = sk_load_digits().target
    assert len(y) == int(np.isin(target, [5, 6, 7, 8, 9]).sum())
    np.testing.assert_array_equal(np.unique(y), np.arange(5))
    np.testing.assert_array_equal(y, target[target >= 5] - 5)


def test_get_digits_data_normalized_with_train_stats():
    data = D.get_digits_data(16, seed=0)
    for s in ("train", "val", "test"):
        assert data[f"X_{s}"].dtype == np.float32 and data[f"X_{s}"].shape[1:] == (1, 16, 16)
        assert data[f"y_{s}"].dtype == np.int64
    np.testing.assert_allclose(data["X_train"].mean(), 0.0, atol=1e-4)
    np.testing.assert_allclose(data["X_train"].std(), 1.0, atol=1e-3)
    raw = D.get_digits_data(16, seed=0, normalize=False)
    mean, std = raw["X_train"].mean(), raw["X_train"].std()  # independent: numpy over the train split
    np.testing.assert_allclose(data["mean"], [mean], rtol=1e-5)
    np.testing.assert_allclose(data["X_val"], (raw["X_val"] - mean) / std, atol=1e-4)
    assert abs(data["X_val"].mean()) > 1e-6  # the validation split was not normalized with its own stats


# ----------------------------------------------------------------------------- splits
@given(st.integers(2, 6), st.integers(5, 40), st.integers(0, 10_000))
def test_stratified_split_keeps_class_proportions(k, per_class, seed):
    y = np.repeat(np.arange(k), per_class)
    idx = D.split_indices(y, val=0.2, test=0.3, seed=seed)
    together = np.sort(np.concatenate([idx["train"], idx["val"], idx["test"]]))
    np.testing.assert_array_equal(together, np.arange(len(y)))  # a partition
    for name, frac in (("val", 0.2), ("test", 0.3)):
        counts = np.bincount(y[idx[name]], minlength=k)
        assert np.all(counts == int(round(per_class * frac)))
    again = D.split_indices(y, val=0.2, test=0.3, seed=seed)
    for s in idx:
        np.testing.assert_array_equal(idx[s], again[s])


def test_split_bad_fractions():
    with pytest.raises(ValueError, match="val"):
        D.split_indices(np.zeros(10, int), val=1.2)
    with pytest.raises(ValueError, match="val \\+ test"):
        D.split_indices(np.zeros(10, int), val=0.5, test=0.5)
    with pytest.raises(ValueError, match="labels"):
        D.make_splits(np.zeros((4, 1, 2, 2), np.float32), np.zeros(3, int))


def test_subsample_per_class(rng):
    y = rng.integers(0, 4, size=200)
    X = rng.random((200, 1, 2, 2)).astype(np.float32)
    Xs, ys = D.subsample_per_class(X, y, 7, seed=1)
    np.testing.assert_array_equal(np.bincount(ys), [7, 7, 7, 7])
    with pytest.raises(ValueError, match="fewer than n_per_class"):
        D.subsample_per_class(X, y, 500)


def test_channel_stats_and_normalize(rng):
    X = rng.normal(3.0, 2.0, size=(50, 3, 4, 5)).astype(np.float32) * np.array([1, 2, 3], np.float32)[:, None, None]
    mean, std = D.channel_stats(X)
    assert mean.shape == (3,) and std.shape == (3,)
    for c in range(3):  # oracle: numpy on each channel's values
        np.testing.assert_allclose(mean[c], X[:, c].mean(), rtol=1e-5)
        np.testing.assert_allclose(std[c], X[:, c].std(), rtol=1e-5)
    Z = D.normalize(X, mean, std)
    np.testing.assert_allclose(Z.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(Z.std(axis=(0, 2, 3)), 1, atol=1e-4)
    with pytest.raises(ValueError, match="shape \\(C,\\)"):
        D.normalize(X, mean[:2], std)


# ----------------------------------------------------------------------------- synthetic
@pytest.mark.parametrize("task", sorted(D.SYNTHETIC_TASKS))
def test_make_shapes_deterministic_balanced(task):
    X, y = D.make_shapes(41, 24, task, seed=5)
    k = len(D.SYNTHETIC_TASKS[task])
    assert X.shape == (41, 3, 24, 24) and X.dtype == np.float32 and y.dtype == np.int64
    assert X.min() >= 0 and X.max() <= 1
    counts = np.bincount(y, minlength=k)
    assert counts.max() - counts.min() <= 1
    X2, y2 = D.make_shapes(41, 24, task, seed=5)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    X3, _ = D.make_shapes(41, 24, task, seed=6)
    assert not np.array_equal(X, X3)


def test_make_shapes_classes_are_distinguishable():
    """A nearest-class-mean classifier on simple hand-made features beats chance by far: the
    labels describe the images (oracle independent of any network)."""
    # colors: the summed chroma (pixel minus its gray level) points towards the blob's colour
    X, y = D.make_shapes(200, 16, "colors", seed=0, noise=0.0)
    feats = (X - X.mean(axis=1, keepdims=True)).sum(axis=(2, 3))
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    centres = np.stack([feats[y == c].mean(0) for c in range(4)])
    pred = np.argmin(((feats[:, None] - centres[None]) ** 2).sum(-1), axis=1)
    assert (pred == y).mean() > 0.9
    # edges: the bright side is where the image gradient points
    X, y = D.make_shapes(200, 16, "edges", seed=0, noise=0.0, channels=1)
    g = X[:, 0]
    gx = (g[:, :, 8:].mean((1, 2)) - g[:, :, :8].mean((1, 2)))
    gy = (g[:, 8:, :].mean((1, 2)) - g[:, :8, :].mean((1, 2)))
    pred = np.select([np.abs(gx) >= np.abs(gy), True], [np.where(gx > 0, 0, 2), np.where(gy > 0, 1, 3)])
    assert (pred == y).mean() > 0.9


def test_make_shapes_bad_arguments():
    with pytest.raises(ValueError, match="task"):
        D.make_shapes(10, task="stripes")
    with pytest.raises(ValueError, match="channels=3"):
        D.make_shapes(10, task="colors", channels=1)
    with pytest.raises(ValueError, match="n must be"):
        D.make_shapes(2, task="bars")


def test_synthetic_dataset_and_shapes_data():
    ds = D.SyntheticImages(12, 16, "bars", seed=0, channels=1)
    x, y = ds[3]
    assert x.shape == (1, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert len(ds) == 12 and ds.classes == list(D.SYNTHETIC_TASKS["bars"])
    data = D.get_shapes_data(60, 16, "shapes", seed=1)
    assert data["X_train"].shape[1:] == (3, 16, 16) and len(data["classes"]) == 3


# ----------------------------------------------------------------------------- augmentation
def test_numpy_flip_and_crop(rng):
    X = rng.random((64, 2, 5, 6)).astype(np.float32)
    Xf = D.random_flip(X, np.random.default_rng(0))
    flipped = np.array([np.array_equal(a, b[..., ::-1]) for a, b in zip(Xf, X)])
    kept = np.array([np.array_equal(a, b) for a, b in zip(Xf, X)])
    assert np.all(flipped | kept) and 10 < flipped.sum() < 54
    Xc = D.random_crop(X, np.random.default_rng(0), padding=2)
    assert Xc.shape == X.shape
    # Each crop equals X shifted by some (dy, dx) in [-2, 2]^2 with zeros entering (oracle: brute force).
    P = np.pad(X, ((0, 0), (0, 0), (2, 2), (2, 2)))
    for i in range(len(X)):
        assert any(np.array_equal(Xc[i], P[i, :, t:t + 5, l:l + 6]) for t in range(5) for l in range(5))
    np.testing.assert_array_equal(D.random_crop(X, np.random.default_rng(0), padding=0), X)


def test_torch_transforms_seeded():
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(2, 4, 4)
    g = torch.Generator().manual_seed(0)
    outs = [D.RandomHorizontalFlip(generator=g)(x) for _ in range(40)]
    n_flip = sum(torch.equal(o, x.flip(-1)) for o in outs)
    assert all(torch.equal(o, x) or torch.equal(o, x.flip(-1)) for o in outs) and 5 < n_flip < 35
    crop = D.RandomCrop(padding=1, generator=torch.Generator().manual_seed(1))
    padded = F.pad(x, (1, 1, 1, 1))
    for _ in range(20):
        c = crop(x)
        assert c.shape == x.shape
        assert any(torch.equal(c, padded[:, t:t + 4, l:l + 4]) for t in range(3) for l in range(3))
    a = D.RandomCrop(padding=2, generator=torch.Generator().manual_seed(3))
    b = D.RandomCrop(padding=2, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(a(x), b(x)) for _ in range(10))
    norm = D.Normalize([1.0, 2.0], [2.0, 4.0])(x)
    torch.testing.assert_close(norm[1], (x[1] - 2) / 4)


def test_make_loaders():
    data = D.get_digits_data(8, seed=0)
    loaders = D.make_loaders(data, batch_size=32, seed=0)
    assert set(loaders) == {"train", "val", "test"}
    xb, yb = next(iter(loaders["train"]))
    assert xb.shape == (32, 1, 8, 8) and xb.dtype == torch.float32 and yb.dtype == torch.int64
    seen = torch.cat([y for _, y in loaders["val"]]).numpy()
    np.testing.assert_array_equal(seen, data["y_val"])  # val: not shuffled, complete
    order1 = torch.cat([y for _, y in D.make_loaders(data, 32, seed=7)["train"]])
    order2 = torch.cat([y for _, y in D.make_loaders(data, 32, seed=7)["train"]])
    order3 = torch.cat([y for _, y in D.make_loaders(data, 32, seed=8)["train"]])
    assert torch.equal(order1, order2) and not torch.equal(order1, order3)
    np.testing.assert_array_equal(np.sort(order1.numpy()), np.sort(data["y_train"]))
    aug = D.make_loaders(data, 32, augment=True, flip=False, padding=1, seed=0)["train"]
    xa, _ = next(iter(aug))
    assert xa.shape == (32, 1, 8, 8)


def test_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path))
    assert D.data_root() == tmp_path
    assert D.data_root("/x/y") == D.data_root("/x/y")
    monkeypatch.delenv("CNNLAB_DATA")
    assert str(D.data_root()).endswith(".cnnlab/data")
