r"""``kernels.optim.Muon``: Muon for matrix parameters, AdamW for the rest, one ``torch.optim.Optimizer``.

The Newton–Schulz orthogonalization, the expensive part of Muon, runs through ``kernels.newton_schulz``
once per *shape*, not once per parameter: every matrix update of the same flattened shape (m, n), dtype,
device and Newton–Schulz settings is stacked into one (B, m, n) batch and orthogonalized in one call.
"""

from __future__ import annotations

import math
import numbers
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

import kernels
from kernels.ops.newton_schulz import check_coefficients
from kernels.optim._base import ValidatedOptimizer

__all__ = ["Muon", "muon_param_groups"]

DEFAULT_NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
ADJUST_LR_FNS = (None, "original", "match_rms_adamw")


class Muon(ValidatedOptimizer):
    r"""Muon (MomentUm Orthogonalized by Newton–Schulz) with batched orthogonalization; AdamW on request.

    Drop-in ``torch.optim.Optimizer``; with the default settings each Muon parameter follows
    ``torch.optim.Muon`` (which runs the iteration in bfloat16, while here it runs in the parameter's
    dtype). For a parameter θ with gradient g, in a group with ``use_muon=True`` (the default)::

        B ← μ·B + (1 − μ)·g                      # momentum_buffer, an EMA (torch: buf.lerp_(g, 1 − μ))
        U ← (1 − μ)·g + μ·B   if nesterov else B  # (torch: g.lerp(B, μ))
        O ← NS_k^{(a,b,c)}(reshape(U, (m, n)); ε)  # kernels.newton_schulz, batched by shape
        θ ← θ·(1 − lr·λ)                          # decoupled weight decay, with the unadjusted lr
        θ ← θ − lr'·reshape(O, θ.shape)

    with μ = ``momentum``, λ = ``weight_decay``, k = ``ns_steps``, (a, b, c) = ``ns_coefficients``,
    ε = ``eps``, and lr' from ``adjust_lr_fn``: ``"original"`` (the default, also for None)
    lr' = lr·√max(1, m/n); ``"match_rms_adamw"`` lr' = 0.2·lr·√max(m, n). A parameter with more than two
    dims (a conv weight (out, in, kh, kw)) is the matrix (m, n) = (out, in·kh·kw); one with fewer than
    two dims raises ValueError: put it in a group with ``use_muon=False``.

    A group with ``use_muon=False`` gets AdamW, exactly ``torch.optim.AdamW`` (amsgrad=False), with the
    group keys ``lr``, ``betas`` = (β1, β2), ``adamw_eps`` (AdamW's ``eps``; named so because ``eps``
    is the Newton–Schulz ε) and ``weight_decay``; t = ``step``::

        θ ← θ·(1 − lr·λ)
        m ← β1·m + (1 − β1)·g                     # exp_avg
        v ← β2·v + (1 − β2)·g²                    # exp_avg_sq
        θ ← θ − lr/(1 − β1^t) · m / (√v/√(1 − β2^t) + adamw_eps)

    Every group key can be set per group; ones left out take the constructor's values, so give AdamW
    groups their own ``lr`` and ``weight_decay`` (``muon_param_groups`` does). State per parameter:
    ``momentum_buffer`` (Muon); ``step`` (a float32 scalar tensor, as in torch), ``exp_avg``,
    ``exp_avg_sq`` (AdamW). Parameters whose ``grad`` is None are skipped; sparse or complex gradients
    raise RuntimeError.

    Args:
        params: parameters or param groups (dicts; ``use_muon`` selects the update).
        lr: learning rate (>= 0).
        weight_decay: decoupled weight decay λ (>= 0).
        momentum: μ in [0, 1).
        nesterov: use the Nesterov form of the update.
        ns_steps: Newton–Schulz steps (>= 1).
        ns_coefficients: one (a, b, c) triple used at every step, or ``ns_steps`` triples.
        eps: added to the Frobenius norm before Newton–Schulz divides by it (>= 0).
        adjust_lr_fn: None, ``"original"`` or ``"match_rms_adamw"``.
        betas: AdamW (β1, β2), each in [0, 1).
        adamw_eps: AdamW ε (>= 0).

    Example::

        opt = kernels.optim.Muon(kernels.optim.muon_param_groups(model, adamw_lr=3e-4), lr=0.02)
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        weight_decay: float = 0.1,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_steps: int = 5,
        ns_coefficients: Sequence[float] | Sequence[Sequence[float]] = DEFAULT_NS_COEFFICIENTS,
        eps: float = 1e-7,
        adjust_lr_fn: str | None = None,
        *,
        betas: tuple[float, float] = (0.9, 0.95),
        adamw_eps: float = 1e-8,
    ) -> None:
        defaults = {
            "lr": lr,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "nesterov": nesterov,
            "ns_steps": ns_steps,
            "ns_coefficients": ns_coefficients,
            "eps": eps,
            "adjust_lr_fn": adjust_lr_fn,
            "betas": betas,
            "adamw_eps": adamw_eps,
            "use_muon": True,
        }
        _check_hyperparameters(defaults, where="")
        super().__init__(params, defaults)

    @staticmethod
    def _check_group(group: dict[str, Any], index: int) -> None:
        _check_hyperparameters(group, where=f" (param group {index})")
        if group["use_muon"]:
            for i, p in enumerate(group["params"]):
                if p.dim() < 2:
                    raise ValueError(
                        f"Muon updates matrices, but parameter {i} of param group {index} "
                        f"has shape {tuple(p.shape)} ({p.dim()}-D); put biases, norms and other parameters "
                        "with < 2 dims in a group with use_muon=False (AdamW), e.g. via "
                        "kernels.optim.muon_param_groups(model)"
                    )

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One step over every group; returns ``closure()`` when given (evaluated with grad enabled)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with kernels.nvtx.range("muon.step"):
            # (m, n, dtype, device, NS settings) -> [(param, its group)]: one Newton–Schulz call each
            buckets: dict[tuple, list[tuple[Tensor, dict[str, Any]]]] = defaultdict(list)
            for group in self.param_groups:
                if group["use_muon"]:
                    self._momentum(group, buckets)
                else:
                    self._adamw(group)
            for (m, n, dtype, device, ns_steps, coefficients, eps), items in buckets.items():
                self._orthogonalized_step(items, m, n, dtype, device, ns_steps, coefficients, eps)
        return loss

    def _momentum(self, group: dict[str, Any], buckets: dict[tuple, list]) -> None:
        """Update the momentum buffers of a Muon group; queue each parameter in its shape's bucket."""
        momentum = group["momentum"]
        coefficients = _coefficients_key(group)
        for p in group["params"]:
            g = _checked_grad(p)
            if g is None or p.numel() == 0:
                continue
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["momentum_buffer"].lerp_(g, 1 - momentum)
            m = p.shape[0]
            key = (m, p.numel() // m, g.dtype, g.device, group["ns_steps"], coefficients, group["eps"])
            buckets[key].append((p, group))

    def _orthogonalized_step(self, items, m, n, dtype, device, ns_steps, coefficients, eps) -> None:
        """Stack the bucket's updates (written straight into one (B, m, n) tensor, so the extra memory
        is one bucket at a time), orthogonalize them in one call, apply them."""
        stacked = torch.empty((len(items), m, n), dtype=dtype, device=device)
        for row, (p, group) in zip(stacked.unbind(0), items, strict=True):
            buf = self.state[p]["momentum_buffer"].reshape(m, n)
            if group["nesterov"]:
                row.copy_(p.grad.reshape(m, n)).lerp_(buf, group["momentum"])  # g.lerp(B, μ)
            else:
                row.copy_(buf)
        ortho = kernels.newton_schulz(stacked, steps=ns_steps, coefficients=coefficients, eps=eps)
        del stacked
        for (p, group), o in zip(items, ortho.unbind(0), strict=True):
            lr, weight_decay = float(group["lr"]), group["weight_decay"]
            if weight_decay != 0:
                p.mul_(1 - lr * weight_decay)
            p.add_(o.reshape(p.shape), alpha=-lr * _lr_ratio(group["adjust_lr_fn"], m, n))

    def _adamw(self, group: dict[str, Any]) -> None:
        lr, weight_decay, eps = float(group["lr"]), group["weight_decay"], group["adamw_eps"]
        beta1, beta2 = group["betas"]
        for p in group["params"]:
            g = _checked_grad(p)
            if g is None:
                continue
            state = self.state[p]
            if "step" not in state:
                state["step"] = torch.tensor(0.0, dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["step"] += 1
            t = state["step"].item()
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            p.mul_(1 - lr * weight_decay)
            exp_avg.lerp_(g, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            step_size = lr / (1 - beta1**t)
            denom = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2**t)).add_(eps)
            p.addcdiv_(exp_avg, denom, value=-step_size)


def muon_param_groups(
    model: nn.Module,
    *,
    adamw_modules: Iterable[str | type[nn.Module]] = (),
    adamw_lr: float | None = None,
    adamw_weight_decay: float | None = 0.0,
    adamw_betas: tuple[float, float] | None = None,
    adamw_eps: float | None = None,
) -> list[dict[str, Any]]:
    """Split ``model``'s trainable parameters into a Muon group and an AdamW group (``use_muon=False``).

    Parameters with >= 2 dims go to Muon; the rest (biases, norm scales, ...) go to AdamW, and so does
    every parameter of a module named in ``adamw_modules`` — a dotted module name such as ``"embed"`` or
    ``"lm_head"`` (covering its submodules too), or a module class such as ``nn.Embedding``. Embeddings
    and output heads usually belong there. A parameter shared by several modules (tied weights) appears
    once, in AdamW if any of its modules is listed. ``adamw_*`` values that are not None are set on the
    AdamW group (default: weight decay 0 there); the rest come from the optimizer's defaults. Empty groups
    are left out.
    """
    names: list[str] = []
    types: list[type] = []
    for item in adamw_modules:
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, type) and issubclass(item, nn.Module):
            types.append(item)
        else:
            raise TypeError(f"adamw_modules takes module names or nn.Module classes, got {item!r}")
    known = {name for name, _ in model.named_modules()}
    missing = [name for name in names if name not in known]
    if missing:
        raise ValueError(f"adamw_modules names modules that {type(model).__name__} does not have: {missing}")

    forced: set[int] = set()
    order: dict[int, Tensor] = {}
    for mod_name, module in model.named_modules(remove_duplicate=False):
        listed = isinstance(module, tuple(types)) or any(
            mod_name == name or mod_name.startswith(name + ".") or name == "" for name in names
        )
        for p in module.parameters(recurse=False):
            if not p.requires_grad:
                continue
            order.setdefault(id(p), p)
            if listed:
                forced.add(id(p))
    muon = [p for key, p in order.items() if p.dim() >= 2 and key not in forced]
    adamw = [p for key, p in order.items() if p.dim() < 2 or key in forced]

    groups: list[dict[str, Any]] = []
    if muon:
        groups.append({"params": muon, "use_muon": True})
    if adamw:
        group: dict[str, Any] = {"params": adamw, "use_muon": False}
        for key, value in (
            ("lr", adamw_lr),
            ("weight_decay", adamw_weight_decay),
            ("betas", adamw_betas),
            ("adamw_eps", adamw_eps),
        ):
            if value is not None:
                group[key] = value
        groups.append(group)
    return groups


