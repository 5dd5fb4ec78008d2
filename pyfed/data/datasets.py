"""Data sets for the simulator, all held in memory as tensors.

- ``digits``: scikit-learn's ``load_digits`` (1,797 real 8×8 handwritten digits, ships with sklearn).
- ``synthetic``: class-prototype images plus noise, for quick runs and tests.
- ``cifar10`` / ``cifar100``: the standard python-pickle folders ``cifar-10-batches-py`` /
  ``cifar-100-python`` under ``data_dir``; nothing is downloaded — a missing folder is an error naming it.

Train-time augmentation (random crop with 4-pixel padding and horizontal flip, CIFAR only) is applied
to training batches only, never to test data.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["DATASETS", "Dataset", "augment", "load_dataset"]

DATASETS = ("digits", "synthetic", "cifar10", "cifar100")
_CIFAR_MEAN = {"cifar10": (0.4914, 0.4822, 0.4465), "cifar100": (0.5071, 0.4865, 0.4409)}
_CIFAR_STD = {"cifar10": (0.2470, 0.2435, 0.2616), "cifar100": (0.2673, 0.2564, 0.2762)}


@dataclass
class Dataset:
    name: str
    x_train: Tensor  # (n, C, H, W) float32, normalized
    y_train: Tensor  # (n,) int64
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    augment: bool  # random crop + flip on training batches

    def to(self, device: torch.device | str) -> Dataset:
        for name in ("x_train", "y_train", "x_test", "y_test"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    seed: int = 0,
    test_fraction: float = 0.2,
    synthetic_size: int = 2000,
) -> Dataset:
    """Load ``name`` (one of ``DATASETS``). digits and synthetic hold out ``test_fraction`` (stratified,
    seeded) as the global test set; CIFAR uses its own test split."""
    if name == "digits":
        return _digits(seed, test_fraction)
    if name == "synthetic":
        return _synthetic(seed, test_fraction, synthetic_size)
    if name in ("cifar10", "cifar100"):
        if data_dir is None:
            raise ValueError(
                f"dataset {name!r} needs data_dir (--data-dir): the folder holding "
                f"{'cifar-10-batches-py' if name == 'cifar10' else 'cifar-100-python'}"
            )
        return _cifar(name, Path(data_dir))
    raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")


def _stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        test.extend(idx[: int(round(test_fraction * len(idx)))].tolist())
    test = np.sort(np.asarray(test, dtype=np.int64))
    train = np.setdiff1d(np.arange(len(y)), test)
    return train, test


def _digits(seed: int, test_fraction: float) -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0).unsqueeze(1)
    x = (x - 0.3) / 0.4  # roughly zero-mean, unit-variance pixels
    y = torch.from_numpy(d.target.astype(np.int64))
    tr, te = _stratified_split(d.target, test_fraction, seed)
    return Dataset("digits", x[tr], y[tr], x[te], y[te], 10, augment=False)


def _synthetic(seed: int, test_fraction: float, n: int, num_classes: int = 10) -> Dataset:
    g = torch.Generator().manual_seed(10_000 + seed)
    protos = torch.randn(num_classes, 1, 8, 8, generator=g)
    y = torch.arange(n) % num_classes
    y = y[torch.randperm(n, generator=g)]
    x = protos[y] + 1.0 * torch.randn(n, 1, 8, 8, generator=g)
    tr, te = _stratified_split(y.numpy(), test_fraction, seed)
    return Dataset("synthetic", x[tr], y[tr], x[te], y[te], num_classes, augment=False)


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(
            f"CIFAR file {str(path)!r} does not exist (no download at run time: "
            "put the standard python-pickle folder there)"
        )
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


def _cifar(name: str, data_dir: Path) -> Dataset:
    folder = data_dir / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{name} folder {str(folder)!r} does not exist (no download at run time: "
            f"unpack the python version of {name} under {str(data_dir)!r})"
        )
    if name == "cifar10":
        train = [_unpickle(folder / f"data_batch_{i}") for i in range(1, 6)]
        test = _unpickle(folder / "test_batch")
        key = b"labels"
        xtr = np.concatenate([b[b"data"] for b in train])
        ytr = np.concatenate([np.asarray(b[key]) for b in train])
        classes = 10
    else:
        tr = _unpickle(folder / "train")
        test = _unpickle(folder / "test")
        key = b"fine_labels"
        xtr, ytr = np.asarray(tr[b"data"]), np.asarray(tr[key])
        classes = 100
    xte, yte = np.asarray(test[b"data"]), np.asarray(test[key])

    def to_tensor(a: np.ndarray) -> Tensor:
        if a.ndim != 2 or a.shape[1] != 3072:
            raise ValueError(f"{name}: expected rows of 3072 uint8 pixels, got shape {a.shape}")
        x = torch.from_numpy(a.astype(np.float32) / 255.0).view(-1, 3, 32, 32)
        mean = torch.tensor(_CIFAR_MEAN[name]).view(1, 3, 1, 1)
        std = torch.tensor(_CIFAR_STD[name]).view(1, 3, 1, 1)
        return (x - mean) / std

    return Dataset(
        name,
        to_tensor(xtr),
        torch.from_numpy(ytr.astype(np.int64)),
        to_tensor(xte),
        torch.from_numpy(yte.astype(np.int64)),
        classes,
        augment=True,
    )


def augment(x: Tensor, generator: torch.Generator, pad: int = 4) -> Tensor:
    """Random crop (zero padding ``pad``) and horizontal flip, per example, drawn from ``generator`` (a CPU
    generator: the draws are the same whichever device ``x`` is on)."""
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    rows = dy.view(n, 1) + torch.arange(h).view(1, h)  # (n, h)
    cols = dx.view(n, 1) + torch.arange(w).view(1, w)  # (n, w)
    cols = torch.where(flip.view(n, 1), cols.flip(1), cols)
    idx_n = torch.arange(n).view(n, 1, 1)
    dev = x.device
    out = padded.permute(0, 2, 3, 1)[idx_n.to(dev), rows.view(n, h, 1).to(dev), cols.view(n, 1, w).to(dev)]
    return out.permute(0, 3, 1, 2).contiguous()
