"""Helpers shared by the DP tests (test_dp_algorithms.py, test_fed_sampling.py): one server step on
messages built from flat vectors, and the reference clip."""

import torch

from pyfed.algorithms import ServerConfig
from pyfed.dp.mechanism import flatten, unflatten


def messages(state, vectors) -> list[dict]:
    """Messages carrying the given flat vectors, split like the state's weights."""
    names = list(state["weights"])
    return [
        {
            **{f"d.{k}": t.clone() for k, t in unflatten(v, state["weights"], names).items()},
            "loss": float("nan"),
            "num_examples": 1,
        }
        for v in vectors
    ]


def release(algo, model, vectors, round_=0, n=10):
    """(x0 − x1, new state) after one server step on messages carrying ``vectors`` (x0 − x1 = η_g · the
    released mean)."""
    state = algo.server_init(model)
    names = list(state["weights"])
    x0 = flatten(state["weights"], names)
    cfg = ServerConfig(lr=0.1, local_steps=2, round=round_, num_clients=n)
    state = algo.server_aggregate(state, messages(state, vectors), cfg)
    return x0 - flatten(state["weights"], names), state


def clip(u: torch.Tensor, c: float) -> torch.Tensor:
    return u * min(1.0, c / float(u.norm())) if float(u.norm()) > 0 else u
