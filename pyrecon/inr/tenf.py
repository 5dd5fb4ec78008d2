"""TenF-INR: patch-group low-rank tensors whose factor matrices are learnable functions (INRs).

No public code exists; this follows the issue's description and LRTFR (Luo et al.: a Tucker core with
small INR factor networks).

1. Patches. The (H, W) grid is cut into overlapping p × p patches with stride s (the last row/column
   of patches is moved to end on the border so every pixel is covered).
2. Block matching on a preliminary reconstruction x0 (T, H, W) (default: zero-filled): for every
   patch position (the group's reference) the K positions whose magnitude patches over all frames
   are nearest in L2, within ± ``search`` pixels, form a group; the reference is always its first
   member. Groups overlap; every position is a reference, so every pixel is covered.
3. Each group g is a tensor X_g (p², K, T) (pixel-in-patch × member × time) with a Tucker model

       X_g[i, k, t] = Σ_{a,b,c} 𝒢_g[a, b, c] · U(i; g)[a] · V(k; g)[b] · W(t; g)[c]

   where 𝒢_g ∈ ℂ^{r1×r2×r3} is a learned core per group and the three factor matrices are continuous
   functions: U = HashMLP(py, px, cy, cx), V = HashMLP(k/(K−1), cy, cx), W = HashMLP(t/(T−1), cy, cx)
   (hash-grid encoding + tiny MLP, ``kernels.nn.HashGridEncoding``), with (cy, cx) the reference
   patch's centre so that nearby groups share factor features at the coarse hash levels.
4. Aggregation: x = (Σ_g P_gᵀ X_g) / (Σ_g P_gᵀ 1) — each pixel is the plain (weight 1) average of
   every group entry that covers it.
5. Loss: ‖M ⊙ F(S x) − y‖² / ‖y‖² + λ_TV · mean|x_{t+1} − x_t| (the data scaled so that the
   zero-filled image has peak 1, as in ``hash_inr``).

Decomposition and rank: Tucker with ranks (r1, r2, r3) = (8, 3, 6) by default. Tucker rather than CP
because the three modes have very different intrinsic ranks — K matched patches are near copies
(rank ~2–3 along the member mode), a patch's pixels need more (~8) and cardiac motion over T frames
~4–6 temporal components — and a Tucker core gives each its own rank, where CP would force one rank
R ≥ max of them on every mode (and CP fits are prone to degenerate, diverging rank-one terms).

Cartesian k-t or golden-angle radial sampling (``spokes`` > 0), through ``DynamicData.forward``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

import kernels.nvtx
from kernels.runs import RunDir
from pyrecon.inr._common import HashMLP, add_config_arguments, fit_loop
from pyrecon.inr.hash_inr import DynamicData, DynamicScanConfig, main_dynamic, run_dynamic

__all__ = ["PRESETS", "PatchGroups", "TenFConfig", "TenFINR", "add_arguments", "aggregate", "block_match",
           "extract_groups", "fit_tenf", "main", "make_groups", "patch_positions", "tucker_groups"]


@dataclass
class TenFConfig(DynamicScanConfig):
    name: str = "tenf-inr"
    patch: int = 8
    stride: int = 4
    group_size: int = 8
    search: int = 12
    rank_pixel: int = 8
    rank_member: int = 3
    rank_time: int = 6
    n_levels: int = 6
    n_features: int = 2
    log2_hashmap_size: int = 14
    base_resolution: int = 2
    finest_resolution: int = 32
    hidden: int = 32
    depth: int = 2
    iters: int = 300
    lr: float = 1e-2
    tv_weight: float = 0.02
    log_every: int = 10
    checkpoint_every: int = 100


PRESETS = {
    "tiny": {"frames": 8, "size": 32, "coils": 2, "accel": 4, "iters": 150, "group_size": 4, "search": 8,
             "finest_resolution": 16, "log2_hashmap_size": 12, "checkpoint_every": 50},
}


def patch_positions(h: int, w: int, patch: int, stride: int) -> Tensor:
    """(N, 2) top-left corners (row, col) of the p × p patches, stride s, last ones flush with the border."""
    if patch < 1 or stride < 1 or patch > min(h, w):
        raise ValueError(f"need 1 <= patch <= min(H, W) and stride >= 1, got patch={patch}, stride={stride}")

    def starts(n):
        s = list(range(0, n - patch + 1, stride))
        if s[-1] != n - patch:
            s.append(n - patch)
        return torch.tensor(s)

    rows, cols = starts(h), starts(w)
    return torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1).reshape(-1, 2)


def _pixel_index(pos: Tensor, patch: int, w: int) -> Tensor:
    """(N, p²) flat pixel indices of each patch, row-major inside the patch."""
    d = torch.arange(patch)
    offs = (d[:, None] * w + d[None, :]).reshape(-1)
    return (pos[:, 0] * w + pos[:, 1])[:, None] + offs[None, :]


def block_match(x0: Tensor, pos: Tensor, patch: int, k: int, search: int) -> Tensor:
    """(N, K) member positions per reference: the K nearest (L2 of |x0| patches over all frames)
    positions within ± ``search`` pixels; column 0 is the reference itself."""
    t, h, w = x0.shape
    idx = _pixel_index(pos, patch, w)
    feats = x0.abs().reshape(t, -1)[:, idx].permute(1, 0, 2).reshape(len(pos), -1)  # (N, T·p²)
    d = torch.cdist(feats, feats)
    far = (pos[:, None, :] - pos[None, :, :]).abs().amax(-1) > search
    d = d.masked_fill(far, float("inf"))
    d.fill_diagonal_(-1.0)  # the reference first
    if k > len(pos):
        raise ValueError(f"group_size={k} exceeds the number of patch positions {len(pos)}")
    nearest = torch.topk(d, k, dim=1, largest=False).indices
    if bool(torch.isinf(d.gather(1, nearest)).any()):
        raise ValueError(f"fewer than group_size={k} positions lie within search={search} pixels; "
                         "widen search")
    return nearest


@dataclass
class PatchGroups:
    pos: Tensor  # (N, 2) patch corners
    members: Tensor  # (G, K) indices into pos (G = N: every position is a reference)
    index: Tensor  # (G, p², K) flat pixel index of every group entry
    counts: Tensor  # (H·W,) how many group entries cover each pixel
    patch: int


def make_groups(x0: Tensor, patch: int, stride: int, k: int, search: int) -> PatchGroups:
    t, h, w = x0.shape
    pos = patch_positions(h, w, patch, stride)
    members = block_match(x0, pos, patch, k, search)
    pix = _pixel_index(pos, patch, w)  # (N, p²)
    index = pix[members].permute(0, 2, 1).contiguous()  # (G, p², K)
    counts = torch.zeros(h * w).index_add_(0, index.reshape(-1), torch.ones(index.numel()))
    if bool((counts == 0).any()):
        raise RuntimeError("some pixels are covered by no group")  # cannot happen: references cover all
    return PatchGroups(pos, members, index, counts, patch)


def extract_groups(x: Tensor, groups: PatchGroups) -> Tensor:
    """The group tensors of an image series x (T, H, W) → (G, p², K, T)."""
    t = x.shape[0]
    return x.reshape(t, -1)[:, groups.index].permute(1, 2, 3, 0)


def aggregate(tensors: Tensor, groups: PatchGroups, shape: tuple[int, int, int]) -> Tensor:
    """x = (Σ_g P_gᵀ X_g) / counts: tensors (G, p², K, T) → (T, H, W). ``aggregate(extract_groups(x))``
    is x."""
    t, h, w = shape
    vals = tensors.permute(3, 0, 1, 2).reshape(t, -1)
    out = torch.zeros(t, h * w, dtype=tensors.dtype, device=tensors.device)
    out = out.index_add(1, groups.index.reshape(-1).to(tensors.device), vals)
    return (out / groups.counts.to(out.device)).reshape(t, h, w)


def tucker_groups(core: Tensor, u: Tensor, v: Tensor, wt: Tensor) -> Tensor:
    """X[g, i, k, t] = Σ_{a,b,c} core[g,a,b,c]·u[g,i,a]·v[g,k,b]·wt[g,t,c] (contracted mode by mode)."""
    y = torch.einsum("gabc,gtc->gabt", core, wt.to(core.dtype))
    y = torch.einsum("gabt,gkb->gakt", y, v.to(core.dtype))
    return torch.einsum("gakt,gia->gikt", y, u.to(core.dtype))


class TenFINR(torch.nn.Module):
    """Per-group complex Tucker cores and the three INR factor functions of the module docstring."""

    def __init__(self, cfg: TenFConfig, groups: PatchGroups, frames: int, h: int, w: int) -> None:
        super().__init__()
        self.groups, self.frames, self.shape = groups, frames, (frames, h, w)
        p, k = groups.patch, groups.members.shape[1]

        def field(in_dim, out_dim):
            return HashMLP(in_dim, out_dim, n_levels=cfg.n_levels, n_features=cfg.n_features,
                           log2_hashmap_size=cfg.log2_hashmap_size, base_resolution=cfg.base_resolution,
                           finest_resolution=cfg.finest_resolution, hidden=cfg.hidden, depth=cfg.depth)

        self.u, self.v, self.w = field(4, cfg.rank_pixel), field(3, cfg.rank_member), field(3, cfg.rank_time)
        n_groups = groups.members.shape[0]
        ranks = (cfg.rank_pixel, cfg.rank_member, cfg.rank_time)
        self.core = torch.nn.Parameter(0.1 * torch.randn(n_groups, *ranks, 2))
        size = torch.tensor([h, w], dtype=torch.float32)
        centre = (groups.pos[groups.members[:, 0]].float() + p / 2) / size
        d = (torch.arange(p, dtype=torch.float32) + 0.5) / p
        pix = torch.stack(torch.meshgrid(d, d, indexing="ij"), dim=-1).reshape(-1, 2)  # (p², 2)
        g = n_groups
        self.register_buffer("pts_u", torch.cat([pix[None].expand(g, -1, -1),
                                                 centre[:, None].expand(-1, p * p, -1)], -1).reshape(-1, 4))
        kk = torch.arange(k, dtype=torch.float32) / max(k - 1, 1)
        self.register_buffer("pts_v", torch.cat([kk[None, :, None].expand(g, -1, 1),
                                                 centre[:, None].expand(-1, k, -1)], -1).reshape(-1, 3))
        tt = torch.arange(frames, dtype=torch.float32) / max(frames - 1, 1)
        self.register_buffer("pts_w", torch.cat([tt[None, :, None].expand(g, -1, 1),
                                                 centre[:, None].expand(-1, frames, -1)], -1).reshape(-1, 3))

    def group_tensors(self) -> Tensor:
        g = self.core.shape[0]
        u = self.u(self.pts_u).reshape(g, -1, self.core.shape[1])
        v = self.v(self.pts_v).reshape(g, -1, self.core.shape[2])
        w = self.w(self.pts_w).reshape(g, -1, self.core.shape[3])
        return tucker_groups(torch.view_as_complex(self.core), u, v, w)

    def forward(self) -> Tensor:
        return aggregate(self.group_tensors(), self.groups, self.shape)


def fit_tenf(data: DynamicData, cfg: TenFConfig, *, prelim: Tensor | None = None, run: RunDir | None = None,
             resume: bool = False, stop_after: int | None = None, progress: bool = True
             ) -> tuple[Tensor, list[dict]]:
    """Block-match on ``prelim`` (default zero-filled), fit the model; returns (images, records)."""
    t, (h, w) = data.images.shape[0], data.smaps.shape[-2:]
    zf = data.zero_filled()
    scale = zf.abs().max().clamp_min(1e-12)
    y = data.kspace / scale
    with kernels.nvtx.range("tenf.block_match"):
        groups = make_groups(zf if prelim is None else prelim, cfg.patch, cfg.stride, cfg.group_size,
                             cfg.search)
    torch.manual_seed(cfg.seed)
    model = TenFINR(cfg, groups, t, h, w)
    y_norm = y.abs().pow(2).sum()

    def loss_fn():
        x = model()
        dc = (data.forward(x) - y).abs().pow(2).sum() / y_norm
        terms = {"dc": dc}
        loss = dc
        if cfg.tv_weight > 0:
            terms["tv"] = (x[1:] - x[:-1]).abs().mean()
            loss = loss + cfg.tv_weight * terms["tv"]
        terms["loss"] = loss
        return loss, terms

    records = fit_loop(model, loss_fn, iters=cfg.iters, lr=cfg.lr, seed=cfg.seed, log_every=cfg.log_every,
                       checkpoint_every=cfg.checkpoint_every, tag="tenf", run=run, resume=resume,
                       stop_after=stop_after, progress=progress)
    with torch.no_grad():
        images = model() * scale
    return images, records


def run(cfg: TenFConfig, out_dir: Path, *, resume: bool = False, overwrite: bool = False,
        progress: bool = True) -> dict:
    return run_dynamic(cfg, out_dir, fit_tenf, label="TenF-INR", loss_keys=("loss", "dc", "tv"),
                       resume=resume, overwrite=overwrite, progress=progress)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, TenFConfig, PRESETS)


def main(args: argparse.Namespace) -> int:
    return main_dynamic(args, TenFConfig, PRESETS, run, "tenf-inr")
