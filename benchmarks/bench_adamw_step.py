"""One AdamW step over a whole network's parameters, fp32, on CPU.

Two parameter lists with the real shapes of the networks: ResNet-18 (torchvision, 1000 classes,
11.7M parameters) and ViT-S/16 (224², 1000 classes, 22.1M). Providers, each timing one optimizer step
(gradients fixed, state already initialized by a first step):
- ``anchor``: ``torch.optim.AdamW(fused=True)`` — torch's own fused kernel, the bar to meet.
- ``foreach``: ``torch.optim.AdamW(foreach=True)``.
- ``optim``: ``kernels.optim.AdamW`` (the cpu backend), the drop-in optimizer.
- ``op``: the raw ``kernels.adamw_step`` call on the lists (no optimizer bookkeeping).

The terminal summary (benchmarks/conftest.py) prints anchor median / provider median per group.
"""

from __future__ import annotations

import contextlib
import functools

import pytest
import torch

import kernels
from kernels.backend import why_unavailable
from kernels.demo import resnet18_shapes, vit_s16_shapes
from kernels.optim import AdamW

LR, BETAS, EPS, WD = 1e-3, (0.9, 0.999), 1e-8, 1e-2


NETWORKS = {"resnet18": resnet18_shapes(), "vit_s16": vit_s16_shapes()}
PROVIDERS = ("anchor", "foreach", "optim", "op")
ROUNDS = 15


@functools.cache
def _grads(network: str) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(0)
    return tuple(torch.randn(s, generator=gen) for s in NETWORKS[network])


def _params(network: str) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(1)
    params = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in NETWORKS[network]]
    for p, g in zip(params, _grads(network), strict=True):
        p.grad = g
    return params


def _make(provider: str, network: str):
    params = _params(network)
    if provider in ("anchor", "foreach"):
        opt = torch.optim.AdamW(params, lr=LR, betas=BETAS, eps=EPS, weight_decay=WD,
                                fused=provider == "anchor", foreach=provider == "foreach")
        return params, opt.step
    opt = AdamW(params, lr=LR, betas=BETAS, eps=EPS, weight_decay=WD)
    if provider == "optim":
        return params, opt.step
    with kernels.use_backend("cpu"):
        opt.step()  # creates the state
    state = [opt.state[p] for p in params]
    grads = [p.grad for p in params]
    exp_avgs = [s["exp_avg"] for s in state]
    exp_avg_sqs = [s["exp_avg_sq"] for s in state]
    counter = [1]

    def raw_step() -> None:
        counter[0] += 1
        kernels.adamw_step(params, grads, exp_avgs, exp_avg_sqs, lr=LR, beta1=BETAS[0], beta2=BETAS[1],
                           eps=EPS, weight_decay=WD, step=counter[0])

    return params, raw_step


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("network", list(NETWORKS))
def test_adamw_step(benchmark, network: str, provider: str) -> None:
    if provider in ("optim", "op") and "cpu" not in kernels.available_backends("adamw_step", "cpu"):
        reason = why_unavailable("adamw_step", "cpu", "cpu")
        pytest.skip(f"the cpu backend of adamw_step is unavailable: {reason}")
    params, step = _make(provider, network)
    numel = sum(p.numel() for p in params)
    benchmark.group = f"adamw_step {network} ({numel / 1e6:.1f}M) fp32 cpu"
    benchmark.extra_info.update(provider=provider, tensors=len(params), numel=numel,
                                threads=torch.get_num_threads())
    # Checked before timing: the first step (for "op", the optimizer step that created its state) must
    # equal torch's for-loop AdamW from the same start.
    expected = _params(network)
    torch.optim.AdamW(expected, lr=LR, betas=BETAS, eps=EPS, weight_decay=WD, foreach=False).step()
    ours = provider in ("optim", "op")
    with kernels.use_backend("cpu") if ours else contextlib.nullcontext():
        if provider != "op":
            step()
        worst = max((p - e).abs().max().item() for p, e in zip(params, expected, strict=True))
        benchmark.extra_info["max_abs_diff_vs_torch"] = worst
        assert worst <= 1e-6, f"{provider} differs from torch.optim.AdamW by {worst:.2e}"
        benchmark.pedantic(step, rounds=ROUNDS, iterations=1, warmup_rounds=2)