# ---- helpers ----------------------------------------------------------------------------------------


def _checked_grad(p: Tensor) -> Tensor | None:
    g = p.grad
    if g is None:
        return None
    if g.is_sparse:
        raise RuntimeError(
            f"kernels.optim.Muon does not support sparse gradients (parameter of shape {tuple(p.shape)}); "
            "use dense gradients, e.g. nn.Embedding(sparse=False)"
        )
    if torch.is_complex(p):
        raise RuntimeError(f"kernels.optim.Muon does not support complex parameters (shape {tuple(p.shape)})")
    return g


def _lr_ratio(adjust_lr_fn: str | None, m: int, n: int) -> float:
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return math.sqrt(max(1.0, m / n))
    return 0.2 * math.sqrt(max(m, n))  # "match_rms_adamw" (validated)


def _coefficients_key(group: dict[str, Any]) -> tuple:
    """A hashable form of the group's Newton–Schulz coefficients: one (a, b, c) triple per step."""
    return tuple(check_coefficients(group["ns_coefficients"], group["ns_steps"]))


def _is_real(value) -> bool:
    if isinstance(value, Tensor):
        return value.numel() == 1 and not value.is_complex() and math.isfinite(float(value))
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _check_hyperparameters(group: dict[str, Any], where: str) -> None:
    """ValueError naming the first bad hyperparameter of a group (or of the defaults)."""
    lr = group["lr"]
    if not _is_real(lr) or float(lr) < 0:
        raise ValueError(f"lr must be a finite number >= 0{where}, got {lr!r}")
    wd = group["weight_decay"]
    if not _is_real(wd) or wd < 0:
        raise ValueError(f"weight_decay must be a finite number >= 0{where}, got {wd!r}")
    mom = group["momentum"]
    if not _is_real(mom) or not 0 <= mom < 1:
        raise ValueError(f"momentum must be a number in [0, 1){where}, got {mom!r}")
    steps = group["ns_steps"]
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"ns_steps must be an integer >= 1{where}, got {steps!r}")
    try:
        check_coefficients(
            group["ns_coefficients"], int(steps), name="ns_coefficients", steps_name="ns_steps", where=where
        )
    except TypeError as exc:  # a non-iterable: Muon reports every bad hyperparameter as ValueError
        raise ValueError(str(exc)) from None
    for name in ("eps", "adamw_eps"):
        if not _is_real(group[name]) or group[name] < 0:
            raise ValueError(f"{name} must be a finite number >= 0{where}, got {group[name]!r}")
    fn = group["adjust_lr_fn"]
    if fn not in ADJUST_LR_FNS:
        raise ValueError(f"adjust_lr_fn must be None, 'original' or 'match_rms_adamw'{where}, got {fn!r}")
    betas = group["betas"]
    try:
        ok = len(betas) == 2 and all(_is_real(b) and 0 <= b < 1 for b in betas)
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"betas must be a pair of numbers in [0, 1){where}, got {betas!r}")
    if not isinstance(group["nesterov"], bool):
        raise ValueError(f"nesterov must be a bool{where}, got {group['nesterov']!r}")
    if not isinstance(group["use_muon"], bool):
        raise ValueError(f"use_muon must be a bool{where}, got {group['use_muon']!r}")
