"""GPU benchmark of ``kernels.adamw_step`` for benchmarks/gpu/bench_ops.py: one AdamW step over the
parameter lists of ResNet-18 (11.7M) and ViT-S/16 (22.1M), with their real shapes (from
benchmarks/bench_adamw_step.py), fp32 and bf16 params (fp32 state), with and without a correction.

A case's "shape" names the network (and "+corr" with a correction). Anchors: torch.optim.AdamW with
``fused=True`` and with ``foreach=True`` on the same lists (no correction: torch has none).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
from bench_ops import DEVICE, OpBench

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_adamw_step import NETWORKS  # noqa: E402

LR, BETA1, BETA2, EPS, WD = 1e-3, 0.9, 0.999, 1e-8, 1e-2
SHAPES = {**NETWORKS, "tiny": [(7,), (33, 5), (4, 3, 3, 3)]}  # "tiny": the CPU smoke test's case


def _numel(network: str) -> int:
    return sum(math.prod(s) for s in SHAPES[network])


def _bytes(shape: tuple, dtype: torch.dtype) -> float:
    # Per element: read p, g (param dtype) and m, v (fp32); write p (param dtype), m, v (fp32):
    # fp32 params: 4 reads + 3 writes of 4 bytes = 28; +4 bytes read for the correction (fp32).
    network, corr = shape[0], len(shape) > 1
    p = torch.empty((), dtype=dtype).element_size()
    return _numel(network) * (3 * p + 16 + (4 if corr else 0))


def _make_inputs(shape: tuple, dtype: torch.dtype) -> tuple:
    network, corr = shape[0], len(shape) > 1
    shapes = SHAPES[network]
    params = [torch.randn(s, device=DEVICE).to(dtype) for s in shapes]
    grads = [torch.randn(s, device=DEVICE).to(dtype) for s in shapes]
    exp_avgs = [torch.zeros(s, device=DEVICE) for s in shapes]
    exp_avg_sqs = [torch.zeros(s, device=DEVICE) for s in shapes]
    corrections = [torch.randn(s, device=DEVICE) for s in shapes] if corr else None
    return params, grads, exp_avgs, exp_avg_sqs, corrections


def _run(params, grads, exp_avgs, exp_avg_sqs, corrections) -> torch.Tensor:
    import kernels

    kernels.adamw_step(params, grads, exp_avgs, exp_avg_sqs, lr=LR, beta1=BETA1, beta2=BETA2, eps=EPS,
                       weight_decay=WD, step=1, corrections=corrections, alpha=0.5 if corrections else 0.0)
    return params[-1]


def _torch_anchor(kind: str):
    def factory(inputs: tuple):
        params, grads, _, _, corrections = inputs
        if corrections is not None:
            return "skipped: torch.optim.AdamW has no correction term"
        leaves = [torch.nn.Parameter(p) for p in params]
        for leaf, g in zip(leaves, grads, strict=True):
            leaf.grad = g
        opt = torch.optim.AdamW(leaves, lr=LR, betas=(BETA1, BETA2), eps=EPS, weight_decay=WD,
                                fused=kind == "fused", foreach=kind == "foreach")

        def step() -> torch.Tensor:
            opt.step()
            return leaves[-1].detach()

        return step

    return factory


def bench() -> OpBench:
    cases = []
    for network in NETWORKS:
        cases += [((network,), torch.float32), ((network, "corr"), torch.float32)]
        cases += [((network,), torch.bfloat16)]
    return OpBench(
        name="adamw_step",
        cases=cases,
        make_inputs=_make_inputs,
        run=_run,
        bytes=_bytes,
        anchors={"torch fused": _torch_anchor("fused"), "torch foreach": _torch_anchor("foreach")},
        smoke_cases=[(("tiny",), torch.float32), (("tiny", "corr"), torch.float32)],
    )
