r"""FedProx (Li et al., 2020): SGD on the local objective plus a proximal term to the global model.

Client, with x⁰ the global weights of the round and μ = ``mu``::

    h_i(x) = f_i(x) + (μ/2)·‖x − x⁰‖²        ∇h_i(x) = ∇f_i(x) + μ·(x − x⁰)
    x ← x − η·∇h_i(x; batch)                  (the term goes through autograd: a real gradient)

Server: FedAvg. Bytes: down S·4d, up S·4d.
"""

from __future__ import annotations

import torch

from pyfed.algorithms.base import local_train, param_names
from pyfed.algorithms.fedavg import SGDClient


class FedProx(SGDClient):
    name = "fedprox"

    def __init__(self, server_lr: float = 1.0, weight_decay: float = 0.0, mu: float = 0.01):
        super().__init__(server_lr, weight_decay)
        if mu < 0:
            raise ValueError(f"mu must be >= 0, got {mu}")
        self.mu = mu

    def proximal_term(self, model, x0):
        named = dict(model.named_parameters())
        names = param_names(x0)

        def term() -> torch.Tensor:
            return 0.5 * self.mu * sum(((named[k] - x0[k]) ** 2).sum() for k in names)

        return term

    def client_update(self, model, payload, client, cfg):
        x0 = self.start(model, payload)
        opt = self.sgd(model, cfg.lr)
        loss = local_train(model, client, cfg, opt.step, extra_loss=self.proximal_term(model, x0))
        return self.delta_message(model, x0, loss, client)
