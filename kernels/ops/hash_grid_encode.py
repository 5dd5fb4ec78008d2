"""``kernels.hash_grid_encode``: Instant-NGP's multiresolution hash encoding, differentiable.

Backends: reference (torch, the specification: kernels/reference/hash_grid_encode.py), cpu
(kernels._C, OpenMP over points; table gradient one level per thread, deterministic), triton (one
program per block of points per level; atomics for the backward), cuda (kernels._cuda, one thread per
(point, level); atomicAdd for the backward). Default choice:
- CPU tensors: ``cpu``. benchmarks/bench_hash_grid_encode.py (make bench, AMD EPYC, 2 cores,
  2026-11-29; d=3, L=16, F=2, T=2^19, fp32) against the pure-torch reference: forward 7.6x (2^18
  points: 94 vs 712 ms) and 6.1x (2^20); forward+backward 9.6x and 9.8x. The forward runs levels
  outside and points inside so that one level's table is in cache at a time (points outside,
  levels inside measured 2.4x / 4.1x: random gathers over the whole 64 MB table).
- CUDA tensors: ``cuda``, then ``triton``, then ``reference`` — provisional, to be re-ranked from
  benchmarks/gpu/run_all.sh once it has run on a GPU.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from kernels import backend, nvtx
from kernels._ext import _C, DTYPE_CODES, _cuda
from kernels._interop import as_tensor
from kernels.reference import hash_grid_encode as ref

OP = "hash_grid_encode"
MAX_LEVELS = 64  # the CUDA kernel takes the resolutions by value
MAX_RESOLUTION = 1 << 24  # fp32 positions x·res stop resolving cells beyond this
TABLE_DTYPES = (torch.float32, torch.float16, torch.float64)

backend.define_op(OP, preference={"cpu": ("cpu",), "cuda": ("cuda", "triton")})
_triton_unavailable = backend.triton_module_unavailable("kernels.triton.hash_grid_encode")


def level_resolutions(n_levels: int, base_resolution: int, per_level_scale: float) -> list[int]:
    """res_l = floor(base_resolution · per_level_scale^l), l = 0 .. n_levels − 1 (in float64)."""
    return [math.floor(base_resolution * per_level_scale**level) for level in range(n_levels)]


def hash_grid_encode(
    x,
    table,
    *,
    n_levels: int,
    base_resolution: int,
    per_level_scale: float,
    check_finite: bool = True,
):
    """Encode points ``x`` (N, d) with the multiresolution hash grid ``table`` (L, T, F) → (N, L·F).

    Per level l, res_l = floor(base_resolution · per_level_scale^l) and the grid has res_l + 1
    vertices per axis. Each coordinate is clamped to [0, 1] (documented choice: points outside the
    unit cube are encoded as the nearest point on its surface; the gradient w.r.t. x is 0 there), then
    ``p = x·res_l``, corner ``c = min(floor(p), res_l − 1)``, weight ``w = p − c``, and
        out[:, l·F + f] = Σ_{k∈{0,1}^d} Π_i (k_i ? w_i : 1 − w_i) · table[l, index_l(c + k), f]
    where index_l is dense row-major indexing (axis 0 slowest) over the (res_l + 1)^d vertices when
    (res_l + 1)^d <= T, else the spatial hash (XOR_i v_i·prime_i mod 2^32) mod T with primes
    (1, 2654435761, 805459861, 3674653429). Output is level-major (level l in columns l·F..l·F+F−1).

    Args:
        x: (N, d) points, d in 1..4, any floating dtype; converted once to the math dtype (float32,
            float64 for float64 tables). Tensor or array with DLPack (numpy in → numpy out).
        table: (L, T, F) features, F in {1, 2, 4, 8}, float32, float16 or float64 (float64: reference
            and cpu backends, for gradcheck), on x's device. Output has the table's dtype (as
            Instant-NGP); math is float32 (float64 for float64 tables).
        n_levels: must equal L (1..64). base_resolution: int >= 1. per_level_scale: >= 1.
        check_finite: raise if x holds NaN or Inf (one reduction, a device sync; skipped inside
            torch.compile, where it would break the graph). Unchecked NaN coordinates encode as 0.

    Differentiable w.r.t. table (scatter-add of the d-linear weights; deterministic on CPU) and x
    (only computed when x requires grad; the derivative of the d-linear weights, exact away from
    cell boundaries where it jumps). Double backward is NOT supported and raises RuntimeError.

    Backends: reference, cpu, triton, cuda — see ``kernels.available_backends("hash_grid_encode")``.
    """
    x, convert_back = as_tensor(x, "x")
    table, _ = as_tensor(table, "table")
    resolutions = _check(x, table, n_levels, base_resolution, per_level_scale)
    # Under torch.compile the check would be a data-dependent branch (a graph break): skipped there.
    if check_finite and not torch.compiler.is_compiling() and not bool(torch.isfinite(x).all()):
        raise ValueError("x contains NaN or Inf values (pass check_finite=False to skip this check)")
    math_dtype = torch.float64 if table.dtype == torch.float64 else torch.float32
    x = x.to(math_dtype).contiguous()  # one visible conversion; autograd casts the gradient back
    return convert_back(torch.ops.pykernels.hash_grid_encode(x, table.contiguous(), resolutions))


def _check(x: Tensor, table: Tensor, n_levels, base_resolution, per_level_scale) -> list[int]:
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    if x.dim() != 2 or not 1 <= x.size(1) <= 4:
        raise ValueError(f"x must have shape (N, d) with d in 1..4, got shape {tuple(x.shape)}")
    if table.dtype not in TABLE_DTYPES:
        raise TypeError(f"table must have dtype float32, float16 or float64, got {table.dtype}")
    if table.dim() != 3 or table.size(2) not in (1, 2, 4, 8) or table.size(1) < 1:
        raise ValueError(
            "table must have shape (L, T, F) with T >= 1 and F in (1, 2, 4, 8), "
            f"got shape {tuple(table.shape)}"
        )
    if table.size(1) >= 1 << 32:
        raise ValueError(f"table must have T < 2^32 entries per level, got T={table.size(1)}")
    if x.device != table.device:
        raise ValueError(f"x and table must be on the same device, got {x.device} and {table.device}")
    if isinstance(n_levels, bool) or not isinstance(n_levels, numbers.Integral):
        raise TypeError(f"n_levels must be an int, got {type(n_levels).__name__}")
    if n_levels != table.size(0) or not 1 <= n_levels <= MAX_LEVELS:
        raise ValueError(
            f"n_levels must equal table.shape[0] and lie in 1..{MAX_LEVELS}, got n_levels={n_levels} "
            f"for a table of shape {tuple(table.shape)}"
        )
    if (
        isinstance(base_resolution, bool)
        or not isinstance(base_resolution, numbers.Integral)
        or base_resolution < 1
    ):
        raise ValueError(f"base_resolution must be an int >= 1, got {base_resolution!r}")
    if (
        isinstance(per_level_scale, bool)
        or not isinstance(per_level_scale, numbers.Real)
        or not math.isfinite(per_level_scale)
        or per_level_scale < 1
    ):
        raise ValueError(f"per_level_scale must be a finite number >= 1, got {per_level_scale!r}")
    resolutions = level_resolutions(int(n_levels), int(base_resolution), float(per_level_scale))
    if resolutions[-1] > MAX_RESOLUTION:
        raise ValueError(
            f"the finest level's resolution {resolutions[-1]} exceeds {MAX_RESOLUTION} (2^24): fp32 "
            "positions cannot resolve its cells; lower per_level_scale or n_levels"
        )
    return resolutions


# ---- registered ops: x (N, d) contiguous in the math dtype, table (L, T, F) contiguous ------------


@torch.library.custom_op("pykernels::hash_grid_encode", mutates_args=())
def _hash_grid_encode_op(x: Tensor, table: Tensor, resolutions: list[int]) -> Tensor:
    if x.size(0) == 0:
        return table.new_empty(0, table.size(0) * table.size(2))
    name, impl = backend.select(OP, x.device)
    with nvtx.range(f"pykernels.hash_grid_encode[{name}]"):
        return impl.forward(x, table, resolutions)


@_hash_grid_encode_op.register_fake
def _(x: Tensor, table: Tensor, resolutions: list[int]) -> Tensor:
    return table.new_empty(x.size(0), table.size(0) * table.size(2))


@torch.library.custom_op("pykernels::hash_grid_encode_backward", mutates_args=())
def _hash_grid_encode_backward_op(
    grad_out: Tensor, x: Tensor, table: Tensor, resolutions: list[int], need_x_grad: bool
) -> tuple[Tensor, Tensor]:
    """(grad_table (L, T, F) in table's dtype, grad_x (N, d) — shape (0, d) when not need_x_grad)."""
    name, impl = backend.select(OP, x.device)
    with nvtx.range(f"pykernels.hash_grid_encode_backward[{name}]"):
        if x.size(0) == 0:
            grad_table, grad_x = x.new_zeros(table.shape), None
        else:
            grad_table, grad_x = impl.backward(grad_out.contiguous(), x, table, resolutions, need_x_grad)
    if grad_x is None:
        grad_x = x.new_empty(0, x.size(1))
    return grad_table.to(table.dtype), grad_x


@_hash_grid_encode_backward_op.register_fake
def _(grad_out, x, table, resolutions, need_x_grad):
    return table.new_empty(table.shape), x.new_empty(x.size(0) if need_x_grad else 0, x.size(1))


def _setup_context(ctx, inputs, output) -> None:
    x, table, resolutions = inputs
    ctx.save_for_backward(x, table)
    ctx.resolutions = resolutions


def _backward(ctx, grad_out: Tensor):
    x, table = ctx.saved_tensors
    need_x = ctx.needs_input_grad[0]
    grad_table, grad_x = torch.ops.pykernels.hash_grid_encode_backward(
        grad_out, x, table, ctx.resolutions, need_x
    )
    return (grad_x if need_x else None), (grad_table if ctx.needs_input_grad[1] else None), None


def _no_double_backward(ctx, *grads):
    raise RuntimeError(
        "kernels.hash_grid_encode does not support double backward (a gradient of its gradient); "
        "use torch.func/finite differences or the reference formulas instead"
    )


def _backward_setup_context(ctx, inputs, output) -> None:
    pass


_hash_grid_encode_op.register_autograd(_backward, setup_context=_setup_context)
_hash_grid_encode_backward_op.register_autograd(_no_double_backward, setup_context=_backward_setup_context)


# ---- backends: each has forward(x, table, res) -> out and backward(...) -> (grad_table, grad_x) ---
# grad_table is in the math dtype (fp32 for fp16 tables; the op casts it), grad_x is None when not wanted.


def _ref_forward(x, table, resolutions):
    return ref.hash_grid_encode_forward(x, table, resolutions)


def _ref_backward(grad_out, x, table, resolutions, need_x_grad):
    return ref.hash_grid_encode_backward(grad_out, x, table, resolutions, need_x_grad)


def _cpu_forward(x, table, resolutions):
    (n, d), (L, T, F) = x.shape, table.shape
    out = table.new_empty(n, L * F)
    _C.hash_grid_encode_forward(
        x.data_ptr(), table.data_ptr(), out.data_ptr(), n, d, L, T, F, resolutions, DTYPE_CODES[table.dtype]
    )
    return out


def _cpu_backward(grad_out, x, table, resolutions, need_x_grad):
    (n, d), (L, T, F) = x.shape, table.shape
    grad_table = x.new_zeros(L, T, F)
    grad_x = x.new_empty(n, d) if need_x_grad else None
    _C.hash_grid_encode_backward(
        grad_out.data_ptr(), x.data_ptr(), table.data_ptr(), grad_table.data_ptr(),
        0 if grad_x is None else grad_x.data_ptr(), n, d, L, T, F, resolutions, DTYPE_CODES[table.dtype],
    )  # fmt: skip
    return grad_table, grad_x


def _cuda_forward(x, table, resolutions):
    (n, d), (L, T, F) = x.shape, table.shape
    out = table.new_empty(n, L * F)
    with torch.cuda.device(x.device):
        stream = torch.cuda.current_stream(x.device).cuda_stream
        _cuda.hash_grid_encode_forward(
            x.data_ptr(), table.data_ptr(), out.data_ptr(), n, d, L, T, F, resolutions,
            DTYPE_CODES[table.dtype], stream,
        )  # fmt: skip
    return out


def _cuda_backward(grad_out, x, table, resolutions, need_x_grad):
    (n, d), (L, T, F) = x.shape, table.shape
    grad_table = x.new_zeros(L, T, F)  # fp32 (fp64) accumulation with atomicAdd, cast by the op
    grad_x = x.new_empty(n, d) if need_x_grad else None
    with torch.cuda.device(x.device):
        stream = torch.cuda.current_stream(x.device).cuda_stream
        _cuda.hash_grid_encode_backward(
            grad_out.data_ptr(), x.data_ptr(), table.data_ptr(), grad_table.data_ptr(),
            0 if grad_x is None else grad_x.data_ptr(), n, d, L, T, F, resolutions,
            DTYPE_CODES[table.dtype], stream,
        )  # fmt: skip
    return grad_table, grad_x


def _triton_forward(x, table, resolutions):
    from kernels.triton.hash_grid_encode import forward

    return forward(x, table, resolutions)


def _triton_backward(grad_out, x, table, resolutions, need_x_grad):
    from kernels.triton.hash_grid_encode import backward

    return backward(grad_out, x, table, resolutions, need_x_grad)


backend.register(OP, "reference", devices=("cpu", "cuda"))(
    backend.ForwardBackward(_ref_forward, _ref_backward)
)
backend.register(OP, "cpu", devices=("cpu",), unavailable=backend.cpu_ext_unavailable)(
    backend.ForwardBackward(_cpu_forward, _cpu_backward)
)
backend.register(OP, "triton", devices=backend.triton_devices, unavailable=_triton_unavailable)(
    backend.ForwardBackward(_triton_forward, _triton_backward)
)
backend.register(OP, "cuda", devices=("cuda",), unavailable=backend.cuda_ext_unavailable)(
    backend.ForwardBackward(_cuda_forward, _cuda_backward)
)
