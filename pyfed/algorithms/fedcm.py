r"""FedCM (Xu et al., 2021), FedSAM (Qu et al., 2022) and MoFedSAM (Qu et al., 2022).

The server keeps the global direction Δᴳ = mean_i Δ_i / (K·η) of the last round (zero before the
first) and sends it down with x. Client i, K steps, with α = ``alpha`` (FedCM's weight on the local
gradient) and ρ = ``rho`` (SAM radius)::

    FedCM:     g = ∇f_i(x);                      x ← x − η·(α·g + (1 − α)·Δᴳ + λ·x)
    FedSAM:    g = ∇f_i(x + ρ·∇f_i/‖∇f_i‖);      x ← x − η·(g + λ·x)               (no Δᴳ sent)
    MoFedSAM:  g = ∇f_i(x + ρ·∇f_i/‖∇f_i‖);      x ← x − η·(α·g + (1 − α)·Δᴳ + λ·x)

Server: x ← x − η_g·mean_i Δ_i and, for FedCM/MoFedSAM, Δᴳ ← mean_i Δ_i / (K·η).
Bytes (d weights, p parameters): FedCM/MoFedSAM down S·4(d + p), up S·4d; FedSAM as FedAvg.
"""

from __future__ import annotations

from pyfed.algorithms.base import _check_unit, local_train
from pyfed.algorithms.fedavg import SGDClient


class FedCM(SGDClient):
    name = "fedcm"
    send_direction = True

    def __init__(
        self, server_lr: float = 1.0, weight_decay: float = 0.0, alpha: float = 0.1, rho: float = 0.0
    ):
        super().__init__(server_lr, weight_decay)
        _check_unit(alpha=alpha)
        if rho < 0:
            raise ValueError(f"rho must be >= 0, got {rho}")
        self.alpha = alpha
        self.rho = rho

    def client_update(self, model, payload, client, cfg):
        x0 = self.start(model, payload)
        hook = None
        if self.send_direction:
            direction = self.payload_direction(payload)
            named = dict(model.named_parameters())
            a = self.alpha

            def hook() -> None:
                for k, dg in direction.items():
                    g = named[k].grad
                    if g is not None:
                        g.mul_(a).add_(dg, alpha=1 - a)

        opt = self.sgd(model, cfg.lr)
        loss = local_train(model, client, cfg, opt.step, grad_hook=hook, sam_rho=self.rho)
        return self.delta_message(model, x0, loss, client)


class FedSAM(FedCM):
    name = "fedsam"
    send_direction = False

    def __init__(self, server_lr: float = 1.0, weight_decay: float = 0.0, rho: float = 0.05):
        super().__init__(server_lr, weight_decay, alpha=1.0, rho=rho)


class MoFedSAM(FedCM):
    name = "mofedsam"

    def __init__(
        self, server_lr: float = 1.0, weight_decay: float = 0.0, alpha: float = 0.1, rho: float = 0.05
    ):
        super().__init__(server_lr, weight_decay, alpha=alpha, rho=rho)
