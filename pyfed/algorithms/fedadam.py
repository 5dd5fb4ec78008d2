r"""FedAdam (Reddi et al., 2021, "Adaptive Federated Optimization"): SGD clients, Adam on the server.

Clients: as FedAvg. Server, with the pseudo-gradient Δ̄ = mean_i Δ_i (Δ_i = x_start − x_end), η_g =
``server_lr``, τ = ``tau`` (the adaptivity floor)::

    m ← β1·m + (1 − β1)·Δ̄;   v ← β2·v + (1 − β2)·Δ̄²;   x ← x − η_g·m/(√v + τ)

(no bias correction, as in the paper). Buffers (running statistics) take the plain mean.
Bytes: as FedAvg (down S·4d, up S·4d).
"""

from __future__ import annotations

import torch

from pyfed.algorithms.base import ServerConfig, _check_positive, _check_unit, mean_of, param_names
from pyfed.algorithms.fedavg import SGDClient


class FedAdam(SGDClient):
    name = "fedadam"

    def __init__(
        self,
        server_lr: float = 0.01,
        weight_decay: float = 0.0,
        beta1: float = 0.9,
        beta2: float = 0.99,
        tau: float = 1e-3,
    ):
        super().__init__(server_lr, weight_decay)
        _check_unit(beta1=beta1, beta2=beta2)
        _check_positive(tau=tau)
        self.beta1, self.beta2, self.tau = beta1, beta2, tau

    def server_init(self, model):
        state = super().server_init(model)
        names = param_names(state["weights"])
        state["m"] = {k: torch.zeros_like(state["weights"][k]) for k in names}
        state["v"] = {k: torch.zeros_like(state["weights"][k]) for k in names}
        return state

    def server_aggregate(self, state, messages, cfg: ServerConfig):
        delta = mean_of(messages, "d.", cfg)
        w = state["weights"]
        for k in w:
            if k not in state["m"]:  # buffer: plain mean
                w[k] = w[k] - delta[k]
                continue
            state["m"][k] = self.beta1 * state["m"][k] + (1 - self.beta1) * delta[k]
            state["v"][k] = self.beta2 * state["v"][k] + (1 - self.beta2) * delta[k] ** 2
            w[k] = w[k] - self.server_lr * state["m"][k] / (state["v"][k].sqrt() + self.tau)
        return state
