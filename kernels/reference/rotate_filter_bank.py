"""Pure-torch filter-bank expansion of a C_N group convolution: the specification of
kernels.rotate_filter_bank.

coeffs (C_out, C_in, N_in, B), basis (N, B, k1, k2) with basis[r, b] = the b-th basis filter rotated
by r·2π/N; N_in = 1 (lifting layer) or N (group → group). The expanded weight, (C_out·N, C_in·N_in,
k1, k2), is
    W[o·N + r, i·N_in + s] = Σ_b coeffs[o, i, (s − r) mod N_in, b] · basis[r, b]
i.e. output orientation r sees the filter rotated by r and the input orientation channels rolled by r.
Its gradient w.r.t. coeffs is the transposed contraction
    grad[o, i, t, b] = Σ_r Σ_xy gW[o·N + r, i·N_in + (t + r) mod N_in, xy] · basis[r, b, xy].
"""

from __future__ import annotations

import torch
from torch import Tensor


def _shift_index(N: int, N_in: int, device: torch.device) -> Tensor:
    """(N, N_in) long: idx[r, s] = (s − r) mod N_in."""
    r = torch.arange(N, device=device)[:, None]
    s = torch.arange(N_in, device=device)[None, :]
    return (s - r) % N_in


def rotate_filter_bank_forward(coeffs: Tensor, basis: Tensor) -> Tensor:
    C_out, C_in, N_in, _ = coeffs.shape
    N, _, k1, k2 = basis.shape
    rolled = coeffs[:, :, _shift_index(N, N_in, coeffs.device)]  # (C_out, C_in, N, N_in, B)
    W = torch.einsum("oirsb,rbxy->orisxy", rolled, basis)
    return W.reshape(C_out * N, C_in * N_in, k1, k2)


def rotate_filter_bank_backward(grad_W: Tensor, basis: Tensor, C_out: int, C_in: int, N_in: int) -> Tensor:
    N, B, k1, k2 = basis.shape
    g = grad_W.reshape(C_out, N, C_in, N_in, k1, k2)
    # t = (s − r) mod N_in  <=>  s = (t + r) mod N_in
    idx = (
        torch.arange(N_in, device=grad_W.device)[None, :] + torch.arange(N, device=grad_W.device)[:, None]
    ) % N_in
    r_idx = torch.arange(N, device=grad_W.device)[:, None].expand(N, N_in)
    g = g[:, r_idx, :, idx]  # advanced indices first: (N, N_in, C_out, C_in, k1, k2)
    return torch.einsum("rtoixy,rbxy->oitb", g, basis)
