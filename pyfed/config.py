"""Run configuration: one dataclass, defaults that run on a laptop CPU in a minute, named presets."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from kernels.runs import cosine_lr

__all__ = ["PRESETS", "FedConfig", "lr_at"]


@dataclass
class FedConfig:
    algo: str = "fedavg"
    algo_args: dict[str, Any] = field(default_factory=dict)  # the algorithm's hyperparameters
    dataset: str = "digits"
    data_dir: str | None = None
    model: str = "cnn"
    partition: str = "dirichlet"  # "dirichlet" | "iid"
    alpha: float = 0.1  # Dirichlet concentration
    clients: int = 20  # N
    clients_per_round: int = 5  # S (sampled without replacement each round), or E|S_t| under Poisson
    sampling: str = "fixed"  # "fixed": S of N without replacement | "poisson": each client w.p. q = S/N
    rounds: int = 50
    local_steps: int = 10  # K
    batch_size: int = 32
    lr: float | None = None  # None: the algorithm's default_lr
    lr_decay: str = "cosine"  # "cosine" | "exp" | "none"
    lr_decay_rate: float = 0.998  # per round, for "exp"
    lr_min_ratio: float = 0.01  # the cosine schedule's floor, as a fraction of lr
    grad_clip: float | None = 10.0  # max grad norm per local step, as the authors' code clips
    weighting: str = "uniform"  # server mean: "uniform" (as the papers) or "examples"
    client_test_fraction: float = 0.2  # each client's local test split
    eval_every: int = 1
    checkpoint_every: int = 10
    seed: int = 0
    device: str = "auto"  # "auto" (cuda when available), "cpu", "cuda", "cuda:1", ...
    threads: int | None = None  # torch intra-op threads (None: torch's default); 1 suits tiny models
    name: str | None = None
    runs_dir: str = "runs"

    def validate(self) -> FedConfig:
        from pyfed.algorithms import algorithm_class
        from pyfed.data.datasets import DATASETS
        from pyfed.models import MODELS

        algorithm_class(self.algo, arg="algo")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.partition not in ("dirichlet", "iid"):
            raise ValueError(f"partition must be 'dirichlet' or 'iid', got {self.partition!r}")
        if not 1 <= self.clients_per_round <= self.clients:
            raise ValueError(
                f"clients_per_round must be in [1, clients={self.clients}], got {self.clients_per_round}"
            )
        if self.sampling not in ("fixed", "poisson"):
            raise ValueError(f"sampling must be 'fixed' or 'poisson', got {self.sampling!r}")
        for name in ("rounds", "local_steps", "batch_size", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.lr_decay not in ("cosine", "exp", "none"):
            raise ValueError(f"lr_decay must be 'cosine', 'exp' or 'none', got {self.lr_decay!r}")
        return self

    def run_name(self) -> str:
        return (
            self.name or f"{self.algo}-{self.dataset}-{self.model}-n{self.clients}-a{self.alpha}-s{self.seed}"
        )

    def replace(self, **changes: Any) -> FedConfig:
        return dataclasses.replace(self, **changes)


def lr_at(cfg: FedConfig, base_lr: float, round_: int) -> float:
    """The round's client learning rate: cosine from lr to lr·lr_min_ratio over the run, exponential
    lr·rate^round, or constant."""
    if cfg.lr_decay == "cosine":
        return cosine_lr(base_lr, round_, cfg.rounds, floor=cfg.lr_min_ratio)
    if cfg.lr_decay == "exp":
        return base_lr * cfg.lr_decay_rate**round_
    return base_lr


# Paper-scale settings; they run when their data folder exists (--data-dir).
PRESETS: dict[str, dict[str, Any]] = {
    "cifar100-resnet18-dir0.1": dict(
        dataset="cifar100",
        model="resnet18",
        partition="dirichlet",
        alpha=0.1,
        clients=100,
        clients_per_round=10,
        local_steps=50,
        batch_size=50,
        rounds=300,
        lr_decay="exp",
        lr_decay_rate=0.998,
    ),
    "digits-noniid": dict(
        dataset="digits",
        model="cnn",
        partition="dirichlet",
        alpha=0.1,
        clients=20,
        clients_per_round=5,
        local_steps=10,
        batch_size=32,
        rounds=100,
    ),
}
