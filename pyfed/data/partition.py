"""Client partitions of a labelled data set: IID and Dirichlet(α) label skew, with per-client
train/test splits. Everything is a function of (labels, seed): the same seed gives the same partition.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ClientSplit", "dirichlet_partition", "iid_partition", "split_clients"]


def iid_partition(num_examples: int, num_clients: int, seed: int) -> list[np.ndarray]:
    """A random permutation cut into ``num_clients`` near-equal parts (sizes differ by at most 1)."""
    _check_counts(num_examples, num_clients)
    perm = np.random.default_rng(seed).permutation(num_examples)
    return [np.sort(part) for part in np.array_split(perm, num_clients)]


def dirichlet_partition(
    labels: np.ndarray, num_clients: int, alpha: float, seed: int, min_size: int = 2, max_tries: int = 1000
) -> list[np.ndarray]:
    """Label-skew partition (Hsu et al., 2019): for every class c, proportions p_c ~ Dir(α·1_N) over the
    N clients, and the examples of class c are dealt out in those proportions. Small α gives clients
    few classes each. Redrawn (same generator, so still a function of the seed) until every client holds
    at least ``min_size`` examples.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    _check_counts(len(labels), num_clients)
    if not (alpha > 0 and np.isfinite(alpha)):
        raise ValueError(f"alpha (Dirichlet concentration) must be a positive finite number, got {alpha}")
    if min_size * num_clients > len(labels):
        raise ValueError(
            f"min_size={min_size} per client needs {min_size * num_clients} examples, "
            f"the data set has {len(labels)}"
        )
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    for _ in range(max_tries):
        parts: list[list[int]] = [[] for _ in range(num_clients)]
        for c in classes:
            idx = rng.permutation(np.flatnonzero(labels == c))
            p = rng.dirichlet(np.full(num_clients, alpha))
            cuts = (np.cumsum(p)[:-1] * len(idx)).astype(int)
            for k, chunk in enumerate(np.split(idx, cuts)):
                parts[k].extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    raise RuntimeError(
        f"no Dirichlet({alpha}) partition with >= {min_size} examples per client in "
        f"{max_tries} draws: lower min_size or num_clients, or raise alpha"
    )


@dataclass(frozen=True)
class ClientSplit:
    train: np.ndarray
    test: np.ndarray


def split_clients(parts: list[np.ndarray], test_fraction: float, seed: int) -> list[ClientSplit]:
    """Cut each client's indices into a local train and test set (at least one training example)."""
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    out = []
    for idx in parts:
        perm = rng.permutation(idx)
        n_test = min(int(round(test_fraction * len(idx))), len(idx) - 1)
        out.append(ClientSplit(train=np.sort(perm[n_test:]), test=np.sort(perm[:n_test])))
    return out


def _check_counts(num_examples: int, num_clients: int) -> None:
    if num_clients < 1:
        raise ValueError(f"num_clients must be >= 1, got {num_clients}")
    if num_examples < num_clients:
        raise ValueError(f"{num_examples} examples cannot be split over {num_clients} clients")
