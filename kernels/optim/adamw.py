r"""``kernels.optim.AdamW``: torch.optim.AdamW on the fused multi-tensor ``kernels.adamw_step``, plus
FedAdamW's correction direction and aggregated second moment."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from itertools import chain
from typing import Any

import torch
from torch import Tensor

import kernels
from kernels.ops.adamw_step import check_hyperparameters, state_dtype_for
from kernels.optim._base import ValidatedOptimizer

__all__ = ["AdamW"]

_STATE_TENSORS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "correction")


class AdamW(ValidatedOptimizer):
    r"""AdamW as ``torch.optim.AdamW``, with every parameter updated by one fused ``kernels.adamw_step``
    call per (device, dtype, step, v0_weight) group.

    Per parameter p with gradient g (see ``kernels.adamw_step`` for the exact order)::

        p ← p·(1 − lr·λ);  m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²
        p ← p − lr·( (m / (1 − β1^t)) / (√v / √(1 − β2^t·(1 − w0)) + eps) + alpha·c )

    With no correction c and w0 = 0 (the defaults) this is ``torch.optim.AdamW`` (tested to 1e-6 in
    float32 after 20 steps). State per parameter, in torch's state_dict format: ``step`` (float32 scalar
    tensor), ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq`` (amsgrad); plus ``correction`` and
    ``v0_weight`` when set. bfloat16/float16 parameters keep float32 state (torch keeps it in the
    parameter's dtype); loading a state_dict keeps it float32, also one saved by ``torch.optim.AdamW``.
    Parameters whose ``grad`` is None are skipped; sparse gradients raise RuntimeError.

    FedAdamW extras:

    - ``set_correction({param: c or None})``: the correction direction c (same shape), applied with the
      group's ``alpha`` at every step until replaced or cleared with None.
    - ``set_second_moment({param: v̄}, weight=w0)``: start the next local run from the server's second
      moment: ``exp_avg_sq ← v̄``, ``exp_avg ← 0``, ``max_exp_avg_sq ← 0`` (amsgrad), ``step ← 0`` and
      bias correction bc2 = 1 − β2^t·(1 − w0) (w0 = 1 for a debiased v̄, 1 − β2^K for the raw mean of
      clients' v after K local steps; see kernels/ops/adamw_step.py for the derivation).

    Args:
        params: parameters or param groups.
        lr: learning rate (>= 0). betas: (β1, β2), each in [0, 1). eps: >= 0.
        weight_decay: decoupled weight decay λ (>= 0).
        amsgrad: use the running maximum of v.
        maximize: maximize the objective.
        foreach, fused: accepted for compatibility with torch.optim.AdamW and ignored (always fused);
            capturable=True and differentiable=True raise ValueError.
        alpha: weight of the correction direction (FedAdamW).
        check_finite: raise ValueError when a gradient holds NaN/Inf (one sync per step).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        alpha: float = 0.0,
        check_finite: bool = False,
    ) -> None:
        # torch.optim.AdamW's keywords, so that code written for it runs unchanged: every step here is
        # the fused multi-tensor kernel, so foreach/fused change nothing; the two modes that would need
        # another kernel are refused rather than ignored.
        del foreach, fused
        if capturable:
            raise ValueError("kernels.optim.AdamW does not support capturable=True (CUDA graph capture)")
        if differentiable:
            raise ValueError("kernels.optim.AdamW does not support differentiable=True")
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "alpha": alpha,
            "check_finite": check_finite,
        }
        _check_group(defaults, "")
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any], index: int) -> None:
        _check_group(group, f" (param group {index})")

    # ---- state -----------------------------------------------------------------------------------

    def _init_state(self, p: Tensor, amsgrad: bool) -> dict[str, Any]:
        state = self.state[p]
        if "step" not in state:
            sdt = state_dtype_for(p.dtype)
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            state["exp_avg"] = torch.zeros(p.shape, dtype=sdt, device=p.device)
            state["exp_avg_sq"] = torch.zeros(p.shape, dtype=sdt, device=p.device)
        if amsgrad and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = torch.zeros(p.shape, dtype=state["exp_avg_sq"].dtype, device=p.device)
        return state

    def _all_params(self) -> set[Tensor]:
        return {p for g in self.param_groups for p in g["params"]}

    def set_correction(self, corrections: Mapping[Tensor, Tensor | None]) -> None:
        """Store (a copy of) the correction direction c per parameter; None removes it."""
        known = self._all_params()
        for p, c in corrections.items():
            if p not in known:
                raise ValueError("set_correction: a key is not a parameter of this optimizer")
            state = self.state[p]
            if c is None:
                state.pop("correction", None)
                continue
            if not isinstance(c, Tensor) or c.shape != p.shape:
                got = tuple(c.shape) if isinstance(c, Tensor) else type(c).__name__
                raise ValueError(
                    f"set_correction: correction must have the parameter's shape {tuple(p.shape)}, got {got}"
                )
            state["correction"] = c.detach().to(
                device=p.device, dtype=state_dtype_for(p.dtype), memory_format=torch.contiguous_format
            ).clone()

    def set_second_moment(self, second_moments: Mapping[Tensor, Tensor], weight: float = 1.0) -> None:
        """Restart from a given second moment v̄ per parameter with total weight ``weight`` (w0)."""
        w0 = check_hyperparameters(v0_weight=weight, where=" (set_second_moment weight)")["v0_weight"]
        known = self._all_params()
        amsgrad_of = {p: g["amsgrad"] for g in self.param_groups for p in g["params"]}
        for p, v in second_moments.items():
            if p not in known:
                raise ValueError("set_second_moment: a key is not a parameter of this optimizer")
            if not isinstance(v, Tensor) or v.shape != p.shape:
                got = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
                raise ValueError(
                    f"set_second_moment: v̄ must have the parameter's shape {tuple(p.shape)}, got {got}"
                )
            if bool((v < 0).any()):
                raise ValueError("set_second_moment: a second moment must be >= 0 everywhere")
            state = self._init_state(p, amsgrad_of[p])
            state["exp_avg_sq"].copy_(v.detach())
            state["exp_avg"].zero_()
            if "max_exp_avg_sq" in state:
                state["max_exp_avg_sq"].zero_()
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            state["v0_weight"] = w0

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As torch's, but the state of bfloat16/float16 parameters stays float32 (torch would cast it
        to the parameter's dtype, losing precision), whichever optimizer saved it."""
        saved_state = state_dict["state"]
        saved_ids = chain.from_iterable(g["params"] for g in state_dict["param_groups"])
        ours = chain.from_iterable(g["params"] for g in self.param_groups)
        id_map = dict(zip(saved_ids, ours, strict=False))
        super().load_state_dict(state_dict)
        for k, p in id_map.items():
            if p.dtype not in (torch.bfloat16, torch.float16) or k not in saved_state:
                continue
            for key in _STATE_TENSORS:
                value = saved_state[k].get(key)
                if isinstance(value, Tensor):
                    self.state[p][key] = value.detach().to(device=p.device, dtype=torch.float32).clone()

    # ---- step ------------------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One step over every group; returns ``closure()`` when given (evaluated with grad enabled)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with kernels.nvtx.range("adamw.step"):
            for index, group in enumerate(self.param_groups):
                self._step_group(group, index)
        return loss

    def _step_group(self, group: dict[str, Any], index: int) -> None:
        beta1, beta2 = group["betas"]
        amsgrad = bool(group["amsgrad"])
        active = [p for p in group["params"] if p.grad is not None]
        for p in active:
            if p.grad.is_sparse:
                raise RuntimeError("kernels.optim.AdamW does not support sparse gradients")
            if p.is_complex():
                raise RuntimeError("kernels.optim.AdamW does not support complex parameters")
        if not active:
            return
        states = [self._init_state(p, amsgrad) for p in active]
        # One op for all step counters and one read of them (not one tensor op + sync per parameter):
        # the Python work per step is what separates this optimizer from the kernel's own speed.
        step_tensors = [s["step"] for s in states]
        torch._foreach_add_(step_tensors, 1.0)
        steps = torch.stack(step_tensors).tolist()
        buckets: dict[tuple, list[tuple[Tensor, Tensor, dict[str, Any]]]] = defaultdict(list)
        for p, state, step in zip(active, states, steps, strict=True):
            key = (p.device, p.dtype, step, float(state.get("v0_weight", 0.0)), "correction" in state)
            buckets[key].append((p, p.grad, state))
        for (_device, _dtype, step, v0_weight, has_correction), items in buckets.items():
            # The op needs contiguous tensors: a non-contiguous parameter or gradient is updated
            # through a contiguous copy that is written back (visible, and rare in practice).
            params = [p if p.is_contiguous() else p.contiguous() for p, _, _ in items]
            grads = [g if g.is_contiguous() else g.contiguous() for _, g, _ in items]
            states = [s for _, _, s in items]
            kernels.adamw_step(
                params, grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
                lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                weight_decay=group["weight_decay"], step=step, amsgrad=amsgrad,
                max_exp_avg_sqs=[s["max_exp_avg_sq"] for s in states] if amsgrad else None,
                maximize=bool(group["maximize"]),
                corrections=[s["correction"] for s in states] if has_correction else None,
                alpha=group["alpha"], v0_weight=v0_weight, check_finite=bool(group["check_finite"]),
            )
            for (p, _, _), q in zip(items, params, strict=True):
                if q is not p:
                    p.copy_(q)


def _check_group(group: dict[str, Any], where: str) -> None:
    betas = group["betas"]
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2){where}, got {betas!r}")
    check_hyperparameters(
        lr=group["lr"], beta1=betas[0], beta2=betas[1], eps=group["eps"],
        weight_decay=group["weight_decay"], alpha=group["alpha"], where=where,
    )
