"""``kernels.newton_schulz``: Newton–Schulz orthogonalization, the inner loop of Muon.

Backends: reference (torch), cpu (kernels._C, OpenMP), triton (symmetric-tile matmuls with fused
epilogues), cuda (kernels._cuda). Default choice, from benchmarks/bench_newton_schulz.py:
- CPU tensors: the ``cpu`` backend. Measured (make bench, AMD EPYC, 2 cores, 2026-11-29,
  benchmarks/results/cpu-AMD_EPYC-2c): against the per-layer torch loop it is 1.4-1.8x faster on the
  ResNet-18 layer set (fp32) and 1.8x (fp32) / 1.5-1.7x (fp64) on ViT-tiny, while the batched torch
  reference is 0.75-1.1x: the reference would be the slower default.
- CUDA tensors: ``triton``, then ``cuda``, then ``reference``; to be re-ranked from
  benchmarks/gpu/run_all.sh once it has run on a GPU.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

from kernels import backend, nvtx
from kernels._ext import _C, DTYPE_CODES, _cuda
from kernels._interop import as_tensor
from kernels.reference.newton_schulz import newton_schulz_core

OP = "newton_schulz"
DEFAULT_COEFFICIENTS = (3.4445, -4.7750, 2.0315)

backend.define_op(OP, preference={"cpu": ("cpu",), "cuda": ("triton", "cuda")})
_triton_unavailable = backend.triton_module_unavailable("kernels.triton.newton_schulz")

Triple = tuple[float, float, float]


def newton_schulz(
    G,
    steps: int = 5,
    coefficients: Sequence[float] | Sequence[Sequence[float]] = DEFAULT_COEFFICIENTS,
    eps: float = 1e-7,
    *,
    check_finite: bool = False,
):
    """Approximately orthogonalize every matrix of ``G`` (shape (..., m, n)) with Newton–Schulz.

    Per matrix, on Gᵀ when m > n: ``X = G / (‖G‖_F + eps)``, then for each step ``A = X Xᵀ``,
    ``B = b·A + c·A²``, ``X = a·X + B·X``; the result has G's shape and dtype. Each step maps every
    singular value σ to p(σ) = aσ + bσ³ + cσ⁵; with the default quintic (3.4445, -4.7750, 2.0315) and
    5 steps, every singular value with σ/‖G‖_F >= 2e-3 lands in [0.68, 1.21] (tested).

    Args:
        G: tensor (or numpy/cupy array, via DLPack) of shape (..., m, n); leading dims are a batch.
            float32, float64, float16 or bfloat16; 16-bit inputs use fp32 accumulation.
        steps: number of iterations (>= 1) when ``coefficients`` is one (a, b, c) triple.
        coefficients: one (a, b, c) triple used at every step, or ``steps`` triples (one per step).
        eps: added to the Frobenius norm before dividing (>= 0).
        check_finite: raise if G holds NaN/Inf (forces a device sync, so off by default).

    Backends: reference, cpu, triton, cuda — see ``kernels.available_backends("newton_schulz")``.
    Not differentiable (Muon applies it to gradients, not inside a graph).
    """
    G, convert_back = as_tensor(G, "G")
    _check_tensor(G)
    triples = check_coefficients(coefficients, steps)
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    if check_finite and not bool(torch.isfinite(G).all()):
        raise ValueError("G contains NaN or Inf values (check_finite=True)")
    flat = [float(v) for abc in triples for v in abc]
    return convert_back(torch.ops.pykernels.newton_schulz(G, flat, float(eps)))


def _check_tensor(G: Tensor) -> None:
    if G.dtype not in DTYPE_CODES:
        raise TypeError(
            f"G must have dtype float32, float64, float16 or bfloat16, got {G.dtype}"
        )
    if G.dim() < 2:
        raise ValueError(f"G must have shape (..., m, n) with at least 2 dims, got shape {tuple(G.shape)}")
    if G.size(-1) == 0 or G.size(-2) == 0:
        raise ValueError(f"G must have m >= 1 and n >= 1, got shape {tuple(G.shape)}")


def check_coefficients(
    coefficients, steps: int, *, name: str = "coefficients", steps_name: str = "steps", where: str = ""
) -> list[Triple]:
    """Validate ``steps`` and ``coefficients`` as ``newton_schulz`` takes them; return one (a, b, c) per
    step. ``name``/``steps_name``/``where`` let a caller (kernels.optim.Muon) name its own arguments."""
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"{steps_name} must be an integer >= 1{where}, got {steps!r}")
    try:
        items = list(coefficients)
    except TypeError:
        raise TypeError(
            f"{name} must be an (a, b, c) triple or a list of triples{where}, "
            f"got {type(coefficients).__name__}"
        ) from None
    if len(items) == 3 and all(isinstance(v, numbers.Real) for v in items):
        triples = [tuple(float(v) for v in items)] * int(steps)
    else:
        if not all(isinstance(t, Sequence) and len(t) == 3 for t in items):
            raise ValueError(
                f"{name} must be one (a, b, c) triple or a list of (a, b, c) triples{where}, "
                f"got {coefficients!r}"
            )
        if len(items) != steps:
            raise ValueError(
                f"{name} has {len(items)} triples but {steps_name}={steps}{where}: give one triple per "
                f"step and pass {steps_name}=len({name})"
            )
        triples = [tuple(float(v) for v in t) for t in items]
    if not all(math.isfinite(v) for t in triples for v in t):
        raise ValueError(f"{name} must be finite{where}, got {triples}")
    return triples


@torch.library.custom_op("pykernels::newton_schulz", mutates_args=())
def _newton_schulz_op(G: Tensor, coeffs: list[float], eps: float) -> Tensor:
    if G.numel() == 0:
        return G.new_empty(G.shape)
    triples = [tuple(coeffs[i : i + 3]) for i in range(0, len(coeffs), 3)]
    transpose = G.size(-2) > G.size(-1)
    X = G.mT if transpose else G
    rows, cols = X.shape[-2:]
    X = X.reshape(-1, rows, cols).contiguous()
    name, impl = backend.select(OP, G.device)
    with nvtx.range(f"pykernels.newton_schulz[{name}]"):
        out = impl(X, triples, eps)
    out = out.reshape(*G.shape[:-2], rows, cols)
    return out.mT.contiguous() if transpose else out


@_newton_schulz_op.register_fake
def _(G: Tensor, coeffs: list[float], eps: float) -> Tensor:
    return G.new_empty(G.shape)


# ---- backends: X is contiguous (B, m, n) with m <= n; each returns a new tensor -----------------


@backend.register(OP, "reference", devices=("cpu", "cuda"))
def _reference(X: Tensor, triples: list[Triple], eps: float) -> Tensor:
    return newton_schulz_core(X, triples, eps)


@backend.register(OP, "cpu", devices=("cpu",), unavailable=backend.cpu_ext_unavailable)
def _cpu(X: Tensor, triples: list[Triple], eps: float) -> Tensor:
    out = X.new_empty(X.shape)
    batch, rows, cols = X.shape
    flat = [v for abc in triples for v in abc]
    _C.newton_schulz(X.data_ptr(), out.data_ptr(), batch, rows, cols, DTYPE_CODES[X.dtype], flat, eps)
    return out


@backend.register(OP, "triton", devices=backend.triton_devices, unavailable=_triton_unavailable)
def _triton(X: Tensor, triples: list[Triple], eps: float) -> Tensor:
    from kernels.triton.newton_schulz import newton_schulz as triton_newton_schulz

    return triton_newton_schulz(X, triples, eps)


@backend.register(OP, "cuda", devices=("cuda",), unavailable=backend.cuda_ext_unavailable)
def _cuda_impl(X: Tensor, triples: list[Triple], eps: float) -> Tensor:
    out = X.new_empty(X.shape)
    batch, rows, cols = X.shape
    code = DTYPE_CODES[X.dtype]
    workspace = torch.empty(
        _cuda.newton_schulz_workspace_bytes(batch, rows, cols, code), dtype=torch.uint8, device=X.device
    )
    flat = [v for abc in triples for v in abc]
    with torch.cuda.device(X.device):
        stream = torch.cuda.current_stream(X.device).cuda_stream
        _cuda.newton_schulz(
            X.data_ptr(), out.data_ptr(), workspace.data_ptr(), batch, rows, cols, code, flat, eps, stream
        )
    return out
