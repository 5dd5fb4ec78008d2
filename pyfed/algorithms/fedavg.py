r"""FedAvg and FedAvgM: clients run plain SGD; the server averages (FedAvgM adds server momentum).

Client (both), K steps from the global x, with η the round's learning rate and λ the weight decay::

    x ← x − η·(∇f_i(x; batch) + λ·x)                          (torch.optim.SGD)
    message: Δ_i = x_start − x_end

Server, with Δ̄ = mean_i Δ_i (uniform, or weighted by examples) and η_g = ``server_lr``::

    FedAvg   (McMahan et al., 2017):  x ← x − η_g·Δ̄
    FedAvgM  (Hsu et al., 2019):      m ← β·m + Δ̄;   x ← x − η_g·m

Bytes per round (d = number of trainable weights, 4 bytes each): down S·4d, up S·4d.
"""

from __future__ import annotations

from typing import Any

import torch

from pyfed.algorithms.base import (
    Algorithm,
    Client,
    LocalConfig,
    ServerConfig,
    _check_unit,
    local_train,
    mean_of,
)


class SGDClient(Algorithm):
    """Shared client side of the SGD-based algorithms: K steps of SGD with weight decay."""

    def __init__(self, server_lr: float = 1.0, weight_decay: float = 0.0):
        super().__init__(server_lr)
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.weight_decay = weight_decay

    def sgd(self, model, lr: float) -> torch.optim.Optimizer:
        return torch.optim.SGD(
            [p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=self.weight_decay
        )

    def client_update(self, model, payload, client: Client, cfg: LocalConfig) -> dict[str, Any]:
        x0 = self.start(model, payload)
        opt = self.sgd(model, cfg.lr)
        loss = local_train(model, client, cfg, opt.step)
        return self.delta_message(model, x0, loss, client)


class FedAvg(SGDClient):
    name = "fedavg"


class FedAvgM(SGDClient):
    name = "fedavgm"

    def __init__(self, server_lr: float = 1.0, weight_decay: float = 0.0, server_momentum: float = 0.9):
        super().__init__(server_lr, weight_decay)
        _check_unit(server_momentum=server_momentum)
        self.server_momentum = server_momentum

    def server_init(self, model):
        state = super().server_init(model)
        state["momentum"] = {k: torch.zeros_like(v) for k, v in state["weights"].items()}
        return state

    def server_aggregate(self, state, messages, cfg: ServerConfig):
        delta = mean_of(messages, "d.", cfg)
        m = state["momentum"]
        for k in m:
            m[k] = self.server_momentum * m[k] + delta[k]
        state["weights"] = self.apply_delta(state["weights"], m, self.server_lr)
        return state
