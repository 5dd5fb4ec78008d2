"""``kernels.nufft2d_type1/type2``, ``kernels.nufft3d_type1/type2``: the non-uniform FFT; plus the
Toeplitz normal operator (``nufft_toeplitz_kernel``, ``nufft_normal``) and Pipe–Menon density
compensation (``density_compensation``).

Math and conventions are in kernels/reference/nufft.py (finufft's: type 2 is
``y_j = Σ_n x_n exp(-i k_j·n)`` over centred modes n, type 1 its exact adjoint, no 1/N scaling; ES
kernel, σ = 2, w = ⌈log10(1/tol)⌉ + 1). Each op runs: deapodize + zero-pad + ``torch.fft`` on the
fine grid in torch, and the spreading / interpolation step on the chosen backend:
- ``reference``: torch ``index_add_`` / gather over every sample's w^d footprint (any device);
- ``cpu``: kernels._C (OpenMP; samples bin-sorted once per trajectory and the sort reused by every
  coil; spreading into private padded tiles added back colour by colour, no atomics; interpolation a
  gather parallel over tiles).
- ``triton``: kernels/triton/nufft.py, one program per block of samples, the samples first sorted by
  16-cell fine-grid tile ("GM-sort", ``_gm_sorted``): spreading by ``tl.atomic_add`` into the fine
  grid, interpolation a gather;
- ``cuda``: kernels._cuda, one thread per (tile-sorted) sample looping over its trajectory's coils,
  the same atomicAdd spreading (fp32 / fp64 atomics) and gather interpolation.
On a GPU the spread (type 1) adds with atomics in no fixed order, so it is not bitwise deterministic
run to run; it matches the reference to float rounding.

Default choice: ``cpu`` for CPU tensors. Measured with benchmarks/bench_nufft.py (make bench, AMD
EPYC, 2 cores, 2026-11-29; 256², 8 coils, 200×512 radial samples, tol 1e-6), median ms:
complex64 type 2 / type 1: cpu 29 / 29, finufft 69 / 70, reference 293 / 262, torchkbnufft 273 / 245;
complex128: cpu 35 / 37, finufft 34 / 35, reference 636 / 284, torchkbnufft 414 / 445.
CUDA tensors: provisional order ``cuda``, then ``triton``, then ``reference``, to be re-ranked when
benchmarks/gpu/run_all.sh runs on a GPU (benchmarks/gpu/spec_nufft.py); not measured yet.

Autograd: type 2's gradient w.r.t. the image is type 1 of the incoming gradient and vice versa (the
ops are linear and mutually adjoint); both are registered ops. The gradient w.r.t. the trajectory k is
not implemented: passing a k that requires grad (with grad mode on) raises.
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
from kernels.reference import nufft as ref

OP = "nufft"
COMPLEX_DTYPES = (torch.complex64, torch.complex128)

backend.define_op(OP, preference={"cpu": ("cpu",), "cuda": ("cuda", "triton")})
_triton_unavailable = backend.triton_module_unavailable("kernels.triton.nufft")


# ---- validation --------------------------------------------------------------------------------


def _check_tol(tol) -> float:
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not (1e-15 <= tol < 1):
        raise ValueError(f"tol must be a number in [1e-15, 1), got {tol!r}")
    return float(tol)


def _check_k(k: Tensor, d: int, batch: int | None, device: torch.device) -> Tensor:
    """k (M, d) or (B, M, d), real, finite, in [-π, π]; returns it as (Bk, M, d) float64 contiguous."""
    if not isinstance(k, Tensor):
        raise TypeError(f"k must be a torch.Tensor, got {type(k).__name__}")
    if k.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"k must be float32 or float64 (radians), got {k.dtype}")
    if k.dim() not in (2, 3) or k.size(-1) != d:
        raise ValueError(f"k must have shape (M, {d}) or (B, M, {d}), got {tuple(k.shape)}")
    if k.size(-2) == 0:
        raise ValueError("k must hold at least one sample (M >= 1)")
    if k.dim() == 3 and batch is not None and k.size(0) not in (1, batch):
        raise ValueError(f"k has {k.size(0)} trajectories but the data has batch B={batch}: give 1 or B")
    if k.device != device:
        raise ValueError(f"k is on {k.device} but the data is on {device}")
    if torch.is_grad_enabled() and k.requires_grad:
        raise ValueError("the gradient with respect to k is not implemented: pass k.detach()")
    # Value checks need a host sync and are data-dependent, which torch.compile cannot trace: they are
    # skipped while compiling, where an out-of-range k is wrapped periodically (exp(-i k·n) is
    # 2π-periodic in k, and the fine-grid coordinate is taken modulo nf).
    if torch.compiler.is_compiling():
        pass
    elif not bool(torch.isfinite(k).all()):
        raise ValueError("k contains NaN or Inf")
    elif bool((k.abs() > math.pi * (1 + 1e-6)).any()):
        raise ValueError(
            f"k must lie in [-π, π] (radians per pixel); got values up to {k.abs().max().item():.4g}. "
            "Scale it (k_rad = 2π·k_cycles) or wrap it: torch.remainder(k + π, 2π) - π"
        )
    k = k.detach().to(torch.float64)
    return (k.unsqueeze(0) if k.dim() == 2 else k).contiguous()


def _check_complex(x: Tensor, name: str, dims: int, what: str) -> None:
    if x.dtype not in COMPLEX_DTYPES:
        raise TypeError(f"{name} must be complex64 or complex128, got {x.dtype}")
    if x.dim() != dims:
        raise ValueError(f"{name} must have shape {what}, got {tuple(x.shape)}")


def _check_shape(shape, d: int) -> list[int]:
    try:
        out = [int(n) for n in shape]
    except TypeError:
        raise TypeError(f"shape must be a sequence of {d} ints, got {shape!r}") from None
    if len(out) != d or any(n < 1 for n in out) or any(isinstance(n, bool) for n in shape):
        raise ValueError(f"shape must be {d} positive ints, got {shape!r}")
    return out


# ---- public functions --------------------------------------------------------------------------


def _type2(image, k: Tensor, tol: float, d: int):
    image, back = as_tensor(image, "image")
    what = "(B, C, N1, N2)" if d == 2 else "(B, C, N1, N2, N3)"
    _check_complex(image, "image", d + 2, what)
    kb = _check_k(k, d, image.size(0), image.device)
    return back(torch.ops.pykernels.nufft_type2(image.contiguous(), kb, _check_tol(tol)))


def _type1(samples, k: Tensor, shape: Sequence[int], tol: float, d: int):
    samples, back = as_tensor(samples, "samples")
    _check_complex(samples, "samples", 3, "(B, C, M)")
    kb = _check_k(k, d, samples.size(0), samples.device)
    if samples.size(2) != kb.size(1):
        raise ValueError(f"samples has M={samples.size(2)} but k has M={kb.size(1)}")
    out = torch.ops.pykernels.nufft_type1(samples.contiguous(), kb, _check_shape(shape, d), _check_tol(tol))
    return back(out)


_DOC_TYPE2 = """Type-2 NUFFT (image → samples, "forward"): ``y[b, c, j] = Σ_n x[b, c, n] exp(-i k[b, j]·n)``.

    Args:
        image: complex64/complex128 tensor (B, C, {dims}); mode n of an axis of length N sits at index
            n + N//2 (centred, as finufft's modeord=0 and torchkbnufft).
        k: float32/float64 (M, {d}) shared by all frames, or (B, M, {d}) one trajectory per frame (coils
            share their frame's), radians per pixel in [-π, π]; ``k[..., a]`` pairs with image axis a.
        tol: relative accuracy (sets the ES kernel width w = ⌈log10(1/tol)⌉ + 1).

    Returns: (B, C, M) with image's dtype. Backends: reference, cpu, triton, cuda. Differentiable in
    ``image``.
    """

_DOC_TYPE1 = """Type-1 NUFFT (samples → image), the exact adjoint of type 2:
    ``x[b, c, n] = Σ_j y[b, c, j] exp(+i k[b, j]·n)`` (no 1/N scaling, no density weights).

    Args:
        samples: complex64/complex128 tensor (B, C, M).
        k: float32/float64 (M, {d}) or (B, M, {d}), radians per pixel in [-π, π].
        shape: the image size ({dims}); centred modes as in type 2.
        tol: relative accuracy.

    Returns: (B, C, {dims}) with samples' dtype. Backends: reference, cpu, triton, cuda (type 1 on
    triton/cuda spreads with atomics: not bitwise deterministic). Differentiable in ``samples``.
    """


def nufft2d_type2(image, k: Tensor, *, tol: float = 1e-6):
    return _type2(image, k, tol, 2)


def nufft3d_type2(image, k: Tensor, *, tol: float = 1e-6):
    return _type2(image, k, tol, 3)


def nufft2d_type1(samples, k: Tensor, shape: Sequence[int], *, tol: float = 1e-6):
    return _type1(samples, k, shape, tol, 2)


def nufft3d_type1(samples, k: Tensor, shape: Sequence[int], *, tol: float = 1e-6):
    return _type1(samples, k, shape, tol, 3)


nufft2d_type2.__doc__ = _DOC_TYPE2.format(dims="N1, N2", d=2)
nufft3d_type2.__doc__ = _DOC_TYPE2.format(dims="N1, N2, N3", d=3)
nufft2d_type1.__doc__ = _DOC_TYPE1.format(dims="N1, N2", d=2)
nufft3d_type1.__doc__ = _DOC_TYPE1.format(dims="N1, N2, N3", d=3)


# ---- the custom ops (k is (Bk, M, d) float64, Bk in {1, B}) ------------------------------------


@torch.library.custom_op("pykernels::nufft_type2", mutates_args=())
def _nufft_type2_op(image: Tensor, k: Tensor, tol: float) -> Tensor:
    shape = tuple(image.shape[2:])
    w, beta = ref.kernel_params(tol)
    nf = ref.fine_shape(shape, w)
    deap = ref.deapodization(shape, nf, w, beta, image.real.dtype, image.device)
    fine = ref.fine_fft(ref.to_fine(image, nf, deap))
    name, impl = backend.select(OP, image.device)
    with nvtx.range(f"pykernels.nufft_type2[{name}]"):
        return impl("interp", fine, ref.positions(k, nf), nf, w, beta)


@_nufft_type2_op.register_fake
def _(image: Tensor, k: Tensor, tol: float) -> Tensor:
    return image.new_empty(image.shape[0], image.shape[1], k.shape[1])


@torch.library.custom_op("pykernels::nufft_type1", mutates_args=())
def _nufft_type1_op(samples: Tensor, k: Tensor, shape: list[int], tol: float) -> Tensor:
    shape = tuple(shape)
    w, beta = ref.kernel_params(tol)
    nf = ref.fine_shape(shape, w)
    name, impl = backend.select(OP, samples.device)
    with nvtx.range(f"pykernels.nufft_type1[{name}]"):
        fine = impl("spread", samples, ref.positions(k, nf), nf, w, beta)
    deap = ref.deapodization(shape, nf, w, beta, samples.real.dtype, samples.device)
    return ref.from_fine(ref.fine_ifft(fine), shape, deap)


@_nufft_type1_op.register_fake
def _(samples: Tensor, k: Tensor, shape: list[int], tol: float) -> Tensor:
    return samples.new_empty(samples.shape[0], samples.shape[1], *shape)


def _setup_type2(ctx, inputs, output):
    image, k, tol = inputs
    ctx.save_for_backward(k)
    ctx.shape, ctx.tol = list(image.shape[2:]), tol


def _backward_type2(ctx, grad):
    (k,) = ctx.saved_tensors
    return torch.ops.pykernels.nufft_type1(grad.contiguous(), k, ctx.shape, ctx.tol), None, None


def _setup_type1(ctx, inputs, output):
    _, k, _, tol = inputs
    ctx.save_for_backward(k)
    ctx.tol = tol


def _backward_type1(ctx, grad):
    (k,) = ctx.saved_tensors
    return torch.ops.pykernels.nufft_type2(grad.contiguous(), k, ctx.tol), None, None, None


_nufft_type2_op.register_autograd(_backward_type2, setup_context=_setup_type2)
_nufft_type1_op.register_autograd(_backward_type1, setup_context=_setup_type1)


# ---- backends: mode "spread" (samples (B, C, M) → fine grid (B, C, *nf)) or "interp" (back) -----


@backend.register(OP, "reference", devices=("cpu", "cuda"))
def _reference(mode: str, x: Tensor, t: Tensor, nf, w: int, beta: float) -> Tensor:
    if mode == "spread":
        return ref.spread(x, t, nf, w, beta)
    return ref.interp(x, t, w, beta)


@backend.register(OP, "cpu", devices=("cpu",), unavailable=backend.cpu_ext_unavailable)
def _cpu(mode: str, x: Tensor, t: Tensor, nf, w: int, beta: float) -> Tensor:
    x = x.contiguous()
    B, C = x.shape[:2]
    ntraj, m = t.shape[0], t.shape[1]
    ncoil = B * C // ntraj
    code = DTYPE_CODES[x.real.dtype]
    if mode == "spread":
        out = x.new_empty(B, C, *nf)
        _C.nufft_spread(list(nf), t.data_ptr(), ntraj, ncoil, m, w, beta, x.data_ptr(), out.data_ptr(), code)
    else:
        out = x.new_empty(B, C, m)
        _C.nufft_interp(list(nf), t.data_ptr(), ntraj, ncoil, m, w, beta, x.data_ptr(), out.data_ptr(), code)
    return out


GM_SORT_TILE = 16  # fine-grid cells per tile side when the GPU backends sort samples by tile


def _gm_sorted(gridding):
    """GPU gridding on samples sorted by fine-grid tile ("GM-sort", as cuFINUFFT): consecutive
    programs/threads then touch neighbouring grid cells, so spreading's atomics and interpolation's
    gathers hit the same cache lines. One stable argsort per trajectory per call; samples are permuted
    in, and interpolated values permuted back, so the result equals the unsorted one up to the order
    of floating-point additions."""

    def run(mode: str, x: Tensor, t: Tensor, nf, w: int, beta: float) -> Tensor:
        ntraj, m, d = t.shape
        if m < 2:
            return gridding(mode, x, t, nf, w, beta)
        tiles = [max(1, -(-n // GM_SORT_TILE)) for n in nf]
        cell = torch.floor(t / GM_SORT_TILE).long()
        key = torch.zeros(ntraj, m, dtype=torch.long, device=t.device)
        for a in range(d):
            key = key * tiles[a] + torch.remainder(cell[..., a], tiles[a])
        perm = torch.argsort(key, dim=1, stable=True)  # (ntraj, M)
        t_sorted = torch.gather(t, 1, perm.unsqueeze(-1).expand(-1, -1, d)).contiguous()
        B, C = x.shape[:2]
        perm_b = perm.expand(B, m) if ntraj == 1 else perm  # ntraj is 1 or B (validated by the op)
        index = perm_b.unsqueeze(1).expand(B, C, m)
        if mode == "spread":
            return gridding(mode, torch.gather(x, 2, index).contiguous(), t_sorted, nf, w, beta)
        sorted_out = gridding(mode, x, t_sorted, nf, w, beta)
        return torch.empty_like(sorted_out).scatter_(2, index, sorted_out)

    return run


def _triton_gridding(mode: str, x: Tensor, t: Tensor, nf, w: int, beta: float) -> Tensor:
    from kernels.triton.nufft import gridding

    return gridding(mode, x, t, nf, w, beta)


@backend.register(OP, "triton", devices=backend.triton_devices, unavailable=_triton_unavailable)
def _triton(mode: str, x: Tensor, t: Tensor, nf, w: int, beta: float) -> Tensor:
    return _gm_sorted(_triton_gridding)(mode, x, t, nf, w, beta)


@backend.register(OP, "cuda", devices=("cuda",), unavailable=backend.cuda_ext_unavailable)
def _cuda_impl(mode: str, x: Tensor, t: Tensor, nf, w: int, beta: float) -> Tensor:
    return _gm_sorted(_cuda_gridding)(mode, x, t, nf, w, beta)


def _cuda_gridding(mode: str, x: Tensor, t: Tensor, nf, w: int, beta: float) -> Tensor:
    x = x.contiguous()
    t = t.contiguous()
    B, C = x.shape[:2]
    ntraj, m = t.shape[0], t.shape[1]
    ncoil = B * C // ntraj
    code = DTYPE_CODES[x.real.dtype]
    with torch.cuda.device(x.device):
        stream = torch.cuda.current_stream(x.device).cuda_stream
        if mode == "spread":
            out = torch.zeros(B, C, *nf, dtype=x.dtype, device=x.device)
            _cuda.nufft_spread(
                list(nf), t.data_ptr(), ntraj, ncoil, m, w, beta, x.data_ptr(), out.data_ptr(), code, stream
            )
        else:
            out = x.new_empty(B, C, m)
            _cuda.nufft_interp(
                list(nf), t.data_ptr(), ntraj, ncoil, m, w, beta, x.data_ptr(), out.data_ptr(), code, stream
            )
    return out


# ---- Toeplitz normal operator ------------------------------------------------------------------


def nufft_toeplitz_kernel(
    k: Tensor, shape: Sequence[int], *, weights: Tensor | None = None, tol: float = 1e-6
) -> Tensor:
    """Fourier-space kernel of the Toeplitz embedding of AᴴWA (A = type 2 on ``shape``, W = diag(weights)).

    (AᴴWA x)_n = Σ_m x_m p(n − m) with the PSF p(q) = Σ_j w_j exp(i k_j·q), q ∈ (−N, N)^d: one type 1
    of the weights onto the 2N grid. Returned as FFT(p arranged circularly on the 2N grid), shape
    (Bk, 2N1, ..., 2Nd), complex128 when k or weights is double else complex64 — computed once per
    trajectory, then :func:`nufft_normal` applies AᴴWA with one FFT pair per call.

    Args:
        k: (M, d) or (Bk, M, d) radians in [-π, π], d = len(shape) ∈ {2, 3}.
        shape: the image size N.
        weights: optional real or complex (M,) or (Bk, M) density weights (default: ones, i.e. AᴴA).
        tol: NUFFT accuracy of the PSF.
    """
    d = len(shape) if isinstance(shape, Sequence) else -1
    if d not in (2, 3):
        raise ValueError(f"shape must have 2 or 3 entries, got {shape!r}")
    shape = _check_shape(shape, d)
    kb = _check_k(k, d, None, k.device if isinstance(k, Tensor) else torch.device("cpu"))
    double_weights = weights is not None and weights.dtype in (torch.float64, torch.complex128)
    double = k.dtype == torch.float64 or double_weights
    cdtype = torch.complex128 if double else torch.complex64
    if weights is None:
        w = torch.ones(kb.shape[0], 1, kb.shape[1], dtype=cdtype, device=kb.device)
    else:
        if not isinstance(weights, Tensor) or not (weights.is_floating_point() or weights.is_complex()):
            raise TypeError(f"weights must be a real or complex tensor, got {weights!r:.60}")
        if weights.shape not in ((kb.shape[1],), (kb.shape[0], kb.shape[1])):
            raise ValueError(
                f"weights must have shape (M,) or (Bk, M) = {tuple(kb.shape[:2])}, got {tuple(weights.shape)}"
            )
        w = weights.to(cdtype).reshape(-1, 1, kb.shape[1]).expand(kb.shape[0], 1, -1).contiguous()
    psf = torch.ops.pykernels.nufft_type1(w, kb, [2 * n for n in shape], _check_tol(tol))[:, 0]
    grid_dims = tuple(range(1, d + 1))
    return torch.fft.fftn(torch.fft.ifftshift(psf, dim=grid_dims), dim=grid_dims)


def nufft_normal(x: Tensor, kernel: Tensor) -> Tensor:
    """Apply AᴴWA through its Toeplitz kernel: zero-pad x to 2N, FFT, multiply by ``kernel``, inverse
    FFT, crop. Equals ``type1(W·type2(x))`` up to the NUFFT tolerance, with no gridding.

    Args:
        x: complex (B, C, N1, ..., Nd), d ∈ {2, 3}.
        kernel: from :func:`nufft_toeplitz_kernel`, (Bk, 2N1, ..., 2Nd) with Bk ∈ {1, B}, same device.

    Returns: (B, C, N...) in x's dtype. Pure torch (FFTs), so differentiable and any device.
    """
    if not isinstance(x, Tensor) or x.dtype not in COMPLEX_DTYPES:
        raise TypeError(f"x must be a complex64/complex128 tensor, got {getattr(x, 'dtype', type(x))}")
    if not isinstance(kernel, Tensor) or kernel.dtype not in COMPLEX_DTYPES:
        raise TypeError("kernel must be the complex tensor returned by nufft_toeplitz_kernel")
    d = kernel.dim() - 1
    if d not in (2, 3) or x.dim() != d + 2:
        raise ValueError(
            f"x must be (B, C, N1..N{d}) for a {d}-d kernel, "
            f"got x {tuple(x.shape)}, kernel {tuple(kernel.shape)}"
        )
    shape = tuple(x.shape[2:])
    if tuple(kernel.shape[1:]) != tuple(2 * n for n in shape):
        raise ValueError(
            f"kernel must have grid size 2N = {tuple(2 * n for n in shape)}, got {tuple(kernel.shape[1:])}"
        )
    if kernel.shape[0] not in (1, x.shape[0]):
        raise ValueError(f"kernel has {kernel.shape[0]} trajectories but x has batch {x.shape[0]}")
    if kernel.device != x.device:
        raise ValueError(f"kernel is on {kernel.device} but x is on {x.device}")
    dims = tuple(range(2, d + 2))
    pad = []
    for n in reversed(shape):
        pad += [0, n]
    spectrum = torch.fft.fftn(torch.nn.functional.pad(x, pad), dim=dims) * kernel.to(x.dtype).unsqueeze(1)
    out = torch.fft.ifftn(spectrum, dim=dims)
    return out[(..., *[slice(0, n) for n in shape])]


# ---- density compensation ----------------------------------------------------------------------


def density_compensation(k: Tensor, shape: Sequence[int], iters: int = 10, *, tol: float = 1e-3) -> Tensor:
    """Pipe–Menon iterative density compensation weights on the gridding kernel.

    w ← w / (G Gᴴ w) where Gᴴ spreads onto the fine grid with the ES kernel of accuracy ``tol`` and G
    interpolates back (J. Pipe & P. Menon, MRM 41:179, 1999). The fixed point makes G Gᴴ w flat (= 1)
    on the samples; the result is then scaled by ψ̂(0)^{2d} / ∏nf, the continuum normalization: for
    dense sampling of local density ρ the weight is the k-space area per sample over (2π)^d, so
    uniform random samples get w ≈ 1/M (tested). A Cartesian lattice at every other fine-grid point
    gets a flat 0.86/∏N instead of 1/∏N (the lattice aliases the kernel's ψ̂(π) into the sums).

    Args:
        k: (M, d) or (Bk, M, d) radians in [-π, π], d = len(shape).
        shape: the image size N (sets the fine grid).
        iters: number of iterations (>= 1).
        tol: accuracy of the gridding kernel (its width).

    Returns: real weights (M,) or (Bk, M), float64 when k is float64 else float32.
    """
    d = len(shape) if isinstance(shape, Sequence) else -1
    if d not in (2, 3):
        raise ValueError(f"shape must have 2 or 3 entries, got {shape!r}")
    shape = _check_shape(shape, d)
    if isinstance(iters, bool) or not isinstance(iters, numbers.Integral) or iters < 1:
        raise ValueError(f"iters must be an integer >= 1, got {iters!r}")
    kb = _check_k(k, d, None, k.device if isinstance(k, Tensor) else torch.device("cpu"))
    w = torch.ops.pykernels.nufft_density_compensation(kb, shape, int(iters), _check_tol(tol))
    w = w.to(k.dtype)
    return w[0] if k.dim() == 2 else w


@torch.library.custom_op("pykernels::nufft_density_compensation", mutates_args=())
def _density_op(k: Tensor, shape: list[int], iters: int, tol: float) -> Tensor:
    w_, beta = ref.kernel_params(tol)
    nf = ref.fine_shape(tuple(shape), w_)
    t = ref.positions(k, nf)
    name, impl = backend.select(OP, k.device)
    weights = torch.ones(k.shape[0], 1, k.shape[1], dtype=torch.complex128, device=k.device)
    with nvtx.range(f"pykernels.density_compensation[{name}]"):
        for _ in range(iters):
            response = impl("interp", impl("spread", weights, t, nf, w_, beta), t, nf, w_, beta)
            weights = weights / response.real
    scale = float(ref._kernel_ft(1, 2, w_, beta)[0]) ** (2 * len(shape)) / math.prod(nf)
    return (weights.real * scale)[:, 0]


@_density_op.register_fake
def _(k: Tensor, shape: list[int], iters: int, tol: float) -> Tensor:
    return k.new_empty(k.shape[0], k.shape[1])
