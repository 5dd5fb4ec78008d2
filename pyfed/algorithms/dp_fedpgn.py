r"""DP-FedPGN (Liu et al.): a global gradient-norm penalty in the local loss, with a true DP mechanism.

Local objective f_i(x) + λ‖∇F(x)‖, ∇F the global gradient, estimated by the server's last noised
global direction c (public: it is the post-processed output of the previous rounds). Its gradient is
∇f_i(x) + λ·H(x)·∇F/‖∇F‖; with ĉ = c/‖c‖ and the Hessian-vector product by a finite difference along
ĉ ("Penalizing Gradient Norm", Zhao et al., ICML 2022, here along the global direction), β = λ/r::

    g = (1 − β)·∇f_i(x) + β·∇f_i(x + r·ĉ)          (= ∇f_i(x) + λ·H_i(x)·ĉ + O(r); exact on a quadratic)
    g ← γ·g + (1 − γ)·c                              (FedCM-style mixing, as the authors' code; γ = 1: off)
    x ← x − η·(g + λ_wd·x)                            (after the per-step gradient clip of the local loop)

On the first round c = 0: no perturbation (g = ∇f_i(x)) and the mixing only scales g by γ.

Mechanism (dp_fedavg.py has the rest): the client clips the drift-corrected residual

    R_i = Δ_i − (1 − γ)·K·η·c                        (c is public, so removing it is post-processing-safe)

to ONE global bound C; the server noises Σ clip_C(R_i) with N(0, σ²C²), divides by S and adds the public
term back: Δ̄ = noised mean + (1 − γ)·K·η·c;  x ← x − η_g·Δ̄;  c ← Δ̄ / (K·η). DP-FedPGN-LS smooths the
noised mean residual (the part that carries the noise) before adding the public term back.

The authors' code (junkangLiu0/DP-FedPGN) differs: per-tensor clipping (sensitivity C·√L), C = the
median of the client's own layer norms (data-dependent), no accountant, and its DP-FedPGN client does
only the mixing (the penalty is in its LESAM variant). Defaults: γ = 0.2 (their README), r = 0.1 (their
--rho), β = 0.5.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

import kernels
from pyfed.algorithms.base import _check_unit, local_batches
from pyfed.algorithms.dp_fedavg import DPFedAvg, LaplacianSmoothing

__all__ = ["DPFedPGN", "DPFedPGNLS", "pgn_gradient"]


def pgn_gradient(
    params: Sequence[Tensor],
    closure: Callable[[], Tensor],
    perturbation: Sequence[Tensor] | None,
    beta: float,
) -> float:
    """Leave g = (1 − β)·∇L(x) + β·∇L(x + e) in ``p.grad`` (x restored after); returns L(x).

    ``closure()`` computes the loss at the current parameters; ``perturbation`` is e = r·ĉ per parameter
    (None or β = 0: the plain gradient, one backward)."""
    for p in params:
        p.grad = None
    loss = closure()
    loss.backward()
    if perturbation is None or beta == 0:
        return float(loss.detach())
    first = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]
    with torch.no_grad():
        torch._foreach_add_(list(params), list(perturbation))
    for p in params:
        p.grad = None
    try:
        closure().backward()
    finally:
        with torch.no_grad():
            torch._foreach_sub_(list(params), list(perturbation))
    for p, g in zip(params, first, strict=True):
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        p.grad.mul_(beta).add_(g, alpha=1 - beta)
    return float(loss.detach())


class DPFedPGN(DPFedAvg):
    name = "dp_fedpgn"
    send_direction = True

    def __init__(self, *args, beta: float = 0.5, rho: float = 0.1, gamma: float = 0.2, **kwargs):
        super().__init__(*args, **kwargs)
        _check_unit(beta=beta, gamma=gamma)
        if not (isinstance(rho, int | float) and rho >= 0):
            raise ValueError(f"rho must be >= 0, got {rho!r}")
        self.beta, self.rho, self.gamma = float(beta), float(rho), float(gamma)

    def train_locally(self, model, payload, client, cfg):
        direction = self.payload_direction(payload)
        named = dict(model.named_parameters())
        names = [k for k in direction if named[k].requires_grad]
        params = [named[k] for k in names]
        c = [direction[k] for k in names]
        c_norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in c])))
        perturbation = [t * (self.rho / c_norm) for t in c] if c_norm > 0 and self.rho > 0 else None
        opt = self.sgd(model, cfg.lr)
        model.train()
        total = 0.0
        for x, y in local_batches(client, cfg.local_steps):
            with kernels.nvtx.range("local_step"):
                total += pgn_gradient(
                    params, lambda x=x, y=y: client.loss_fn(model(x), y), perturbation, self.beta
                )
                if cfg.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                if self.gamma < 1:
                    for p, ct in zip(params, c, strict=True):
                        p.grad.mul_(self.gamma).add_(ct, alpha=1 - self.gamma)
                opt.step()
        return total / max(cfg.local_steps, 1)

    def _drift(self, direction, k: str, local_steps: int, lr: float) -> Tensor | float:
        return (1 - self.gamma) * local_steps * lr * direction[k] if k in direction else 0.0

    def residual(self, delta, payload, cfg):
        direction = self.payload_direction(payload)
        return {k: d - self._drift(direction, k, cfg.local_steps, cfg.lr) for k, d in delta.items()}

    def post_process(self, state, mean, cfg):
        mean = self.denoise(mean)
        direction = state["direction"]
        return {k: v + self._drift(direction, k, cfg.local_steps, cfg.lr) for k, v in mean.items()}

    def denoise(self, mean):
        return mean


class DPFedPGNLS(LaplacianSmoothing, DPFedPGN):
    name = "dp_fedpgn_ls"

    def __init__(self, *args, ls_sigma: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        if not (isinstance(ls_sigma, int | float) and ls_sigma >= 0):
            raise ValueError(f"ls_sigma must be >= 0, got {ls_sigma!r}")
        self.ls_sigma = float(ls_sigma)

    def denoise(self, mean):
        return self.smooth(mean)
