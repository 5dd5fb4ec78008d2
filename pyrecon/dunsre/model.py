"""DUN-SRE (Zhu et al., "Deep Unrolling Network with Spatiotemporal Rotation Equivariance for Dynamic
MRI Reconstruction", 2025) and its non-equivariant twin.

Unrolled scheme (as in the authors' code; written from its structure, no line copied). With the
multi-coil operator E = M·F·S (``pyrecon.ops.sense``), measured k-space y and x₀ = Eᴴ y, d₀ = 0:

    x_k = P_k(x_{k−1} − d_{k−1})                              k = 1 .. K   (proximal network)
    d_k = Eᴴ G_k(E x_k, y)                                    k = 1 .. K−1 (k-space DC module)

P_k(z) = z − R_k(z) is a residual CNN on the complex image series (real and imaginary parts as two
channels); G_k is a small CNN applied per coil in k-space to the pair [E x_k, y] (four real channels)
and mapped back to the image by Eᴴ, a learned generalization of the gradient Eᴴ(E x − y) of
½‖E x − y‖². The last stage has no DC module. Deviation (``dc_gradient_skip=True``, the default):
d_k = Eᴴ(η_k(E x_k − y) + G_k(E x_k, y)), η_k learnable from 1, so the module starts at the gradient
step and G_k learns a correction; a CNN started near zero (the authors' form, ``dc_gradient_skip=
False``) gives no data consistency until it has learned the gradient, which in the few hundred steps
a CPU allows it barely does (``TrainConfig()`` defaults, 32², R = 8, 120 steps on the cine phantom
family: validation PSNR +1.0 dB over zero-filled without the skip, +5.9 dB with it).
``dc="gradient"`` replaces G_k by the exact gradient step d_k = η_k Eᴴ(E x_k − y) (η_k learnable,
initialized to 1: with orthonormal F and Σ|S_c|² = 1, ‖EᴴE‖ ≤ 1); ``dc="cg"`` replaces the pair by
the proximal step of the data term,

    x_k = argmin_x ‖E x − y‖² + λ_k ‖x − P_k(x_{k−1})‖² = (EᴴE + λ_k I)⁻¹ (Eᴴ y + λ_k P_k(x_{k−1}))

solved by ``cg_iters`` conjugate-gradient iterations (λ_k learnable, softplus-parametrized).

Equivariance: R_k and G_k are built from ``kernels.nn.GroupConv2p1d`` (a per-frame spatial C_N group
convolution on the B-Conv basis, then a temporal group convolution): a lifting layer in, group
layers, a group layer to two output fields, a mean ``GroupPool`` over orientations and a plain temporal
(k_t, 1, 1) convolution mixing the two (rotation-trivial) channels; LeakyReLU(0.2) in R_k, ReLU in
G_k. Every piece commutes with a rotation of every frame (exactly for quarter turns when 4 divides
N), so P_k does; G_k commutes with rot90 of k-space, which is a rotation about the FFT origin for
odd image sizes, so there the whole reconstruction commutes exactly with rotating the problem
(x, S, M) by quarter turns (``pyrecon.dunsre.equivariance``, tested). The twin
(``equivariant=False``) has the same layers as plain (1, k, k) then (k_t, 1, 1) ``Conv3d`` pairs whose
width round(F·√N) gives about the same parameter count (a C_N group layer F→F fields has F²·N·k²
spatial and F²·N·k_t temporal weights; a plain C→C layer C²·k² and C²·k_t).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

import kernels.nvtx
from kernels.nn import GroupConv2p1d, GroupPool

__all__ = [
    "PRESETS",
    "DUNSRE",
    "DUNSREConfig",
    "ImageProx",
    "KSpaceDC",
    "count_parameters",
    "complex_to_channels",
    "channels_to_complex",
]

DC_MODES = ("learned", "gradient", "cg")
OUTPUT_INIT_SCALE = 0.1


@dataclass(frozen=True)
class DUNSREConfig:
    """Defaults: a tiny net that trains on a laptop CPU in minutes; ``PRESETS["paper"]`` is the
    paper's size (10 stages, 32 fields × 4 rotations, DC modules of 12 fields: ≈0.67M parameters)."""

    stages: int = 3
    features: int = 4  # fields (regular representations of C_N) per hidden layer of P_k
    group: int = 4  # N: rotations by multiples of 2π/N
    kernel_size: int = 3
    temporal_kernel_size: int = 3
    hidden_layers: int = 2  # GroupConv2p1d layers before the output layer of P_k
    dc_hidden_layers: int = 1  # the same for the k-space CNN G_k
    basis: str = "bconv"
    dc: str = "learned"  # "learned" (k-space CNN), "gradient" or "cg"
    dc_features: int = 4
    dc_gradient_skip: bool = True  # learned DC: d = Eᴴ(η(E x − y) + G(E x, y)); False: the authors' Eᴴ G
    cg_iters: int = 5
    equivariant: bool = True  # False: the plain-conv twin at about the same parameter count
    time_symmetric: bool = False

    def __post_init__(self):
        ints = ("stages", "features", "group", "hidden_layers", "dc_hidden_layers", "dc_features", "cg_iters")
        for k in ints:
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{k} must be an int >= 1, got {v!r}")
        for k in ("kernel_size", "temporal_kernel_size"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1 or v % 2 == 0:
                raise ValueError(f"{k} must be an odd int >= 1, got {v!r}")
        if self.dc not in DC_MODES:
            raise ValueError(f"dc must be one of {DC_MODES}, got {self.dc!r}")

    @property
    def plain_width(self) -> int:
        """Channels of the twin's hidden layers: F·√N matches F²·N (group) with C² (plain) weights."""
        return max(1, round(self.features * math.sqrt(self.group)))

    @property
    def plain_dc_width(self) -> int:
        return max(1, round(self.dc_features * math.sqrt(self.group)))


PRESETS: dict[str, DUNSREConfig] = {
    "paper": DUNSREConfig(stages=10, features=32, group=4, dc_features=12),
}


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars (learnable filter-basis coefficients, not the expanded banks)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def complex_to_channels(x: Tensor) -> Tensor:
    """(B, T, H, W) complex → (B, 2, T, H, W) real: channel 0 the real part, 1 the imaginary part."""
    return torch.stack((x.real, x.imag), dim=1)


def channels_to_complex(x: Tensor) -> Tensor:
    """Inverse of ``complex_to_channels``: (B, 2, T, H, W) real → (B, T, H, W) complex."""
    return torch.complex(x[:, 0], x[:, 1])


class _CNN(nn.Module):
    """in_ch real channels → 2 real channels over (B, ·, T, H, W): ``hidden_layers`` (2+1)D layers of
    ``width`` fields (or plain channels), each followed by ``act``; an output layer to 2 fields; for
    the equivariant net a mean pool over orientations; ``act``; a plain temporal conv on the 2
    channels (no bias: a zero input gives a zero output, so a residual prox starts near identity)."""

    def __init__(self, in_ch: int, width: int, hidden: int, cfg: DUNSREConfig, act: nn.Module,
                 equivariant: bool):
        super().__init__()
        k, k_t, N = cfg.kernel_size, cfg.temporal_kernel_size, cfg.group
        layers: list[nn.Module] = []
        if equivariant:
            opts = dict(group=N, basis=cfg.basis, time_symmetric=cfg.time_symmetric, bias=False)
            layers += [GroupConv2p1d(in_ch, width, k, k_t, lifting=True, **opts), act]
            for _ in range(hidden - 1):
                layers += [GroupConv2p1d(width, width, k, k_t, **opts), act]
            # to two fields, per-frame only (k_t = 1): the plain temporal conv below mixes frames
            layers += [GroupConv2p1d(width, 2, k, 1, **opts), GroupPool(N, "mean"), act]
        else:
            layers += [_plain2p1d(in_ch, width, k, k_t), act]
            for _ in range(hidden - 1):
                layers += [_plain2p1d(width, width, k, k_t), act]
            layers += [_plain2p1d(width, 2, k, 1), act]
        out = nn.Conv3d(2, 2, (k_t, 1, 1), padding=(k_t // 2, 0, 0), bias=False)
        with torch.no_grad():
            # He-initialized chains amplify: at the default init |R(z)| ≈ 3|z|, and ten stages of that
            # overflow; a 0.1 output scale starts every stage near the identity (|R(z)| ≈ 0.3|z|).
            out.weight.mul_(OUTPUT_INIT_SCALE)
        layers.append(out)
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def _plain2p1d(c_in: int, c_out: int, k: int, k_t: int) -> nn.Module:
    """The twin of GroupConv2p1d: a per-frame (1, k, k) conv to c_out channels, then (k_t, 1, 1)."""
    spatial = nn.Conv3d(c_in, c_out, (1, k, k), padding=(0, k // 2, k // 2), bias=False)
    if k_t == 1:
        return spatial
    return nn.Sequential(spatial, nn.Conv3d(c_out, c_out, (k_t, 1, 1), padding=(k_t // 2, 0, 0), bias=False))


class ImageProx(nn.Module):
    """P(z) = z − R(z) on a complex image series z (B, T, H, W); R a ``_CNN`` on [Re z, Im z]."""

    def __init__(self, cfg: DUNSREConfig):
        super().__init__()
        width = cfg.features if cfg.equivariant else cfg.plain_width
        self.residual = _CNN(2, width, cfg.hidden_layers, cfg, nn.LeakyReLU(0.2), cfg.equivariant)

    def forward(self, z: Tensor) -> Tensor:
        _check_series(z, "z")
        return z - channels_to_complex(self.residual(complex_to_channels(z)))


class KSpaceDC(nn.Module):
    """The learned data-consistency module: d = Eᴴ(η(E x − y) + G(E x, y)) (η only with
    ``dc_gradient_skip``), G a ``_CNN`` applied to each coil's pair [E x, y] (B·C, 4, T, H, W) →
    (B·C, 2, T, H, W) → complex (B, T, C, H, W)."""

    def __init__(self, cfg: DUNSREConfig):
        super().__init__()
        width = cfg.dc_features if cfg.equivariant else cfg.plain_dc_width
        self.net = _CNN(4, width, cfg.dc_hidden_layers, cfg, nn.ReLU(), cfg.equivariant)
        self.step = nn.Parameter(torch.ones(())) if cfg.dc_gradient_skip else None

    def forward(self, x: Tensor, y: Tensor, smaps: Tensor, mask: Tensor) -> Tensor:
        from pyrecon.ops.sense import sense_adjoint, sense_forward

        ex = sense_forward(x, smaps, mask)  # (B, T, C, H, W)
        b, t, c, h, w = ex.shape
        pair = torch.stack((ex, y), dim=1).permute(0, 3, 1, 2, 4, 5).reshape(b * c, 2, t, h, w)
        g = self.net(torch.cat((pair.real, pair.imag), dim=1))  # (B·C, 2, T, H, W)
        g = channels_to_complex(g).reshape(b, c, t, h, w).permute(0, 2, 1, 3, 4)
        if self.step is not None:
            g = g + self.step * (ex - y)
        return sense_adjoint(g, smaps, mask)


def _check_series(x: Tensor, name: str) -> None:
    if not isinstance(x, Tensor) or not x.is_complex() or x.dim() != 4:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        dtype = x.dtype if isinstance(x, Tensor) else None
        raise ValueError(f"{name} must be a complex (B, T, H, W) tensor, got {got} {dtype}")


class DUNSRE(nn.Module):
    """The unrolled network (module docstring). ``forward(y, smaps, mask)``: y (B, T, C, H, W) complex
    measured k-space (zero where not sampled), smaps (B, C, H, W) complex, mask real broadcastable to
    (B, T, H, W); returns the reconstruction (B, T, H, W) in the dtype of y (complex64 nets)."""

    def __init__(self, config: DUNSREConfig | None = None):
        super().__init__()
        cfg = config or DUNSREConfig()
        self.config = cfg
        self.prox = nn.ModuleList(ImageProx(cfg) for _ in range(cfg.stages))
        if cfg.dc == "learned":
            self.dc = nn.ModuleList(KSpaceDC(cfg) for _ in range(cfg.stages - 1))
        elif cfg.dc == "gradient":
            self.step = nn.Parameter(torch.ones(cfg.stages - 1))
        else:
            # λ = softplus(ρ), ρ = log(e − 1) gives λ = 1
            self.rho = nn.Parameter(torch.full((cfg.stages,), math.log(math.e - 1)))

    def data_consistency(self, k: int, x: Tensor, y: Tensor, smaps: Tensor, mask: Tensor) -> Tensor:
        """d_k of stage k (0-based): the learned module or the gradient step η_k Eᴴ(E x − y)."""
        from pyrecon.ops.sense import sense_adjoint, sense_forward

        if self.config.dc == "learned":
            return self.dc[k](x, y, smaps, mask)
        if self.config.dc == "gradient":
            return self.step[k] * sense_adjoint(sense_forward(x, smaps, mask) - y, smaps, mask)
        raise ValueError("data_consistency is the d_k term of the 'learned' and 'gradient' modes")

    def cg_step(self, k: int, z: Tensor, y: Tensor, smaps: Tensor, mask: Tensor) -> Tensor:
        """(EᴴE + λ_k I)⁻¹ (Eᴴ y + λ_k z) by ``cg_iters`` conjugate-gradient iterations from z."""
        from pyrecon.ops.cg import conjugate_gradient
        from pyrecon.ops.sense import sense_adjoint, sense_normal

        lam = torch.nn.functional.softplus(self.rho[k])
        rhs = sense_adjoint(y, smaps, mask) + lam * z
        # λ is a learnable tensor, so it goes into the operator (conjugate_gradient's lam is a number)
        return conjugate_gradient(
            lambda v: sense_normal(v, smaps, mask) + lam * v, rhs, z, iters=self.config.cg_iters, tol=0.0
        )

    def forward(self, y: Tensor, smaps: Tensor, mask: Tensor) -> Tensor:
        from pyrecon.ops.sense import sense_adjoint

        if not isinstance(y, Tensor) or not y.is_complex() or y.dim() != 5:
            raise ValueError(f"y must be complex k-space (B, T, C, H, W), got {getattr(y, 'shape', y)}")
        x = sense_adjoint(y, smaps, mask)
        d = None
        for k in range(self.config.stages):
            with kernels.nvtx.range(f"dunsre.stage{k}"):
                x = self.prox[k](x if d is None else x - d)
                if self.config.dc == "cg":
                    x = self.cg_step(k, x, y, smaps, mask)
                elif k < self.config.stages - 1:
                    d = self.data_consistency(k, x, y, smaps, mask)
        return x
