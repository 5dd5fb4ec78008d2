"""The AdamW step in plain torch: the specification of ``kernels.adamw_step``.

Per tensor, in place, in torch.optim.AdamW's order of float operations (``_single_tensor_adamw``)::

    g   = −grad if maximize else grad
    p   ← p·(1 − lr·wd)
    m   ← lerp(m, g, 1 − β1)                       # m + (1 − β1)(g − m)
    v   ← β2·v + (1 − β2)·g·g
    v̂   = max(v_max, v) → v_max   if amsgrad else v
    bc1 = 1 − β1^t ;  bc2 = 1 − β2^t·(1 − w0)
    p   ← p − (lr / bc1) · m / (√v̂ / √bc2 + eps)
    p   ← p − (lr·alpha) · c                       # only with a correction c

so ``p − lr·((m/bc1)/(√v̂/√bc2 + eps) + alpha·c)``. Scalars (1 − lr·wd, lr/bc1, √bc2, ...) are formed
in double precision and rounded once to the compute dtype, as torch does for Python scalars.

Parameters of float32 / float64 compute in their own dtype (the state has that dtype too);
bfloat16 / float16 parameters keep float32 state: the update is computed in float32 from the 16-bit
parameter and gradient and the parameter is rounded once at the end.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def bias_corrections(beta1: float, beta2: float, step: float, v0_weight: float) -> tuple[float, float]:
    """(bc1, bc2) = (1 − β1^t, 1 − β2^t·(1 − w0)), in double precision."""
    return 1.0 - beta1**step, 1.0 - beta2**step * (1.0 - v0_weight)


def adamw_step_one(
    param: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    max_exp_avg_sq: Tensor | None,
    correction: Tensor | None,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    step: float,
    maximize: bool,
    alpha: float,
    v0_weight: float,
) -> None:
    """One tensor's step, in place (``param`` and the state tensors are updated)."""
    state_dtype = exp_avg.dtype
    p = param if param.dtype == state_dtype else param.to(state_dtype)
    g = grad.to(state_dtype)
    if maximize:
        g = -g
    p.mul_(1.0 - lr * weight_decay)
    exp_avg.lerp_(g, 1.0 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
    bc1, bc2 = bias_corrections(beta1, beta2, step, v0_weight)
    if max_exp_avg_sq is not None:
        torch.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        second = max_exp_avg_sq
    else:
        second = exp_avg_sq
    denom = (second.sqrt() / math.sqrt(bc2)).add_(eps)
    p.addcdiv_(exp_avg, denom, value=-(lr / bc1))
    if correction is not None and alpha != 0.0:
        p.add_(correction.to(state_dtype), alpha=-(lr * alpha))
    if p is not param:
        param.copy_(p)


def adamw_step(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    max_exp_avg_sqs: list[Tensor] | None,
    corrections: list[Tensor] | None,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    step: float,
    maximize: bool = False,
    alpha: float = 0.0,
    v0_weight: float = 0.0,
) -> None:
    """``adamw_step_one`` over lists (no argument checks: ``kernels.adamw_step`` does them)."""
    for i, param in enumerate(params):
        adamw_step_one(
            param,
            grads[i],
            exp_avgs[i],
            exp_avg_sqs[i],
            None if max_exp_avg_sqs is None else max_exp_avg_sqs[i],
            None if corrections is None else corrections[i],
            lr=lr,
            beta1=beta1,
            beta2=beta2,
            eps=eps,
            weight_decay=weight_decay,
            step=step,
            maximize=maximize,
            alpha=alpha,
            v0_weight=v0_weight,
        )
