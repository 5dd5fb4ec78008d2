"""Federated algorithms; each file's docstring gives its update rule. ``make_algorithm(name, **hparams)``."""

from __future__ import annotations

from pyfed.algorithms.base import Algorithm, Client, LocalConfig, ServerConfig, model_weights, nbytes
from pyfed.algorithms.dp_fedavg import DPFedAvg, DPFedAvgLS, DPFedSAM, DPFedSMP
from pyfed.algorithms.dp_fedpgn import DPFedPGN, DPFedPGNLS
from pyfed.algorithms.fedadam import FedAdam
from pyfed.algorithms.fedadamw import FedAdamW
from pyfed.algorithms.fedavg import FedAvg, FedAvgM
from pyfed.algorithms.fedcm import FedCM, FedSAM, MoFedSAM
from pyfed.algorithms.fedlada import FedLADA
from pyfed.algorithms.fedmuon import FedMuon
from pyfed.algorithms.fedprox import FedProx
from pyfed.algorithms.local_adamw import LocalAdamW
from pyfed.algorithms.local_muon import LocalMuon
from pyfed.algorithms.scaffold import Scaffold

ALGORITHMS: dict[str, type[Algorithm]] = {
    cls.name: cls
    for cls in (
        FedAvg,
        FedAvgM,
        FedProx,
        Scaffold,
        FedCM,
        FedAdam,
        FedSAM,
        MoFedSAM,
        LocalAdamW,
        LocalMuon,
        FedAdamW,
        FedMuon,
        FedLADA,
        DPFedAvg,
        DPFedSAM,
        DPFedSMP,
        DPFedAvgLS,
        DPFedPGN,
        DPFedPGNLS,
    )
}


def algorithm_class(name: str, *, arg: str = "algorithm") -> type[Algorithm]:
    """The class registered as ``name`` (case and "-"/"_" do not matter); a ValueError naming ``arg``
    and the known names otherwise."""
    key = name.lower().replace("-", "_")
    if key not in ALGORITHMS:
        raise ValueError(f"{arg} must be one of {sorted(ALGORITHMS)}, got {name!r}")
    return ALGORITHMS[key]


def make_algorithm(name: str, **hparams) -> Algorithm:
    """The algorithm ``name`` with its hyperparameters (unknown ones raise TypeError naming them)."""
    cls = algorithm_class(name)
    try:
        return cls(**hparams)
    except TypeError as e:
        raise TypeError(f"{cls.name}: {e}") from None


__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "Client",
    "LocalConfig",
    "ServerConfig",
    "algorithm_class",
    "make_algorithm",
    "model_weights",
    "nbytes",
] + [c.__name__ for c in ALGORITHMS.values()]
