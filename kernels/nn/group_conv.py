"""Rotation-equivariant (C_N) convolutions on regular feature fields, built on
``kernels.rotate_filter_bank``: ``GroupConv2d``, ``GroupConv2p1d``, ``GroupPool``, ``GroupBatchNorm``,
``GroupFieldNorm``, ``GroupPointwise``.

Layout: a feature map of F regular fields over C_N is (B, F·N, H, W) (or (B, F·N, T, H, W)); channel
f·N + r is orientation r of field f. Rotating the input by the quarter turn g = N/4 steps
(``torch.rot90(x, 1, (-2, -1))``) rotates every output map the same way and rolls each field's
orientations by +N/4 (``rotate_fields``). The convolutions run through torch's conv2d/conv3d
(oneDNN / cuDNN) on the expanded bank; only the expansion is our kernel.

Eval mode caches the expanded banks: the cache is keyed on the parameter's identity, storage and
version counter (bumped by every in-place update: optimizer steps, ``load_state_dict``), dropped by
``train()``, and bypassed when gradients w.r.t. the coefficients are wanted or under torch.compile.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kernels.nn.group_basis import BASES, basis_size, make_basis
from kernels.ops.rotate_filter_bank import rotate_filter_bank


def rotate_fields(x: Tensor, N: int, quarter_turns: int = 1) -> Tensor:
    """The action of a quarter-turn rotation on regular fields (B, F·N, ..., H, W): rot90 of every
    map and a roll of each field's N orientations by quarter_turns·N/4 (4 must divide N)."""
    if N % 4:
        raise ValueError(f"quarter turns act on regular fields only when 4 divides N, got N={N}")
    y = torch.rot90(x, quarter_turns, dims=(-2, -1))
    shape = y.shape
    y = y.reshape(shape[0], shape[1] // N, N, *shape[2:])
    return torch.roll(y, quarter_turns * N // 4, dims=2).reshape(shape)


class _FilterBank(nn.Module):
    """Learnable coefficients (C_out, C_in, N_in, B) on a fixed rotated basis (N, B, kh, kw) buffer."""

    def __init__(self, coeffs_shape, basis: Tensor, N: int, fan_in: int, dtype, device) -> None:
        super().__init__()
        self.N = N
        self.register_buffer("basis", basis.to(dtype=dtype, device=device))
        self.coeffs = nn.Parameter(torch.empty(coeffs_shape, dtype=dtype, device=device))
        self._fan_in = fan_in
        self._cache: Tensor | None = None
        self._cache_key: tuple | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # He initialization of the expanded weight: with unit-norm basis filters each tap has variance
        # σ²·B/(kh·kw), so σ = sqrt(2 / fan_in) · sqrt(kh·kw / B).
        taps = self.basis.shape[2] * self.basis.shape[3]
        std = math.sqrt(2.0 / self._fan_in) * math.sqrt(taps / self.basis.shape[1])
        with torch.no_grad():
            self.coeffs.normal_(0.0, std)
        self._cache = None

    def train(self, mode: bool = True):
        self._cache = None
        self._cache_key = None
        return super().train(mode)

    def expand(self) -> Tensor:
        return rotate_filter_bank(self.coeffs, self.basis, self.N)

    def forward(self) -> Tensor:
        if self.training or torch.compiler.is_compiling():
            return self.expand()
        if torch.is_grad_enabled() and self.coeffs.requires_grad:
            return self.expand()  # a cached bank would cut the coefficients' gradient
        c, b = self.coeffs, self.basis
        key = (
            id(c),
            c.data_ptr(),
            c._version,
            c.dtype,
            c.device,
            b.data_ptr(),
            b._version,
            torch.is_inference_mode_enabled(),
        )
        if self._cache is None or self._cache_key != key:
            with torch.no_grad():
                self._cache = self.expand()
            self._cache_key = key
        return self._cache


def _check_common(in_channels, out_channels, kernel_size, group, basis) -> None:
    for name, v in (("in_channels", in_channels), ("out_channels", out_channels), ("group", group)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    if (
        isinstance(kernel_size, bool)
        or not isinstance(kernel_size, int)
        or kernel_size < 1
        or kernel_size % 2 == 0
    ):
        raise ValueError(f"kernel_size must be an odd int >= 1 (padding 'same'), got {kernel_size!r}")
    if basis not in BASES:
        raise ValueError(f"basis must be one of {BASES}, got {basis!r}")


def _spatial_bank(out_fields, in_fields, kernel_size, group, lifting, basis, dtype, device) -> _FilterBank:
    """The k×k bank of a lifting (one input orientation) or group→group spatial layer, He-initialized
    for fan-in in_fields·N_in·k²."""
    n_in = 1 if lifting else group
    return _FilterBank(
        (out_fields, in_fields, n_in, basis_size(basis, kernel_size)),
        make_basis(basis, kernel_size, group),
        group,
        in_fields * n_in * kernel_size**2,
        dtype,
        device,
    )


class GroupConv2d(nn.Module):
    """C_N-equivariant 2D convolution: lifting (image → regular fields) or group (fields → fields).

    Input (B, in_channels·N_in, H, W) with N_in = 1 if ``lifting`` else N; output
    (B, out_channels·N, H, W) (stride 1, zero padding k//2: 'same'). ``in_channels`` and
    ``out_channels`` count fields (regular representations), e.g. 8 → 8 fields at N = 8 is 64 → 64
    channels. The weight is ``kernels.rotate_filter_bank(coeffs, basis, N)`` with learnable coeffs
    (out_channels, in_channels, N_in, B) on the fixed ``basis`` ("bconv", "fourier" or "rot90", see
    kernels.nn.group_basis); the bias is one value per output field, shared by its N orientations.
    Exactly equivariant to quarter turns when 4 divides N (all bases); approximately at other
    multiples of 2π/N.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        group: int = 4,
        *,
        lifting: bool = False,
        basis: str = "bconv",
        bias: bool = True,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        _check_common(in_channels, out_channels, kernel_size, group, basis)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.group, self.lifting, self.basis_kind = group, bool(lifting), basis
        self.bank = _spatial_bank(
            out_channels, in_channels, kernel_size, group, lifting, basis, dtype, device
        )
        self.bias = nn.Parameter(torch.zeros(out_channels, dtype=dtype, device=device)) if bias else None

    @property
    def in_fields_channels(self) -> int:
        return self.in_channels * (1 if self.lifting else self.group)

    def weight(self) -> Tensor:
        """The expanded (out_channels·N, in_channels·N_in, k, k) weight (cached in eval mode)."""
        return self.bank()

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.size(1) != self.in_fields_channels:
            raise ValueError(
                f"GroupConv2d expects input (B, {self.in_fields_channels}, H, W), got shape {tuple(x.shape)}"
            )
        bias = None if self.bias is None else self.bias.repeat_interleave(self.group)
        return F.conv2d(x, self.weight(), bias, padding=self.kernel_size // 2)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, group={self.group}, "
            f"lifting={self.lifting}, basis={self.basis_kind!r}, bias={self.bias is not None}"
        )


def temporal_basis(k_t: int, N: int, symmetric: bool) -> Tensor:
    """(N, B, 1, k_t) float64: a time filter is unaffected by rotation, so every copy r is the same.
    Free: B = k_t one-hot taps. Symmetric: B = ceil(k_t/2), basis b = e_b + e_{k_t−1−b} (0/1 valued),
    so every expanded filter satisfies w[t] = w[k_t − 1 − t]."""
    if symmetric:
        nb = (k_t + 1) // 2
        taps = torch.zeros(nb, k_t, dtype=torch.float64)
        for b in range(nb):
            taps[b, b] = 1.0
            taps[b, k_t - 1 - b] = 1.0
    else:
        taps = torch.eye(k_t, dtype=torch.float64)
    return taps[None, :, None, :].expand(N, -1, 1, -1).contiguous()


class GroupConv2p1d(nn.Module):
    """(2+1)D C_N-equivariant convolution for (B, in_channels·N, T, H, W) regular fields (DUN-SRE's
    block): a spatial (1, k, k) group convolution per frame to ``mid_channels`` fields, then a
    temporal (k_t, 1, 1) group convolution to ``out_channels`` fields, each through conv3d on its
    expanded bank (zero padding 'same' in every axis). The temporal bank is a group convolution with
    spatially trivial filters: W_t[o·N + r, i·N + s, t] = c[o, i, (s − r) mod N, t], so orientation
    channels mix equivariantly and the layer commutes with rotations of every frame.

    ``time_symmetric=True`` constrains every temporal filter to be even, w[t] = w[k_t − 1 − t] (a
    basis of symmetric tap pairs), so the whole layer also commutes with time reversal
    (x[:, :, ::-1]): with symmetric zero padding an even kernel's correlation commutes with the flip,
    and the per-frame spatial conv does trivially. Motivation: a cine-MRI prior should not depend on
    the direction in which the cardiac cycle is played back; the constraint halves the temporal
    parameters. ``lifting=True`` takes plain images (B, in_channels, T, H, W) instead of fields.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        temporal_kernel_size: int = 3,
        group: int = 4,
        *,
        mid_channels: int | None = None,
        lifting: bool = False,
        basis: str = "bconv",
        time_symmetric: bool = False,
        bias: bool = True,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        _check_common(in_channels, out_channels, kernel_size, group, basis)
        k_t = temporal_kernel_size
        if isinstance(k_t, bool) or not isinstance(k_t, int) or k_t < 1 or k_t % 2 == 0:
            raise ValueError(f"temporal_kernel_size must be an odd int >= 1, got {k_t!r}")
        mid = out_channels if mid_channels is None else mid_channels
        if isinstance(mid, bool) or not isinstance(mid, int) or mid < 1:
            raise ValueError(f"mid_channels must be an int >= 1, got {mid_channels!r}")
        self.in_channels, self.out_channels, self.mid_channels = in_channels, out_channels, mid
        self.kernel_size, self.temporal_kernel_size, self.group = kernel_size, k_t, group
        self.lifting, self.basis_kind, self.time_symmetric = bool(lifting), basis, bool(time_symmetric)
        self.spatial = _spatial_bank(mid, in_channels, kernel_size, group, lifting, basis, dtype, device)
        t_basis = temporal_basis(k_t, group, self.time_symmetric)
        self.temporal = _FilterBank(
            (out_channels, mid, group, t_basis.shape[1]), t_basis, group, mid * group * k_t, dtype, device
        )
        self.bias = nn.Parameter(torch.zeros(out_channels, dtype=dtype, device=device)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        c_in = self.in_channels * (1 if self.lifting else self.group)
        if x.dim() != 5 or x.size(1) != c_in:
            raise ValueError(f"GroupConv2p1d expects input (B, {c_in}, T, H, W), got shape {tuple(x.shape)}")
        k, k_t = self.kernel_size, self.temporal_kernel_size
        w_s = self.spatial().unsqueeze(2)  # (mid·N, c_in, 1, k, k)
        w_t = self.temporal()  # (out·N, mid·N, 1, k_t)
        w_t = w_t.reshape(*w_t.shape[:2], k_t, 1, 1)
        y = F.conv3d(x, w_s, None, padding=(0, k // 2, k // 2))
        bias = None if self.bias is None else self.bias.repeat_interleave(self.group)
        return F.conv3d(y, w_t, bias, padding=(k_t // 2, 0, 0))

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"temporal_kernel_size={self.temporal_kernel_size}, group={self.group}, "
            f"mid_channels={self.mid_channels}, lifting={self.lifting}, basis={self.basis_kind!r}, "
            f"time_symmetric={self.time_symmetric}"
        )


class GroupPool(nn.Module):
    """Pool each regular field over its N orientations: (B, F·N, ...) → (B, F, ...), ``mode`` "max" or
    "mean". The result is invariant to the orientation roll, so it transforms like F plain images."""

    def __init__(self, group: int, mode: str = "max") -> None:
        super().__init__()
        if mode not in ("max", "mean"):
            raise ValueError(f"mode must be 'max' or 'mean', got {mode!r}")
        self.group, self.mode = group, mode

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 3 or x.size(1) % self.group:
            raise ValueError(f"GroupPool expects (B, F·{self.group}, ...), got shape {tuple(x.shape)}")
        y = x.reshape(x.size(0), x.size(1) // self.group, self.group, *x.shape[2:])
        return y.amax(2) if self.mode == "max" else y.mean(2)

    def extra_repr(self) -> str:
        return f"group={self.group}, mode={self.mode!r}"


class GroupBatchNorm(nn.Module):
    """Batch norm with one mean, variance, scale and shift per field (shared by its N orientations,
    which per-channel BatchNorm would not: that breaks equivariance). Input (B, F·N, ...)."""

    def __init__(
        self,
        num_fields: int,
        group: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        dtype: torch.dtype = torch.float32,
        device=None,
    ) -> None:
        super().__init__()
        self.num_fields, self.group, self.eps, self.momentum = num_fields, group, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_fields, dtype=dtype, device=device)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_fields, dtype=dtype, device=device)) if affine else None
        self.register_buffer("running_mean", torch.zeros(num_fields, dtype=dtype, device=device))
        self.register_buffer("running_var", torch.ones(num_fields, dtype=dtype, device=device))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 3 or x.size(1) != self.num_fields * self.group:
            raise ValueError(
                f"GroupBatchNorm expects (B, {self.num_fields * self.group}, ...), got shape {tuple(x.shape)}"
            )
        y = x.reshape(x.size(0), self.num_fields, -1)
        y = F.batch_norm(
            y,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            self.training,
            self.momentum,
            self.eps,
        )
        return y.reshape(x.shape)


class GroupFieldNorm(nn.Module):
    """Per-sample, per-field normalization over orientations and space (an instance norm whose
    statistics and affine parameters are shared by a field's N channels). Input (B, F·N, ...)."""

    def __init__(
        self,
        num_fields: int,
        group: int,
        eps: float = 1e-5,
        affine: bool = True,
        dtype: torch.dtype = torch.float32,
        device=None,
    ) -> None:
        super().__init__()
        self.num_fields, self.group, self.eps = num_fields, group, eps
        self.weight = nn.Parameter(torch.ones(num_fields, dtype=dtype, device=device)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_fields, dtype=dtype, device=device)) if affine else None

    def forward(self, x: Tensor) -> Tensor:
        y = F.group_norm(x, self.num_fields, None, None, self.eps)
        if self.weight is None:
            return y
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return y * self.weight.repeat_interleave(self.group).view(shape) + self.bias.repeat_interleave(
            self.group
        ).view(shape)


class GroupPointwise(nn.Module):
    """A pointwise nonlinearity on regular fields. Any pointwise function commutes with the
    orientation roll (a channel permutation) and with spatial rotation, so it is equivariant; this
    wrapper only names the choice ("relu", "elu", "gelu", "silu", "tanh") in model code."""

    _FNS = {"relu": F.relu, "elu": F.elu, "gelu": F.gelu, "silu": F.silu, "tanh": torch.tanh}

    def __init__(self, nonlinearity: str = "relu") -> None:
        super().__init__()
        if nonlinearity not in self._FNS:
            raise ValueError(f"nonlinearity must be one of {sorted(self._FNS)}, got {nonlinearity!r}")
        self.nonlinearity = nonlinearity

    def forward(self, x: Tensor) -> Tensor:
        return self._FNS[self.nonlinearity](x)

    def extra_repr(self) -> str:
        return repr(self.nonlinearity)
