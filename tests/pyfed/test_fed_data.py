"""pyfed data: partitions, the CIFAR loaders on files the test writes, augmentation, models."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from pyfed.data.datasets import augment, load_dataset
from pyfed.data.partition import dirichlet_partition, iid_partition, split_clients
from pyfed.models import MODELS, build_model


def _labels(n=600, classes=10, seed=0):
    return np.random.default_rng(seed).integers(0, classes, n)


def test_dirichlet_partition_covers_everything_once_and_is_seeded():
    y = _labels()
    parts = dirichlet_partition(y, 12, 0.1, seed=3)
    allidx = np.concatenate(parts)
    assert sorted(allidx.tolist()) == list(range(len(y)))
    assert min(len(p) for p in parts) >= 2
    again = dirichlet_partition(y, 12, 0.1, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    other = dirichlet_partition(y, 12, 0.1, seed=4)
    assert any(not np.array_equal(a, b) for a, b in zip(parts, other, strict=True))


def test_dirichlet_skew_grows_as_alpha_shrinks():
    y = _labels(3000)

    def classes_per_client(alpha):
        parts = dirichlet_partition(y, 20, alpha, seed=0)
        # classes holding >= 5% of a client's data
        return np.mean([(np.bincount(y[p], minlength=10) / len(p) >= 0.05).sum() for p in parts])

    assert classes_per_client(0.1) < 4 < classes_per_client(100.0)


def test_iid_partition_and_split():
    parts = iid_partition(103, 10, seed=0)
    assert sorted(len(p) for p in parts) == [10] * 7 + [11] * 3
    splits = split_clients(parts, 0.2, seed=0)
    for s, p in zip(splits, parts, strict=True):
        assert set(s.train) | set(s.test) == set(p) and not set(s.train) & set(s.test) and len(s.train) >= 1


def test_partition_errors():
    with pytest.raises(ValueError, match="alpha"):
        dirichlet_partition(_labels(), 5, 0.0, seed=0)
    with pytest.raises(ValueError, match="num_clients"):
        iid_partition(10, 0, seed=0)
    with pytest.raises(ValueError, match="min_size"):
        dirichlet_partition(_labels(10), 8, 1.0, seed=0, min_size=2)


def test_digits_is_real_and_split_is_stratified():
    d = load_dataset("digits")
    assert d.x_train.shape[1:] == (1, 8, 8) and d.num_classes == 10
    assert len(d.y_train) + len(d.y_test) == 1797
    frac = np.bincount(d.y_test.numpy(), minlength=10) / np.bincount(
        np.concatenate([d.y_train.numpy(), d.y_test.numpy()]), minlength=10
    )
    assert np.all(np.abs(frac - 0.2) < 0.02)


def _write_cifar(root, name):
    rng = np.random.default_rng(0)
    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        folder.mkdir()
        for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            with open(folder / f, "wb") as fh:
                pickle.dump(
                    {
                        b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
                        b"labels": rng.integers(0, 10, 4).tolist(),
                    },
                    fh,
                )
    else:
        folder = root / "cifar-100-python"
        folder.mkdir()
        for f in ("train", "test"):
            with open(folder / f, "wb") as fh:
                pickle.dump(
                    {
                        b"data": rng.integers(0, 256, (6, 3072), dtype=np.uint8),
                        b"fine_labels": rng.integers(0, 100, 6).tolist(),
                        b"coarse_labels": rng.integers(0, 20, 6).tolist(),
                    },
                    fh,
                )


@pytest.mark.parametrize("name,n_train,classes", [("cifar10", 20, 10), ("cifar100", 6, 100)])
def test_cifar_loaders_read_the_standard_layout(tmp_path, name, n_train, classes):
    _write_cifar(tmp_path, name)
    d = load_dataset(name, data_dir=tmp_path)
    assert d.x_train.shape == (n_train, 3, 32, 32) and d.num_classes == classes and d.augment
    # Pixel (channel 0, row 0, col 1) is byte 1 of the row: check the CHW layout and normalization.
    with open(
        next((tmp_path).glob("cifar-*")) / ("data_batch_1" if name == "cifar10" else "train"), "rb"
    ) as f:
        raw = pickle.load(f, encoding="bytes")[b"data"][0]
    mean0, std0 = (0.4914, 0.2470) if name == "cifar10" else (0.5071, 0.2673)
    assert abs(float(d.x_train[0, 0, 0, 1]) - (raw[1] / 255 - mean0) / std0) < 1e-5
    assert (
        abs(
            float(d.x_train[0, 1, 0, 0])
            - (raw[1024] / 255 - (0.4822 if name == "cifar10" else 0.4865))
            / (0.2435 if name == "cifar10" else 0.2564)
        )
        < 1e-5
    )


def test_cifar_missing_folder_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "cifar-100-python")):
        load_dataset("cifar100", data_dir=tmp_path)


def test_augment_crops_and_flips_training_batches_only():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6)
    g = torch.Generator().manual_seed(0)
    out = augment(x, g, pad=0)  # no padding: only flips remain
    for i in range(2):
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))
    out = augment(x, torch.Generator().manual_seed(1), pad=2)
    assert out.shape == x.shape


@pytest.mark.parametrize("name", MODELS)
def test_models_forward(name):
    torch.manual_seed(0)
    shape = (3, 32, 32) if name != "cnn" else (1, 8, 8)
    m = build_model(name, shape, 7)
    out = m(torch.randn(2, *shape))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    assert hasattr(m, "head")
