"""GPU benchmark spec of rotate_filter_bank for benchmarks/gpu/bench_ops.py (see its docstring).

Cases are (C_out, C_in, N_in, N, B, k): the issue's layer (8 → 8 regular fields of C_8, k = 5, pixel /
B-Conv basis B = 25), a lifting layer, a wide layer (64 → 64 fields of C_8, a 512 x 512 x 5 x 5 bank)
and C_16 with k = 7 (B = 49). Rated in GB/s on the bytes the op must move: it reads coeffs
(C_out·C_in·N_in·B) and the basis (N·B·k²) and writes W (C_out·N·C_in·N_in·k²), each once; the
2·B multiply-adds per written tap make it compute-light (B/4 flop per byte in fp32), so small banks
are launch-bound — compare backends by time there. Anchor: e2cnn's R2Conv.expand_parameters() for
the same group, field counts and k (its own basis) where the case is a group layer.
"""

from __future__ import annotations

import torch
from bench_ops import DEVICE, OpBench


def _make_inputs(shape: tuple[int, ...], dtype: torch.dtype) -> tuple:
    c_out, c_in, n_in, n, b, k = shape
    coeffs = torch.randn(c_out, c_in, n_in, b, device=DEVICE, dtype=dtype)
    basis = torch.randn(n, b, k, k, device=DEVICE, dtype=dtype)
    return coeffs, basis


def _run(coeffs: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    import kernels

    return kernels.rotate_filter_bank(coeffs, basis, basis.shape[0])


def _bytes(shape: tuple[int, ...], dtype: torch.dtype) -> float:
    c_out, c_in, n_in, n, b, k = shape
    elt = torch.empty((), dtype=dtype).element_size()
    # coeffs read + basis read + W written, once each
    return elt * (c_out * c_in * n_in * b + n * b * k * k + c_out * n * c_in * n_in * k * k)


def _e2cnn_anchor(inputs: tuple):
    coeffs, basis = inputs
    c_out, c_in, n_in, _ = coeffs.shape
    n, _, k, _ = basis.shape
    if n_in != n:
        return "skipped: e2cnn anchor only for group (regular → regular) layers"
    try:
        from e2cnn import gspaces
        from e2cnn import nn as enn
    except ImportError as exc:
        return f"skipped: e2cnn is not installed here ({exc.__class__.__name__})"
    gs = gspaces.Rot2dOnR2(n)
    conv = enn.R2Conv(
        enn.FieldType(gs, c_in * [gs.regular_repr]),
        enn.FieldType(gs, c_out * [gs.regular_repr]),
        kernel_size=k,
        padding=k // 2,
    ).to(device=coeffs.device, dtype=coeffs.dtype)
    return lambda: conv.expand_parameters()[0]


def bench() -> OpBench:
    shapes = [(8, 8, 8, 8, 25, 5), (8, 1, 1, 8, 25, 5), (64, 64, 8, 8, 25, 5), (16, 16, 16, 16, 49, 7)]
    return OpBench(
        name="rotate_filter_bank",
        cases=[(s, d) for d in (torch.float32,) for s in shapes],
        make_inputs=_make_inputs,
        run=_run,
        bytes=_bytes,
        anchors={"e2cnn R2Conv.expand_parameters": _e2cnn_anchor},
        smoke_cases=[((3, 2, 4, 4, 9, 3), torch.float32)],
    )
