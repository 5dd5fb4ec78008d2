"""``kernels.rotate_filter_bank``: expand basis coefficients into the rotated filter bank of a C_N group
convolution (lifting or group → group), in one fused pass, differentiable w.r.t. the coefficients.

Backends: reference (torch einsum after a gather of the rolled coefficients, the specification:
kernels/reference/rotate_filter_bank.py), cpu (kernels._C, OpenMP over output rows (o, r), a
register-blocked micro-kernel, AVX-512/AVX2 chosen at load time), triton (one program per
(o·N + r, i): an (N_in, k·k) tile accumulated over the basis), cuda (kernels._cuda, one thread per
output element). Each has a backward kernel of its own (the transposed contraction). Default choice:
- CPU tensors: ``cpu``. benchmarks/bench_rotate_filter_bank.py (AMD EPYC, 2 shared cores,
  2026-11-29; 8 -> 8 regular fields of C_8, k=5, fp32; one thread for every provider): forward
  median 0.13 ms (B-Conv basis, B=25) / 0.09 ms (Fourier, B=9) vs 0.36 ms for the reference and
  0.28 ms for e2cnn's R2Conv.expand_parameters; forward + backward 0.28 / 0.30 ms vs 0.82 ms
  (reference) and 0.64 ms (e2cnn). Banks under 4M multiply-adds run on one thread (see
  csrc/cpu/rotate_filter_bank.cpp: OpenMP barrier tails on busy cores).
- CUDA tensors: ``cuda``, then ``triton``, then ``reference`` — provisional, to be re-ranked from
  benchmarks/gpu/run_all.sh once it has run on a GPU.
"""

from __future__ import annotations

import numbers

import torch
from torch import Tensor

from kernels import backend, nvtx
from kernels._ext import _C, DTYPE_CODES, _cuda
from kernels._interop import as_tensor
from kernels.reference import rotate_filter_bank as ref

OP = "rotate_filter_bank"
DTYPES = (torch.float32, torch.float64)

backend.define_op(OP, preference={"cpu": ("cpu",), "cuda": ("cuda", "triton")})
_triton_unavailable = backend.triton_module_unavailable("kernels.triton.rotate_filter_bank")


def rotate_filter_bank(coeffs, basis, N: int, *, check_finite: bool = False):
    """Expand coefficients ``coeffs`` on a rotated ``basis`` into a C_N group-convolution weight.

    With coeffs (C_out, C_in, N_in, B) and basis (N, B, k1, k2) — basis[r, b] is the b-th basis
    filter rotated by r·2π/N (built once, e.g. by ``kernels.nn.GroupConv2d``) — returns the weight
    W of shape (C_out·N, C_in·N_in, k1, k2) for ``torch.nn.functional.conv2d``:

        W[o·N + r, i·N_in + s] = Σ_b coeffs[o, i, (s − r) mod N_in, b] · basis[r, b]

    N_in = 1 is a lifting layer (image → N orientation channels per field); N_in = N a group layer
    (the input orientation channels roll with the output orientation, which makes it equivariant).
    Channels are field-major: channel c·N + r is orientation r of field c.

    Args:
        coeffs: (C_out, C_in, N_in, B), float32 or float64 (tensor or DLPack array).
        basis: (N, B, k1, k2), coeffs' dtype and device. A constant (a buffer): its gradient is not
            computed, and a basis that requires grad raises ValueError.
        N: the number of rotations; must equal basis.shape[0]; N_in must be 1 or N.
        check_finite: raise if coeffs or basis hold NaN/Inf (a device sync, so off by default).

    Differentiable w.r.t. coeffs (backward: grad[o, i, t, b] = Σ_r Σ_xy gW[o·N + r, i·N_in +
    (t + r) mod N_in, xy] · basis[r, b, xy], a kernel per backend), twice differentiable (the
    backward is linear in gW; its adjoint is the forward).

    Backends: reference, cpu, triton, cuda — see ``kernels.available_backends("rotate_filter_bank")``.
    """
    coeffs, convert_back = as_tensor(coeffs, "coeffs")
    basis, _ = as_tensor(basis, "basis")
    _check(coeffs, basis, N)
    if check_finite and not (bool(torch.isfinite(coeffs).all()) and bool(torch.isfinite(basis).all())):
        raise ValueError("coeffs or basis contains NaN or Inf values (check_finite=True)")
    return convert_back(torch.ops.pykernels.rotate_filter_bank(coeffs.contiguous(), basis.contiguous()))


