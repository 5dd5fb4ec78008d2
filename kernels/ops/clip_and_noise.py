"""``kernels.clip_and_noise``: client-level differential privacy — global-norm clipping plus Gaussian
noise generated inside the kernel (DP-FedAvg / DP-FedPGN, once per client update per round), and its
batched central-DP form ``kernels.clip_and_noise_sum``.

Two passes: (1) the sum of squares of the whole update; the op then checks on the host that the norm
is finite (one sync per call) and raises a ValueError naming the tensor that holds NaN/Inf; (2) a
kernel that reads the norm, computes scale = min(1, max_norm/‖u‖) itself and writes
u·scale + noise_std·z, with z generated from (seed, offset, element index) — no noise tensor exists
(except in the reference). The stream is Philox4x32-10 + Box–Muller, specified in
kernels/reference/clip_and_noise.py and csrc/common/philox.h; every backend draws the same z.

Backends: reference (torch), cpu (kernels._C, OpenMP, vectorized Philox), triton, cuda (kernels._cuda).
Default choice:
- CPU tensors: ``cpu`` — benchmarks/bench_clip_and_noise.py: several times faster than the eager
  composition (vector_norm, mul, randn, add) and than the reference, which materializes the noise.
- CUDA tensors: ``cuda``, then ``triton`` (provisional: both are one read for the norm plus one
  read and one write; to be re-ranked from benchmarks/gpu/run_all.sh once it has run on a GPU).
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
from kernels.reference import clip_and_noise as ref

OP = "clip_and_noise"
OP_SUM = "clip_and_noise_sum"
U64 = (1 << 64) - 1

backend.define_op(OP, preference={"cpu": ("cpu",), "cuda": ("cuda", "triton")})
backend.define_op(OP_SUM, preference={"cpu": ("cpu",), "cuda": ("cuda", "triton")})
_triton_unavailable = backend.triton_module_unavailable("kernels.triton.clip_and_noise")


def clip_and_noise(
    update,
    max_norm: float,
    noise_std: float,
    seed: int,
    offset: int = 0,
    *,
    inplace: bool = False,
):
    """Clip ``update`` to global L2 norm ``max_norm`` and add N(0, noise_std²) noise to every element.

    ``out = u·min(1, max_norm/‖u‖) + noise_std·z`` (scale 1 when ‖u‖ = 0), where ‖u‖ is the L2 norm of
    the whole update and z_i ~ N(0, 1) is element i of the Philox stream (seed, offset) — see
    ``kernels.reference.clip_and_noise`` (|z| <= 5.77; the sampler is not hardened against
    floating-point attacks).

    Args:
        update: a tensor of any shape (or numpy/cupy array), or a list of tensors of one dtype and
            device treated as ONE vector (concatenated in order, each row-major); float32, float64,
            float16 or bfloat16 (16-bit: fp32 math, rounded once).
        max_norm: clipping bound C > 0; ``math.inf`` disables clipping.
        noise_std: absolute standard deviation of the noise (σ·C in DP-FedAvg), finite, >= 0.
        seed, offset: integers in [0, 2^64). Different offsets are independent streams
            (e.g. offset = round·n_clients + client).
        inplace: write the result into ``update`` (its tensors must be contiguous) and return it.

    Returns:
        (out, norm): out has update's structure (new tensors, or ``update`` itself when inplace);
        norm is the PRE-clip global L2 norm, a 0-dim float32 tensor (float64 for float64 inputs) on
        the update's device.

    Raises ValueError if the update holds NaN/Inf (naming the list entry). Backends: reference, cpu,
    triton, cuda — see ``kernels.available_backends("clip_and_noise")``.
    """
    tensors, convert_back, single = _as_tensor_list(update, "update")
    _check_tensors(tensors, "update")
    _check_scalars(max_norm, noise_std, seed, offset)
    args = (float(max_norm), float(noise_std), _to_i64(seed), _to_i64(offset))
    if inplace:
        for k, t in enumerate(tensors):
            if not t.is_contiguous():
                where = "update" if single else f"update[{k}]"
                raise ValueError(f"{where} must be contiguous for inplace=True")
        norm = torch.ops.pykernels.clip_and_noise_(tensors, *args)
        return update, norm
    outs, norm = torch.ops.pykernels.clip_and_noise(tensors, *args)
    if single:
        return convert_back(outs[0]), norm
    return [convert_back(o) for o in outs], norm


def clip_and_noise_sum(updates, max_norm: float, noise_std: float, seed: int, offset: int = 0):
    """Central DP over S client updates: clip each row, sum the rows, add ONE noise draw per element.

    ``noised_sum = Σ_s u_s·min(1, max_norm/‖u_s‖) + noise_std·z``: ``noise_std`` is the absolute
    standard deviation of the noise on the SUM (σ·C in DP-FedAvg, before dividing by the number of
    clients). z is the same stream as ``clip_and_noise`` of an N-element update with the same
    (seed, offset).

    Args:
        updates: (S, N) tensor, or a list of S flat (N,) tensors (stacked once, a copy); float32,
            float64, float16 or bfloat16.
        max_norm, noise_std, seed, offset: as in ``clip_and_noise``.

    Returns (noised_sum (N,), norms (S,)): the pre-clip row norms, float32 (float64 for float64).
    Raises ValueError naming the row that holds NaN/Inf. Backends: reference, cpu, triton, cuda.
    """
    if isinstance(updates, (list, tuple)):
        rows = [as_tensor(u, f"updates[{k}]")[0] for k, u in enumerate(updates)]
        _check_tensors(rows, "updates")
        for k, r in enumerate(rows):
            if r.dim() != 1 or r.shape != rows[0].shape:
                raise ValueError(
                    f"updates[{k}] must be a flat (N,) tensor like updates[0] {tuple(rows[0].shape)}, "
                    f"got shape {tuple(r.shape)}"
                )
        X, convert_back = torch.stack(rows), (lambda t: t)
    else:
        X, convert_back = as_tensor(updates, "updates")
        _check_tensors([X], "updates")
        if X.dim() != 2 or X.shape[0] == 0:
            raise ValueError(f"updates must have shape (S, N) with S >= 1, got shape {tuple(X.shape)}")
    _check_scalars(max_norm, noise_std, seed, offset)
    out, norms = torch.ops.pykernels.clip_and_noise_sum(
        X.contiguous(), float(max_norm), float(noise_std), _to_i64(seed), _to_i64(offset)
    )
    return convert_back(out), convert_back(norms)


# ---- argument checks ----------------------------------------------------------------------------


def _as_tensor_list(update, name: str):
    if isinstance(update, (list, tuple)):
        if len(update) == 0:
            raise ValueError(f"{name} must be a tensor or a non-empty list of tensors, got an empty list")
        pairs = [as_tensor(u, f"{name}[{k}]") for k, u in enumerate(update)]
        return [t for t, _ in pairs], pairs[0][1], False
    t, convert_back = as_tensor(update, name)
    return [t], convert_back, True


def _check_tensors(tensors: Sequence[Tensor], name: str) -> None:
    first = tensors[0]
    for k, t in enumerate(tensors):
        where = name if len(tensors) == 1 else f"{name}[{k}]"
        if t.dtype not in DTYPE_CODES:
            raise TypeError(f"{where} must have dtype float32, float64, float16 or bfloat16, got {t.dtype}")
        if t.dtype != first.dtype or t.device != first.device:
            raise TypeError(
                f"{where} is {t.dtype} on {t.device} but {name}[0] is {first.dtype} on {first.device}: "
                "one update has one dtype and one device"
            )


def _check_u64(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value <= U64:
        raise ValueError(f"{name} must be an integer in [0, 2^64), got {value!r}")


def _check_scalars(max_norm, noise_std, seed, offset) -> None:
    if (
        isinstance(max_norm, bool)
        or not isinstance(max_norm, numbers.Real)
        or math.isnan(max_norm)
        or max_norm <= 0
    ):
        raise ValueError(f"max_norm must be a number > 0 (math.inf: no clipping), got {max_norm!r}")
    if (
        isinstance(noise_std, bool)
        or not isinstance(noise_std, numbers.Real)
        or not math.isfinite(noise_std)
        or noise_std < 0
    ):
        raise ValueError(f"noise_std must be a finite number >= 0, got {noise_std!r}")
    _check_u64(seed, "seed")
    _check_u64(offset, "offset")


def _to_i64(v: int) -> int:
    """A 64-bit unsigned integer as the int64 the op schema carries (two's complement)."""
    v = int(v)
    return v - (1 << 64) if v >= 1 << 63 else v


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _checked_norm(sumsq: Tensor, tensors: Sequence[Tensor], name: str) -> float:
    """sqrt(sumsq) on the host (the call's one sync); ValueError naming the tensor with NaN/Inf."""
    norm = math.sqrt(float(sumsq)) if float(sumsq) >= 0 else math.nan
    if math.isfinite(norm):
        return norm
    bad = [k for k, t in enumerate(tensors) if not bool(torch.isfinite(t).all())]
    if not bad:
        raise ValueError(f"the norm of {name} overflows ({norm}); its values are too large")
    where = name if len(tensors) == 1 else ", ".join(f"{name}[{k}]" for k in bad)
    raise ValueError(f"{where} contains NaN or Inf values: the clipping norm is not finite")


def _checked_row_norms(sumsq: Tensor, X: Tensor) -> None:
    finite = torch.isfinite(sumsq)
    if not bool(finite.all()):  # the call's one sync
        rows = [int(r) for r in torch.nonzero(~finite).reshape(-1)]
        raise ValueError(f"updates rows {rows} contain NaN or Inf values (or overflow): norms are not finite")


# ---- custom ops ---------------------------------------------------------------------------------


def _run(
    tensors: list[Tensor], outs: list[Tensor], max_norm: float, noise_std: float, seed: int, offset: int
):
    dtype = tensors[0].dtype
    if sum(t.numel() for t in tensors) == 0:
        return torch.zeros((), dtype=_compute_dtype(dtype), device=tensors[0].device)
    name, impl = backend.select(OP, tensors[0].device)
    with nvtx.range(f"pykernels.clip_and_noise[{name}]"):
        sumsq = impl.sumsq(tensors)
        _checked_norm(sumsq, tensors, "update")
        norm = sumsq.sqrt().to(_compute_dtype(dtype))
        impl.apply(tensors, outs, norm, max_norm, noise_std, seed & U64, offset & U64)
    return norm


@torch.library.custom_op("pykernels::clip_and_noise", mutates_args=())
def _clip_and_noise_op(
    update: list[Tensor], max_norm: float, noise_std: float, seed: int, offset: int
) -> tuple[list[Tensor], Tensor]:
    tensors = [t.contiguous() for t in update]
    outs = [t.new_empty(t.shape) for t in tensors]
    norm = _run(tensors, outs, max_norm, noise_std, seed, offset)
    return outs, norm


@_clip_and_noise_op.register_fake
def _(update, max_norm, noise_std, seed, offset):
    return [t.new_empty(t.shape) for t in update], update[0].new_empty(
        (), dtype=_compute_dtype(update[0].dtype)
    )


@torch.library.custom_op("pykernels::clip_and_noise_", mutates_args=("update",))
def _clip_and_noise_inplace_op(
    update: list[Tensor], max_norm: float, noise_std: float, seed: int, offset: int
) -> Tensor:
    return _run(list(update), list(update), max_norm, noise_std, seed, offset)


@_clip_and_noise_inplace_op.register_fake
def _(update, max_norm, noise_std, seed, offset):
    return update[0].new_empty((), dtype=_compute_dtype(update[0].dtype))


@torch.library.custom_op("pykernels::clip_and_noise_sum", mutates_args=())
def _clip_and_noise_sum_op(
    updates: Tensor, max_norm: float, noise_std: float, seed: int, offset: int
) -> tuple[Tensor, Tensor]:
    X = updates.contiguous()
    name, impl = backend.select(OP_SUM, X.device)
    with nvtx.range(f"pykernels.clip_and_noise_sum[{name}]"):
        sumsq = impl.rows_sumsq(X)
        _checked_row_norms(sumsq, X)
        norms = sumsq.sqrt().to(_compute_dtype(X.dtype))
        out = X.new_empty((X.shape[1],))
        if X.shape[1] > 0:
            impl.sum_apply(X, out, norms, max_norm, noise_std, seed & U64, offset & U64)
    return out, norms


@_clip_and_noise_sum_op.register_fake
def _(updates, max_norm, noise_std, seed, offset):
    return updates.new_empty((updates.shape[1],)), updates.new_empty(
        (updates.shape[0],), dtype=_compute_dtype(updates.dtype)
    )


# ---- backends -----------------------------------------------------------------------------------
# Each backend is an object with sumsq(tensors) -> 0-dim sum of squares on the device (fp64 on CPU),
# apply(tensors, outs, norm, max_norm, noise_std, seed, offset) writing outs (seed/offset unsigned),
# rows_sumsq(X) -> (S,) and sum_apply(X, out, norms, max_norm, noise_std, seed, offset).


class _Reference:
    @staticmethod
    def sumsq(tensors):
        return sum(t.reshape(-1).to(torch.float64).square().sum() for t in tensors)

    @staticmethod
    def apply(tensors, outs, norm, max_norm, noise_std, seed, offset):
        noised, _ = ref.clip_and_noise(tensors, max_norm, noise_std, seed, offset)
        for o, n in zip(outs, noised, strict=True):
            o.copy_(n)

    @staticmethod
    def rows_sumsq(X):
        return X.to(torch.float64).square().sum(1)

    @staticmethod
    def sum_apply(X, out, norms, max_norm, noise_std, seed, offset):
        out.copy_(ref.clip_and_noise_sum(X, max_norm, noise_std, seed, offset)[0])


class _Cpu:
    @staticmethod
    def sumsq(tensors):
        value = _C.clip_and_noise_sumsq(
            [t.data_ptr() for t in tensors], [t.numel() for t in tensors], DTYPE_CODES[tensors[0].dtype]
        )
        return torch.tensor(value, dtype=torch.float64)

    @staticmethod
    def apply(tensors, outs, norm, max_norm, noise_std, seed, offset):
        _C.clip_and_noise_apply(
            [t.data_ptr() for t in tensors],
            [o.data_ptr() for o in outs],
            [t.numel() for t in tensors],
            DTYPE_CODES[tensors[0].dtype],
            float(norm),
            max_norm,
            noise_std,
            seed,
            offset,
        )

    @staticmethod
    def rows_sumsq(X):
        out = torch.empty(X.shape[0], dtype=torch.float64)
        _C.clip_and_noise_rows_sumsq(
            X.data_ptr(), X.shape[0], X.shape[1], DTYPE_CODES[X.dtype], out.data_ptr()
        )
        return out

    @staticmethod
    def sum_apply(X, out, norms, max_norm, noise_std, seed, offset):
        norms64 = norms.to(torch.float64).contiguous()
        _C.clip_and_noise_sum_apply(
            X.data_ptr(),
            out.data_ptr(),
            X.shape[0],
            X.shape[1],
            DTYPE_CODES[X.dtype],
            norms64.data_ptr(),
            max_norm,
            noise_std,
            seed,
            offset,
        )


class _Triton:
    @staticmethod
    def _mod():
        import kernels.triton.clip_and_noise as mod

        return mod

    def sumsq(self, tensors):
        return self._mod().sumsq(tensors)

    def apply(self, *args):
        self._mod().apply(*args)

    def rows_sumsq(self, X):
        return self._mod().rows_sumsq(X)

    def sum_apply(self, *args):
        self._mod().sum_apply(*args)


class _Cuda:
    @staticmethod
    def _stream(device) -> int:
        return torch.cuda.current_stream(device).cuda_stream

    def sumsq(self, tensors):
        from kernels._multi_tensor import numel_table, pointer_table

        device = tensors[0].device
        out = torch.empty((), dtype=torch.float64, device=device)
        ptrs = pointer_table([tensors], device)
        numels = numel_table(tensors, device)
        scratch = torch.empty(_cuda.clip_and_noise_partials(), dtype=torch.float64, device=device)
        with torch.cuda.device(device):
            _cuda.clip_and_noise_sumsq(
                ptrs.data_ptr(),
                numels.data_ptr(),
                len(tensors),
                sum(t.numel() for t in tensors),
                DTYPE_CODES[tensors[0].dtype],
                scratch.data_ptr(),
                out.data_ptr(),
                self._stream(device),
            )
        return out

    def apply(self, tensors, outs, norm, max_norm, noise_std, seed, offset):
        from kernels._multi_tensor import numel_table, pointer_table

        device = tensors[0].device
        ptrs = pointer_table([tensors, outs], device)
        numels = numel_table(tensors, device)
        norm64 = norm.to(torch.float64)
        with torch.cuda.device(device):
            _cuda.clip_and_noise_apply(
                ptrs.data_ptr(),
                numels.data_ptr(),
                len(tensors),
                sum(t.numel() for t in tensors),
                DTYPE_CODES[tensors[0].dtype],
                norm64.data_ptr(),
                max_norm,
                noise_std,
                seed,
                offset,
                self._stream(device),
            )

    def rows_sumsq(self, X):
        rows = list(X.unbind(0))
        return torch.stack([self.sumsq([r]) for r in rows])

    def sum_apply(self, X, out, norms, max_norm, noise_std, seed, offset):
        norms64 = norms.to(torch.float64).contiguous()
        with torch.cuda.device(X.device):
            _cuda.clip_and_noise_sum_apply(
                X.data_ptr(),
                out.data_ptr(),
                X.shape[0],
                X.shape[1],
                DTYPE_CODES[X.dtype],
                norms64.data_ptr(),
                max_norm,
                noise_std,
                seed,
                offset,
                self._stream(X.device),
            )


for _op in (OP, OP_SUM):
    backend.register(_op, "reference", devices=("cpu", "cuda"))(_Reference())
    backend.register(_op, "cpu", devices=("cpu",), unavailable=backend.cpu_ext_unavailable)(_Cpu())
    backend.register(_op, "triton", devices=backend.triton_devices, unavailable=_triton_unavailable)(
        _Triton()
    )
    backend.register(_op, "cuda", devices=("cuda",), unavailable=backend.cuda_ext_unavailable)(_Cuda())
