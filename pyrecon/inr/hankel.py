"""Block-Hankel operators on multi-channel k-space and a SPIRiT-like self-consistency kernel.

Block-Hankel matrix. For k-space ``x`` (Ch, H, W) (Ch channels: coils, or coils × spin-lock times
stacked) and a kernel window (kh, kw), zero-pad x by (kh−1, kw−1) on every side (xp) and take every
window of the padded array ("full" windows, P = (H+kh−1)(W+kw−1) rows):

    H(x)[p, (c, a, b)] = xp[c, i+a, j+b],   p = i·(W+kw−1) + j,  columns ordered (c, a, b).

Full (zero-padded) windows are a documented choice over "valid" ones: every product of two k-space
samples then enters the Gram matrix exactly once per lag, so

    G = H(x)ᴴ H(x),   G[(c,a,b), (c',a',b')] = R_cc'(a'−a, b'−b),   R_cc'(d) = Σ_u conj(x_c[u]) x_c'[u+d]

(the "Gram trick": G is (Ch·kh·kw)² and is built from (2kh−1)(2kw−1) lagged inner products without
ever forming the P × Ch·kh·kw matrix; all lags come from one zero-padded FFT cross-correlation).
Its eigenvalues are the squared singular values of H(x), which gives the two low-rank penalties:

    nuclear:  ‖H(x)‖_* = Σ_i sqrt(λ_i(G))
    tail (fixed rank r):  ‖H(x) − P_r(H(x))‖_F² = Σ_{i>r} σ_i² = trace(G) − (sum of the r largest λ_i)

``hankel_matvec`` / ``hankel_rmatvec`` apply H(x) and H(x)ᴴ to vectors by (complex) correlation, and
``hankel_adjoint`` is the adjoint of the linear map x ↦ H(x) (fold: the sum over the windows that
contain each sample). ``hankel_matrix`` materializes H(x) and refuses anything above ``max_entries``.

SPIRiT-like self-consistency (Lustig & Pauly 2010). Every k-space sample is a linear combination of
its neighbours in all coils: y_c[u] = Σ_{c',a,b} g[c,c',a,b]·y_c'[u + (a−kh//2, b−kw//2)], with
g[c, c, kh//2, kw//2] = 0. ``calibrate_spirit`` fits g by ridge regression on the valid windows of
a fully sampled calibration region (rows: windows of every calibration set pooled, e.g. every
spin-lock time), ``spirit_apply`` computes G y, and ``spirit_residual`` returns G y − y (zero padding
outside k-space).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "calibrate_spirit",
    "hankel_adjoint",
    "hankel_gram",
    "hankel_lowrank_penalty",
    "hankel_matrix",
    "hankel_matvec",
    "hankel_rmatvec",
    "spirit_apply",
    "spirit_residual",
]


def _kernel(kernel) -> tuple[int, int]:
    if isinstance(kernel, int):
        kernel = (kernel, kernel)
    try:
        kh, kw = (int(k) for k in kernel)
    except (TypeError, ValueError):
        raise TypeError(f"kernel must be an int or a pair of ints, got {kernel!r}") from None
    if kh < 1 or kw < 1:
        raise ValueError(f"kernel must be >= 1 in both dims, got {(kh, kw)}")
    return kh, kw


def _check_x(x: Tensor, kernel, name: str = "x") -> tuple[int, int]:
    if not isinstance(x, Tensor) or not x.is_complex():
        raise TypeError(f"{name} must be a complex tensor (Ch, H, W), got "
                        f"{x.dtype if isinstance(x, Tensor) else type(x).__name__}")
    if x.dim() != 3:
        raise ValueError(f"{name} must have shape (Ch, H, W), got {tuple(x.shape)}")
    return _kernel(kernel)


def _pad(x: Tensor, kh: int, kw: int) -> Tensor:
    return F.pad(x, (kw - 1, kw - 1, kh - 1, kh - 1))


def _cconv2d(x: Tensor, w: Tensor, padding=0, groups: int = 1) -> Tensor:
    """Complex cross-correlation F.conv2d(x, w) from four real ones (conv2d has no complex CPU path
    for every dtype). x (N, Cin, H, W), w (Cout, Cin/groups, kh, kw), both complex."""
    xr, xi, wr, wi = x.real, x.imag, w.real, w.imag
    real = F.conv2d(xr, wr, padding=padding, groups=groups) - F.conv2d(xi, wi, padding=padding, groups=groups)
    imag = F.conv2d(xr, wi, padding=padding, groups=groups) + F.conv2d(xi, wr, padding=padding, groups=groups)
    return torch.complex(real, imag)


def _unfold(x: Tensor, kh: int, kw: int) -> Tensor:
    """Valid windows of x (Ch, H, W) → (P, Ch·kh·kw), columns (c, a, b), rows row-major."""
    re = F.unfold(x.real.unsqueeze(0), (kh, kw))[0]
    im = F.unfold(x.imag.unsqueeze(0), (kh, kw))[0]
    return torch.complex(re, im).transpose(0, 1)


def hankel_matrix(x: Tensor, kernel, *, max_entries: int = 1 << 22) -> Tensor:
    """Dense H(x) (P, Ch·kh·kw) — for small cases and tests only (raises above ``max_entries``)."""
    kh, kw = _check_x(x, kernel)
    ch, h, w = x.shape
    entries = (h + kh - 1) * (w + kw - 1) * ch * kh * kw
    if entries > max_entries:
        raise ValueError(f"the dense Hankel matrix would hold {entries} entries (> max_entries="
                         f"{max_entries}); use hankel_gram / hankel_matvec instead")
    return _unfold(_pad(x, kh, kw), kh, kw)


def hankel_matvec(x: Tensor, v: Tensor) -> Tensor:
    """H(x) v for v (Ch, kh, kw) → (P,) = flattened (H+kh−1, W+kw−1) correlation of xp with v."""
    if not isinstance(v, Tensor) or v.dim() != 3 or v.size(0) != x.size(0):
        raise ValueError(f"v must have shape (Ch={x.size(0)}, kh, kw), got "
                         f"{tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__}")
    kh, kw = _check_x(x, v.shape[1:])
    out = _cconv2d(_pad(x, kh, kw).unsqueeze(0), v.to(x.dtype).unsqueeze(0))
    return out.reshape(-1)


def hankel_rmatvec(x: Tensor, u: Tensor, kernel) -> Tensor:
    """H(x)ᴴ u for u (P,) → (Ch, kh, kw): out[c,a,b] = Σ_{i,j} conj(xp[c,i+a,j+b]) u[i,j]."""
    kh, kw = _check_x(x, kernel)
    ch, h, w = x.shape
    ph, pw = h + kh - 1, w + kw - 1
    if not isinstance(u, Tensor) or u.numel() != ph * pw:
        raise ValueError(f"u must have {ph * pw} entries (P for kernel {(kh, kw)}), got "
                         f"{u.numel() if isinstance(u, Tensor) else type(u).__name__}")
    xp = _pad(x, kh, kw).conj().unsqueeze(1)  # (Ch, 1, Hp, Wp): one "batch item" per channel
    out = _cconv2d(xp, u.to(x.dtype).reshape(1, 1, ph, pw))
    return out.reshape(ch, kh, kw)


def hankel_adjoint(m: Tensor, shape: tuple[int, int, int], kernel) -> Tensor:
    """Adjoint of x ↦ H(x): m (P, Ch·kh·kw) → (Ch, H, W), the sum of every window entry that
    came from the same sample: <H(x), m> = <x, hankel_adjoint(m)>."""
    kh, kw = _kernel(kernel)
    ch, h, w = shape
    hp, wp = h + 2 * (kh - 1), w + 2 * (kw - 1)
    p = (h + kh - 1) * (w + kw - 1)
    if not isinstance(m, Tensor) or not m.is_complex() or tuple(m.shape) != (p, ch * kh * kw):
        raise ValueError(f"m must be complex with shape {(p, ch * kh * kw)}, got "
                         f"{tuple(m.shape) if isinstance(m, Tensor) else type(m).__name__}")
    cols = m.transpose(0, 1).unsqueeze(0)
    re = F.fold(cols.real.contiguous(), (hp, wp), (kh, kw))[0]
    im = F.fold(cols.imag.contiguous(), (hp, wp), (kh, kw))[0]
    return torch.complex(re, im)[:, kh - 1:kh - 1 + h, kw - 1:kw - 1 + w]


def hankel_gram(x: Tensor, kernel) -> Tensor:
    """G = H(x)ᴴ H(x) (Ch·kh·kw, Ch·kh·kw) from the (2kh−1)(2kw−1) lagged cross-correlations
    R_cc'(d) = Σ_u conj(x_c[u]) x_c'[u+d], never forming H(x). Differentiable.

    All lags at once by FFT: with x zero-padded to L ≥ (H+kh−1, W+kw−1) (no wrap-around for
    |d| < k), R_cc'(d) = ifft2(conj(fft2 x_c) · fft2 x_c')[d mod L] — one batched FFT instead of
    (2kh−1)(2kw−1) shifted inner products."""
    kh, kw = _check_x(x, kernel)
    ch, h, w = x.shape
    lh, lw = h + kh - 1, w + kw - 1
    spec = torch.fft.fft2(x, s=(lh, lw))  # (Ch, Lh, Lw)
    corr = torch.fft.ifft2(spec.conj()[:, None] * spec[None])  # (Ch, Ch', Lh, Lw): R_cc'(d mod L)
    a = torch.arange(kh, device=x.device)
    b = torch.arange(kw, device=x.device)
    dy = (a[None, :] - a[:, None]) % lh  # (a, a') → (a' − a) mod Lh
    dx = (b[None, :] - b[:, None]) % lw
    g = corr[:, :, dy[:, None, :, None], dx[None, :, None, :]]  # (Ch, Ch', a, b, a', b')
    g = g.permute(0, 2, 3, 1, 4, 5)  # (c, a, b, c', a', b')
    n = ch * kh * kw
    return g.reshape(n, n)


def hankel_lowrank_penalty(x: Tensor, kernel, *, rank: int | None = None, kind: str = "tail",
                           eps: float = 1e-12) -> Tensor:
    """Low-rank penalty of H(x) from the eigenvalues λ_i of the Gram matrix (see the module docstring).

    kind="tail": Σ_{i>rank} σ_i² (``rank`` required; 0 where H(x) has rank <= rank);
    kind="nuclear": Σ_i sqrt(max(λ_i, 0) + eps) (``rank`` ignored). Real scalar, differentiable.

    Cost. One ``eigh`` of G per call, outside autograd (differentiating ``eigvalsh`` would add a
    backward through the (Ch·kh·kw)² eigendecomposition and through the Gram construction). The
    gradient uses ∂λ_i/∂G = v_i v_iᴴ (distinct eigenvalues) with the eigenvectors v_i held fixed:

        tail:    ∇ Σ_{i>r} λ_i = ∇ [kh·kw·‖x‖² − Σ_{i≤r} ‖H(x) v_i‖²]   (trace(G) = kh·kw·‖x‖²)
        nuclear: ∇ Σ_i sqrt(λ_i + eps) = ∇ Re⟨W, G(x)⟩,  W = Σ_i v_i v_iᴴ / (2 sqrt(λ_i + eps))

    (i ≤ r: the r largest), so the tail needs only r Hankel matvecs (a convolution) in the backward.
    The returned value is the eigenvalue sum itself; the surrogate enters as s − s.detach()."""
    kh, kw = _check_x(x, kernel)
    n = x.size(0) * kh * kw
    if kind == "tail" and (rank is None or not 0 <= int(rank) <= n):
        raise ValueError(f"kind='tail' needs rank in 0..{n}, got {rank!r}")
    if kind not in ("tail", "nuclear"):
        raise ValueError(f"kind must be 'tail' or 'nuclear', got {kind!r}")
    with torch.no_grad():
        lam, vec = torch.linalg.eigh(hankel_gram(x.detach(), (kh, kw)))  # ascending
        pos = lam.clamp_min(0)
        value = pos[: n - int(rank)].sum() if kind == "tail" else torch.sqrt(pos + eps).sum()
    if not x.requires_grad:
        return value
    if kind == "tail":
        r = int(rank)
        surrogate = kh * kw * x.abs().pow(2).sum()
        if r > 0:
            top = vec[:, n - r:].T.reshape(r, x.size(0), kh, kw).to(x.dtype)  # v_i as (Ch, kh, kw)
            hv = _cconv2d(_pad(x, kh, kw).unsqueeze(0), top)  # (1, r, P): H(x) v_i for every i ≤ r
            surrogate = surrogate - hv.abs().pow(2).sum()
    else:
        wts = torch.where(lam > 0, 0.5 / torch.sqrt(pos + eps), torch.zeros_like(pos))
        wmat = (vec * wts.to(vec.dtype)) @ vec.conj().T
        surrogate = (wmat.conj() * hankel_gram(x, (kh, kw))).sum().real
    return value + (surrogate - surrogate.detach())


def calibrate_spirit(acs: Tensor, kernel=(5, 5), *, lam: float = 1e-3) -> Tensor:
    """SPIRiT kernel g (Ch, Ch, kh, kw) from calibration data ``acs`` (Ch, ha, wa) or (N, Ch, ha, wa)
    (N sets whose windows are pooled). For each target channel c it solves the ridge problem

        min_g ‖A_c g − b_c‖² + lam · (‖A‖_F² / ncols) · ‖g‖²

    where the rows of A are the valid calibration windows, b_c their centre sample of channel c and
    A_c is A with that centre column removed (so g[c, c, kh//2, kw//2] = 0)."""
    kh, kw = _kernel(kernel)
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"kernel must be odd in both dims (it has a centre), got {(kh, kw)}")
    if not isinstance(acs, Tensor) or not acs.is_complex() or acs.dim() not in (3, 4):
        raise ValueError("acs must be a complex tensor (Ch, ha, wa) or (N, Ch, ha, wa)")
    if acs.dim() == 3:
        acs = acs.unsqueeze(0)
    n, ch, ha, wa = acs.shape
    if ha < kh or wa < kw:
        raise ValueError(f"acs region {(ha, wa)} is smaller than the kernel {(kh, kw)}")
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    a = torch.cat([_unfold(acs[i], kh, kw) for i in range(n)], dim=0)  # (rows, Ch·kh·kw)
    ata = a.conj().T @ a
    ncols = ata.size(0)
    reg = lam * ata.diagonal().real.sum() / ncols
    centre = (kh // 2) * kw + kw // 2
    g = acs.new_zeros(ch, ncols)
    eye = torch.eye(ncols, dtype=ata.dtype, device=ata.device)
    for c in range(ch):
        t = c * kh * kw + centre
        keep = torch.ones(ncols, dtype=torch.bool, device=ata.device)
        keep[t] = False
        sys_ = ata[keep][:, keep] + reg * eye[: ncols - 1, : ncols - 1]
        rhs = ata[keep][:, t]
        g[c, keep] = torch.linalg.solve(sys_, rhs)
    return g.reshape(ch, ch, kh, kw)


def spirit_apply(y: Tensor, g: Tensor) -> Tensor:
    """(G y)[..., c, u] = Σ_{c',a,b} g[c,c',a,b]·y[..., c', u + (a − kh//2, b − kw//2)], zero outside.
    y (..., Ch, H, W) complex, g (Ch, Ch, kh, kw)."""
    if not isinstance(y, Tensor) or not y.is_complex() or y.dim() < 3:
        raise ValueError("y must be a complex tensor (..., Ch, H, W)")
    if not isinstance(g, Tensor) or g.dim() != 4 or g.shape[:2] != (y.size(-3), y.size(-3)):
        raise ValueError(f"g must have shape (Ch, Ch, kh, kw) with Ch={y.size(-3)}, got "
                         f"{tuple(g.shape) if isinstance(g, Tensor) else type(g).__name__}")
    kh, kw = g.shape[2:]
    lead = y.shape[:-3]
    flat = y.reshape((-1,) + tuple(y.shape[-3:]))
    out = _cconv2d(flat, g.to(y.dtype), padding=(kh // 2, kw // 2))
    return out.reshape(lead + tuple(out.shape[-3:]))


def spirit_residual(y: Tensor, g: Tensor) -> Tensor:
    """G y − y (the self-consistency residual; zero for k-space that obeys the calibrated kernel)."""
    return spirit_apply(y, g) - y