def _check(coeffs: Tensor, basis: Tensor, N) -> None:
    for name, t in (("coeffs", coeffs), ("basis", basis)):
        if t.dtype not in DTYPES:
            raise TypeError(f"{name} must have dtype float32 or float64, got {t.dtype}")
        if t.dim() != 4:
            raise ValueError(f"{name} must be 4-D, got shape {tuple(t.shape)}")
    if coeffs.dtype != basis.dtype:
        raise TypeError(f"coeffs and basis must have the same dtype, got {coeffs.dtype} and {basis.dtype}")
    if coeffs.device != basis.device:
        raise ValueError(
            f"coeffs and basis must be on the same device, got {coeffs.device} and {basis.device}"
        )
    if isinstance(N, bool) or not isinstance(N, numbers.Integral) or N < 1:
        raise ValueError(f"N must be an int >= 1, got {N!r}")
    if basis.size(0) != N:
        raise ValueError(f"basis must have shape (N, B, k1, k2) with N={N}, got shape {tuple(basis.shape)}")
    if coeffs.size(3) != basis.size(1):
        raise ValueError(
            f"coeffs must have shape (C_out, C_in, N_in, B) with B = basis.shape[1] = {basis.size(1)}, "
            f"got shape {tuple(coeffs.shape)}"
        )
    if coeffs.size(2) not in (1, N):
        raise ValueError(
            f"coeffs.shape[2] (N_in) must be 1 (lifting) or N={N} (group layer), "
            f"got shape {tuple(coeffs.shape)}"
        )
    if basis.requires_grad:
        raise ValueError(
            "basis must not require grad: its gradient is not computed (register it as a buffer, or "
            "pass basis.detach())"
        )


# ---- registered ops: coeffs (C_out, C_in, N_in, B), basis (N, B, k1, k2), both contiguous -----------


@torch.library.custom_op("pykernels::rotate_filter_bank", mutates_args=())
def _rotate_filter_bank_op(coeffs: Tensor, basis: Tensor) -> Tensor:
    C_out, C_in, N_in, _ = coeffs.shape
    N, _, k1, k2 = basis.shape
    if coeffs.numel() == 0 or basis.numel() == 0:
        return coeffs.new_zeros(C_out * N, C_in * N_in, k1, k2)
    name, impl = backend.select(OP, coeffs.device)
    with nvtx.range(f"pykernels.rotate_filter_bank[{name}]"):
        return impl.forward(coeffs, basis)


@_rotate_filter_bank_op.register_fake
def _(coeffs: Tensor, basis: Tensor) -> Tensor:
    C_out, C_in, N_in, _ = coeffs.shape
    N, _, k1, k2 = basis.shape
    return coeffs.new_empty(C_out * N, C_in * N_in, k1, k2)


@torch.library.custom_op("pykernels::rotate_filter_bank_backward", mutates_args=())
def _rotate_filter_bank_backward_op(
    grad_W: Tensor, basis: Tensor, C_out: int, C_in: int, N_in: int
) -> Tensor:
    """grad w.r.t. coeffs, (C_out, C_in, N_in, B), from grad_W (C_out·N, C_in·N_in, k1, k2)."""
    B = basis.size(1)
    if grad_W.numel() == 0 or basis.numel() == 0:
        return grad_W.new_zeros(C_out, C_in, N_in, B)
    name, impl = backend.select(OP, grad_W.device)
    with nvtx.range(f"pykernels.rotate_filter_bank_backward[{name}]"):
        return impl.backward(grad_W.contiguous(), basis, C_out, C_in, N_in)


@_rotate_filter_bank_backward_op.register_fake
def _(grad_W: Tensor, basis: Tensor, C_out: int, C_in: int, N_in: int) -> Tensor:
    return grad_W.new_empty(C_out, C_in, N_in, basis.size(1))


def _setup_context(ctx, inputs, output) -> None:
    coeffs, basis = inputs
    ctx.save_for_backward(basis)
    ctx.dims = tuple(coeffs.shape[:3])


def _backward(ctx, grad_W: Tensor):
    (basis,) = ctx.saved_tensors
    if not ctx.needs_input_grad[0]:
        return None, None
    return torch.ops.pykernels.rotate_filter_bank_backward(grad_W, basis, *ctx.dims), None


def _backward_setup_context(ctx, inputs, output) -> None:
    ctx.save_for_backward(inputs[1])


def _double_backward(ctx, grad_grad_coeffs: Tensor):
    # The backward is linear in grad_W and its adjoint is the forward contraction.
    (basis,) = ctx.saved_tensors
    grad_grad_W = torch.ops.pykernels.rotate_filter_bank(grad_grad_coeffs.contiguous(), basis)
    return grad_grad_W, None, None, None, None


_rotate_filter_bank_op.register_autograd(_backward, setup_context=_setup_context)
_rotate_filter_bank_backward_op.register_autograd(_double_backward, setup_context=_backward_setup_context)


# ---- backends: forward(coeffs, basis) -> W; backward(grad_W, basis, C_out, C_in, N_in) -> grad --------


def _dims(coeffs_shape, basis: Tensor) -> tuple[int, ...]:
    C_out, C_in, N_in = coeffs_shape[:3]
    N, B, k1, k2 = basis.shape
    return C_out, C_in, N_in, N, B, k1 * k2


def _launch(module, fn: str, src: Tensor, basis: Tensor, out: Tensor, dims: tuple[int, ...]) -> Tensor:
    """Call ``module.<fn>`` (kernels._C or kernels._cuda) with pointers, dims and the dtype code; on
    CUDA also the caller's stream, on the tensors' device."""
    args = (src.data_ptr(), basis.data_ptr(), out.data_ptr(), *dims, DTYPE_CODES[src.dtype])
    if module is _C:
        getattr(module, fn)(*args)
        return out
    with torch.cuda.device(src.device):
        getattr(module, fn)(*args, torch.cuda.current_stream(src.device).cuda_stream)
    return out


def _forward(module, coeffs: Tensor, basis: Tensor) -> Tensor:
    dims = _dims(coeffs.shape, basis)
    C_out, C_in, N_in, N = dims[:4]
    W = coeffs.new_empty(C_out * N, C_in * N_in, basis.size(2), basis.size(3))
    return _launch(module, "rotate_filter_bank_forward", coeffs, basis, W, dims)


def _backward(module, grad_W: Tensor, basis: Tensor, C_out: int, C_in: int, N_in: int) -> Tensor:
    dims = _dims((C_out, C_in, N_in), basis)
    grad = grad_W.new_empty(C_out, C_in, N_in, dims[4])
    return _launch(module, "rotate_filter_bank_backward", grad_W, basis, grad, dims)


def _cpu_forward(coeffs: Tensor, basis: Tensor) -> Tensor:
    return _forward(_C, coeffs, basis)


def _cpu_backward(grad_W: Tensor, basis: Tensor, C_out: int, C_in: int, N_in: int) -> Tensor:
    return _backward(_C, grad_W, basis, C_out, C_in, N_in)


def _cuda_forward(coeffs: Tensor, basis: Tensor) -> Tensor:
    return _forward(_cuda, coeffs, basis)


def _cuda_backward(grad_W: Tensor, basis: Tensor, C_out: int, C_in: int, N_in: int) -> Tensor:
    return _backward(_cuda, grad_W, basis, C_out, C_in, N_in)


def _triton_forward(coeffs: Tensor, basis: Tensor) -> Tensor:
    from kernels.triton.rotate_filter_bank import rotate_filter_bank_forward

    return rotate_filter_bank_forward(coeffs, basis)


def _triton_backward(grad_W: Tensor, basis: Tensor, C_out: int, C_in: int, N_in: int) -> Tensor:
    from kernels.triton.rotate_filter_bank import rotate_filter_bank_backward

    return rotate_filter_bank_backward(grad_W, basis, C_out, C_in, N_in)


backend.register(OP, "reference", devices=("cpu", "cuda"))(
    backend.ForwardBackward(ref.rotate_filter_bank_forward, ref.rotate_filter_bank_backward)
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
